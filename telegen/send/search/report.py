"""What a capacity search found: its steps, the maximum sustainable rate,
why it stopped and who was the bottleneck; as lines, as JSON (`search` in
--stats-json) and as a chart (search.png in --report)."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .judge import CONCURRENCY, DELIVERY, ERRORS, LATENCY, SENDER

# stop_reason: why the search stopped.
KNEE = "knee"  # a rate failed by a limit and the bracket closed
MAX_RATE = "max_rate"  # the configured max rate held
MIN_RATE_FAILED = "min_rate_failed"  # the backend failed at the first, least rate
HOLD_FAILED = "hold_failed"  # short steps held, but no rate held for the hold's length
SENDER_BOUND = "sender_bound"  # the sender could not offer more
CONCURRENCY_BOUND = "concurrency_bound"  # the sender's requests in flight capped the rate
INTERRUPTED = "interrupted"

_REASON_WORDS = {ERRORS: "refusals", LATENCY: "latency", DELIVERY: "delivered under the offered rate",
                 SENDER: "the sender could not offer the rate", CONCURRENCY: "requests in flight were the bound"}


@dataclass
class SearchStep:
    number: int
    phase: str  # probe, bisect or hold
    rate: float  # the offered (target) events/s
    start: float  # seconds since the search started
    end: float
    sent_rate: float
    delivered_rate: float
    error_share: float
    p50: float | None  # seconds
    p99: float | None
    cpu_share: float  # of a core per sending process
    slot_wait_share: float
    passed: bool
    reason: str | None = None
    detail: str = ""
    # Per window: (end, seconds since the search started; delivered events/s; p99 seconds or None).
    windows: list[tuple[float, float, float | None]] = field(default_factory=list)

    def line(self) -> str:
        p99 = f"p99 {self.p99 * 1e3:,.1f} ms" if self.p99 is not None else "no answers"
        verdict = "held" if self.passed else f"FAILED ({self.detail})"
        return (f"search step {self.number} ({self.phase} {self.rate:,.0f}/s): sent {self.sent_rate:,.0f}/s, "
                f"delivered {self.delivered_rate:,.0f}/s, refused {100 * self.error_share:.2f} %, {p99}, "
                f"sender CPU {100 * self.cpu_share:.0f} %: {verdict}")

    def to_dict(self) -> dict:
        return {"step": self.number, "phase": self.phase, "rate": round(self.rate, 1),
                "start_seconds": round(self.start, 3), "end_seconds": round(self.end, 3),
                "sent_events_per_second": round(self.sent_rate, 1),
                "delivered_events_per_second": round(self.delivered_rate, 1),
                "error_share": round(self.error_share, 6),
                "latency_ms": {"p50": _ms(self.p50), "p99": _ms(self.p99)},
                "sender_cpu_share": round(self.cpu_share, 3), "slot_wait_share": round(self.slot_wait_share, 3),
                "passed": self.passed, "reason": self.reason, "detail": self.detail,
                "windows": [{"end_seconds": round(end, 3), "delivered_events_per_second": round(rate, 1),
                             "p99_ms": _ms(p99)} for end, rate, p99 in self.windows]}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


@dataclass
class SearchReport:
    signals: str  # "all" or the one signal searched with
    stop_reason: str
    # The highest rate that held (confirmed by the hold when there was one);
    # None when no knee was found: a sender's ceiling is not the backend's.
    max_sustainable_eps: float | None
    lower_bound_eps: float | None  # the highest rate that held, whatever stopped the search
    degraded_at_eps: float | None  # the lowest rate that failed: where degradation began
    resolution: float
    confirmed: bool  # the knee held for the hold's length (or no hold was asked)
    sender: str  # who sent: "1 process", "4 senders x 2 processes"
    steps: list[SearchStep] = field(default_factory=list)
    conclusion: str = ""
    # Each signal's share of the events sent (the templates' mix, or 1.0 for
    # the one signal searched with): how the rate found splits per signal.
    mix: dict[str, float] = field(default_factory=dict)
    # The run the search was made of, whole (the summary's figures): one
    # sender's SendReport, or a fleet's FleetReport (the send stage does not
    # import the fleet's, hence Any).
    run: Any = None

    @property
    def found(self) -> bool:
        """A knee was found, or the max rate held: exit status 0."""
        return self.stop_reason in (KNEE, MAX_RATE) and self.max_sustainable_eps is not None

    def exit_status(self) -> int:
        if self.stop_reason == INTERRUPTED:
            return 130
        return 0 if self.found else 1

    def by_signal(self) -> dict[str, float]:
        """The max sustainable rate split per signal, in the mix sent."""
        if self.max_sustainable_eps is None:
            return {}
        return {signal: share * self.max_sustainable_eps for signal, share in self.mix.items()}

    def lines(self) -> list[str]:
        out = [f"search: {self.conclusion}"]
        split = self.by_signal()
        if len(split) > 1:
            out.append("  at that rate: " + ", ".join(f"{signal} {rate:,.0f}/s" for signal, rate in split.items())
                       + " (the templates' mix)")
        failed = [s for s in self.steps if not s.passed]
        if failed and self.stop_reason in (KNEE, MIN_RATE_FAILED, HOLD_FAILED):
            first = min(failed, key=lambda s: s.rate)
            out.append(f"  degradation began at {first.rate:,.0f}/s: {first.detail}")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SearchReport:
        """A report as to_dict wrote it (`search` in --stats-json): to draw its chart again."""
        steps = [SearchStep(s["step"], s["phase"], s["rate"], s["start_seconds"], s["end_seconds"],
                            s["sent_events_per_second"], s["delivered_events_per_second"], s["error_share"],
                            _seconds(s["latency_ms"]["p50"]), _seconds(s["latency_ms"]["p99"]), s["sender_cpu_share"],
                            s["slot_wait_share"], s["passed"], s["reason"], s["detail"],
                            [(w["end_seconds"], w["delivered_events_per_second"], _seconds(w["p99_ms"]))
                             for w in s.get("windows", [])])
                 for s in data["steps"]]
        return cls(data["signals"], data["stop_reason"], data["max_sustainable_eps"], data["lower_bound_eps"],
                   data["degraded_at_eps"], data["resolution"], data["confirmed"], data["sender"], steps,
                   data["conclusion"], dict(data.get("mix", {})))

    def to_dict(self) -> dict:
        return {"signals": self.signals, "max_sustainable_eps": _round(self.max_sustainable_eps),
                "lower_bound_eps": _round(self.lower_bound_eps),
                "degraded_at_eps": _round(self.degraded_at_eps), "resolution": self.resolution,
                "confirmed": self.confirmed, "stop_reason": self.stop_reason, "found": self.found,
                "sender": self.sender, "conclusion": self.conclusion,
                "mix": {signal: round(share, 6) for signal, share in self.mix.items()},
                "max_sustainable_by_signal": {signal: round(rate, 1) for signal, rate in self.by_signal().items()},
                "steps": [step.to_dict() for step in self.steps]}

    def chart(self, path: Path) -> Path | None:
        """Offered, sent and delivered rate and p99 over the search, a band per
        step, the knee marked; None without matplotlib (the report extra)."""
        try:
            import matplotlib
        except ImportError:
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter

        from ..report.timeline import rate_label, save_png

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        for key, label, style in (("rate", "offered (target)", dict(color="gray", linestyle="--")),
                                  ("sent_rate", "sent", dict(color="tab:blue")),
                                  ("delivered_rate", "delivered", dict(color="black", linewidth=1.6))):
            xs, ys = [], []
            for step in self.steps:
                xs += [step.start, step.end, float("nan")]
                ys += [getattr(step, key)] * 2 + [float("nan")]
            top.plot(xs, ys, label=label, **style)
        points = [(end, rate) for step in self.steps for end, rate, _ in step.windows]
        top.plot([t for t, _ in points], [r for _, r in points], linestyle="none", marker=".", color="black",
                 alpha=0.5, label="delivered, per window")
        latency = [(end, p99 * 1e3) for step in self.steps for end, _, p99 in step.windows if p99 is not None]
        bottom.plot([t for t, _ in latency], [v for _, v in latency], linestyle="none", marker=".", color="black",
                    alpha=0.5, label="p99 per window")
        for step in self.steps:
            color = "tab:green" if step.passed else "tab:red"
            top.annotate(step.phase, ((step.start + step.end) / 2, 1.0), xycoords=("data", "axes fraction"),
                         ha="center", va="bottom", fontsize=7, color=color)
            for ax in (top, bottom):
                ax.axvspan(step.start, step.end, color=color, alpha=0.08)
            if step.p99 is not None:
                bottom.plot([step.start, step.end], [step.p99 * 1e3] * 2, color=color, linewidth=2)
        if self.max_sustainable_eps is not None:
            top.axhline(self.max_sustainable_eps, color="tab:green", linewidth=1.2,
                        label=f"max sustainable {self.max_sustainable_eps:,.0f}/s")
        if self.degraded_at_eps is not None:
            top.axhline(self.degraded_at_eps, color="tab:red", linewidth=1, linestyle=":",
                        label=f"degraded at {self.degraded_at_eps:,.0f}/s")
        top.set_ylabel("events/s")
        top.yaxis.set_major_formatter(FuncFormatter(lambda value, _: rate_label(value)))
        top.set_title(textwrap.fill(f"telegen capacity search: {self.conclusion}", 130), fontsize=9, pad=14)
        bottom.set_ylabel("p99 latency per request (ms)\n(green: step held, red: failed)")
        bottom.set_xlabel("seconds since the search started")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
        top.legend(fontsize=8, loc="upper left")
        bottom.legend(fontsize=8, loc="upper left")
        return save_png(fig, path)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1e3


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
