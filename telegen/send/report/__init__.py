"""What a run did, as figures: per signal (SignalReport), per ramp stage
(StageReport) and for the whole run (SendReport). The engine fills them;
the summary, --stats-json, thresholds, metrics and the fleet read them."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import latency
from .latency import Histogram

# Distinct reasons kept per signal and kind (failed, rejected); events of
# further reasons are summed under OTHER_REASONS. A backend that names every
# refused series in its message must not grow a report without bound.
MAX_REASONS = 5
OTHER_REASONS = "other reasons"
# How the summary and the failure lines say each kind of loss.
LOSS_WORDS = {"rejected": "rejected by the endpoint", "failed": "failed"}


def add_reason(by_reason: dict[str, int], reason: str, events: int) -> str:
    """Count `events` under `reason` (or OTHER_REASONS once MAX_REASONS are
    kept); returns the reason they were counted under."""
    if reason not in by_reason and len(by_reason) >= MAX_REASONS:
        reason = OTHER_REASONS
    by_reason[reason] = by_reason.get(reason, 0) + events
    return reason


def merge_reasons(into: dict[str, dict[str, int]], other: Mapping[str, Mapping[str, int]]) -> None:
    """Add `other`'s events per kind and reason to `into` (processes, senders)."""
    for kind, by_reason in other.items():
        mine = into.setdefault(kind, {})
        for reason, events in by_reason.items():
            add_reason(mine, reason, events)


def percent(ratio: float) -> str:
    """A share as people read it: 33.3 %, 1.23 %, 0.01 %, 100 %."""
    return f"{100 * ratio:.3g} %"


@dataclass
class SignalReport:
    signal: str
    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    batches: int = 0
    # Traces only: the traces of batches delivered whole (every span), what a
    # trace store should then hold. None for the other signals.
    traces_delivered: int | None = None
    events_per_second: float = 0.0
    # Metrics only: distinct OTLP series written each pass, and the series a
    # Prometheus-style store should hold for them (telegen.send.load.series).
    series_total: int | None = None
    prometheus_series: int | None = None
    # "request": each request attempt to its answer; "batch": hand-over to
    # outcome, retries and backoff included.
    latency: dict[str, Histogram] = field(default_factory=lambda: {kind: Histogram() for kind in latency.KINDS})
    # Events not delivered per kind ("failed", "rejected") and the backend's
    # reason (shortened): what the summary, the failure lines and --stats-json
    # quote. Kept for the whole run, not per stage or interval.
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Events sent and not delivered: failed or rejected."""
        return self.failed + self.rejected

    def loss_reasons(self, most: int = 3) -> str:
        """The reasons for the lost events, most events first, as one line:
        "rejected by the endpoint: HTTP 400: out of order sample (2,900);
        failed: UNAVAILABLE: ... (100)"; at most `most` of them, and the
        events of each only where there are several."""
        ranked = sorted(((events, kind, reason) for kind, by_reason in self.reasons.items()
                         for reason, events in by_reason.items()), key=lambda item: -item[0])
        # Each reason's events, where there are several to tell apart.
        parts = [f"{LOSS_WORDS.get(kind, kind)}: {reason}" + (f" ({events:,})" if len(ranked) > 1 else "")
                 for events, kind, reason in ranked[:most]]
        if len(ranked) > most:
            parts.append(f"{len(ranked) - most} more reason(s) in --stats-json")
        return "; ".join(parts)


@dataclass
class TenantReport:
    """One tenant of a run with several (otlp.tenants): its headers as a
    report may show them (credentials read "***"), its planned share of the
    rate, and per signal what its requests sent and how they ended."""

    index: int
    headers: dict[str, str]
    weight: float
    # signal -> sent, delivered, rejected, failed, requests, bytes
    signals: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(counts.get(name, 0) for counts in self.signals.values())

    @property
    def sent(self) -> int:
        return self.total("sent")

    @property
    def delivered(self) -> int:
        return self.total("delivered")

    def to_dict(self, run_sent: int) -> dict:
        return {"index": self.index, "headers": dict(self.headers), "weight": round(self.weight, 6),
                "share": round(self.sent / run_sent, 6) if run_sent else 0.0,
                **{name: self.total(name) for name in ("sent", "delivered", "failed", "rejected", "requests",
                                                       "bytes")},
                "signals": {s: dict(counts) for s, counts in self.signals.items()}}


def merged_tenants(parts: Iterable[Sequence[TenantReport]]) -> list[TenantReport]:
    """Per tenant, the parts' counts summed (a fleet's senders)."""
    out: dict[int, TenantReport] = {}
    for tenants in parts:
        for own in tenants:
            total = out.setdefault(own.index, TenantReport(own.index, dict(own.headers), own.weight))
            for signal, counts in own.signals.items():
                mine = total.signals.setdefault(signal, {})
                for name, value in counts.items():
                    mine[name] = mine.get(name, 0) + value
    return [out[index] for index in sorted(out)]


@dataclass
class SenderLoad:
    """How hard the sender itself worked, and how it fared per attempt: what
    tells a sender-bound run from a backend-bound one (the capacity search).
    Counted in runs with a rate_control; not part of --stats-json."""

    processes: int
    cpu_seconds: float = 0.0  # the sending processes' CPU time
    slot_wait_seconds: float = 0.0  # waiting for an in-flight slot, summed over the workers
    answered_events: int = 0  # events of request attempts that ended (answered, or a transport error)
    refused_events: int = 0  # of those, refused: an error answer (retried or not) or a partial rejection

    def __sub__(self, before: SenderLoad) -> SenderLoad:
        return SenderLoad(self.processes, self.cpu_seconds - before.cpu_seconds,
                          self.slot_wait_seconds - before.slot_wait_seconds,
                          self.answered_events - before.answered_events, self.refused_events - before.refused_events)

    def __add__(self, other: SenderLoad) -> SenderLoad:
        return SenderLoad(self.processes + other.processes, self.cpu_seconds + other.cpu_seconds,
                          self.slot_wait_seconds + other.slot_wait_seconds,
                          self.answered_events + other.answered_events, self.refused_events + other.refused_events)


@dataclass
class SendReport:
    """What a run did. delivered + rejected + failed == sent, per signal."""

    elapsed: float
    signals: dict[str, SignalReport]
    target_events_per_second: float
    processes: int
    interrupted: bool = False
    # Thresholds the run breached (telegen.send.report.thresholds), set by Sender.run.
    breaches: list[str] = field(default_factory=list)
    aborted: str | None = None  # why the run was stopped early (abort_on_breach)
    # A worker process died: what it had in flight is counted nowhere, so
    # every total is a lower bound (as a fleet's with a dead sender).
    lower_bound: bool = False
    stages: list[StageReport] = field(default_factory=list)  # with sending.stages: a row per stage
    # The run's wall-clock window, Unix seconds: when sending started, and
    # when the last request was answered (what `telegen verify` bounds its
    # queries to). None for the figures of an interval or a stage.
    started_at: float | None = None
    ended_at: float | None = None
    # What each scenario asked for did (telegen.send.scenarios.report); None: none was on.
    scenarios: dict | None = None
    # Several tenants (otlp.tenants): a row per tenant; empty with one.
    tenants: list[TenantReport] = field(default_factory=list)
    # The sender's own work so far (runs with a rate_control; see SenderLoad).
    load: SenderLoad | None = None

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.signals.values())

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0

    def failures(self) -> list[str]:
        """Why the run failed, or [] when it did not: nothing was delivered at
        all, or a signal that sent events got none of them delivered (a wrong
        endpoint, TLS or headers for that signal), each with the backend's
        reasons; a threshold was breached (by default more than 1 % of a
        signal's events lost: thresholds.max_lost_ratio). One line per signal
        for a loss: a signal that got nothing through is not also listed as
        over max_lost_ratio."""
        dead = [name for name, s in self.signals.items() if s.sent and not s.delivered]
        reasons = []
        for name in dead:
            s = self.signals[name]
            why = s.loss_reasons()
            reasons.append(f"{name}: none of {s.sent:,} events delivered ({s.failed:,} failed, {s.rejected:,} "
                           f"rejected){': ' + why if why else ''}")
        if not self.delivered and not reasons:
            reasons.append("nothing was sent")
        aborted = [f"aborted: {self.aborted}"] if self.aborted else []
        breaches = [line for line in self.breaches if not any(line.startswith(f"{name}: lost ") for name in dead)]
        return reasons + aborted + [f"threshold breached: {line}" for line in breaches]

    def to_dict(self) -> dict:
        return {
            "elapsed_seconds": round(self.elapsed, 3),
            "delivered_events": self.delivered,
            "events_per_second": round(self.events_per_second, 1),
            "target_events_per_second": self.target_events_per_second,
            "processes": self.processes,
            "started_at": None if self.started_at is None else round(self.started_at, 3),
            "ended_at": None if self.ended_at is None else round(self.ended_at, 3),
            "interrupted": self.interrupted,
            "thresholds_breached": list(self.breaches),
            "aborted": self.aborted,
            "lower_bound": self.lower_bound,
            "signals": _signals_dict(self.signals),
            "stages": [stage.to_dict() for stage in self.stages],
            **({"scenarios": self.scenarios} if self.scenarios is not None else {}),
            **({"tenants": [t.to_dict(sum(s.sent for s in self.signals.values())) for t in self.tenants]}
               if self.tenants else {}),
        }


@dataclass
class StageReport:
    """One ramp stage of a run (`sending.stages`): its planned target and what
    was sent, delivered, failed, rejected and retried while it ran, with the
    latency of its requests. The figures of all stages add up to the run's."""

    index: int  # in sending.stages, from 0
    of: int  # how many stages the run has
    start: float  # seconds since sending started
    planned_end: float
    end: float  # when its figures were taken: the planned end, or earlier when the run stopped
    target_from: float  # events/s at its start and end (a ramp; equal: a hold)
    target_to: float
    planned_events: float  # what the plan allows from start to min(end, planned_end)
    signals: dict[str, SignalReport] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def seconds(self) -> float:
        """How long it ran (the drain after the last stage is not counted)."""
        return max(min(self.end, self.planned_end) - self.start, 0.0)

    @property
    def complete(self) -> bool:
        return self.end >= self.planned_end - 1e-3

    @property
    def target_events_per_second(self) -> float:
        return self.planned_events / self.seconds if self.seconds > 0 else 0.0

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.signals.values())

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.signals.values())

    @property
    def sent_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def as_run(self) -> SendReport:
        """The stage's figures as a report of their own (what thresholds judge)."""
        return SendReport(elapsed=self.seconds, signals=self.signals,
                          target_events_per_second=self.target_events_per_second, processes=0)

    def to_dict(self) -> dict:
        return {
            "stage": self.number, "of": self.of, "start_seconds": round(self.start, 3),
            "end_seconds": round(self.end, 3),
            "complete": self.complete, "target_from": self.target_from, "target_to": self.target_to,
            "target_events_per_second": round(self.target_events_per_second, 1),
            "sent_events_per_second": round(self.sent_per_second, 1),
            "delivered_events_per_second": round(self.events_per_second, 1),
            "thresholds_breached": list(self.breaches),
            "signals": _signals_dict(self.signals),
        }


def _signals_dict(signals: dict[str, SignalReport]) -> dict:
    return {name: {**{k: (round(v, 1) if isinstance(v, float) else v) for k, v in vars(s).items()
                      if k not in ("signal", "latency") and v is not None},
                   "latency": {kind: {**h.summary(), "histogram": h.to_dict()} for kind, h in s.latency.items()}}
            for name, s in signals.items()}
