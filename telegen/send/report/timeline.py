"""The run report (`telegen send --report DIR`): a row per signal per
progress interval, written as timeline.csv and timeline.json, and a chart of
throughput and p99 latency over time (chart.png, with matplotlib: the
`report` extra).

Rows come from the same interval figures as the progress lines (every
`sending.stats_interval`, one at each stage's end, and one for the last part
of the run), so the report and the terminal never disagree, and no row
straddles two stages.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...atomic import write_atomic
from .latency import PERCENTILES, Histogram


@dataclass
class Row:
    seconds: float  # since sending started, at the end of the interval
    signal: str
    events_per_second: float
    bytes_per_second: float
    requests: int
    failed: int
    rejected: int
    retries: int
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, p99.9, max of the interval
    stage: str = ""  # the ramp stage's number (from 1), with sending.stages
    interval: float = 0.0  # seconds the row covers, ending at `seconds`
    # Of `interval`, the seconds after sending stopped: only answers to the
    # requests in flight arrive then (the drain), so the row's rate is low.
    drain: float = 0.0

    def sending_rate(self) -> float | None:
        """Delivered events/s over the part of the interval that sent; None
        when that part is too short to say (a row that is mostly drain)."""
        sending = self.interval - self.drain
        if sending < 0.25 * self.interval or sending <= 0:
            return None
        return self.events_per_second * self.interval / sending


@dataclass(frozen=True)
class StageMark:
    number: int
    start: float
    end: float
    target_from: float
    target_to: float


class Timeline:
    """Collects the rows of one run; `write(directory)` saves them."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.stages: list[StageMark] = []  # set by the engine when the run has stages
        self.target: float = 0.0  # events/s of a run without stages (0: unthrottled)
        self.p99_budget: float | None = None  # seconds: thresholds.p99_latency, drawn on the latency panel
        self.aborted_at: float | None = None  # seconds: when abort_on_breach stopped the run

    def add(self, seconds: float, signal: str, interval: float, delta: dict[str, int], histogram: Histogram,
            stage: str = "", drain: float = 0.0) -> None:
        latency = {name: round(histogram.quantile(q) * 1e3, 3) for name, q in PERCENTILES} if histogram.count else {}
        if histogram.count:
            latency["max"] = round(histogram.max_ns / 1e6, 3)
        self.rows.append(Row(seconds=round(seconds, 3), signal=signal,
                             events_per_second=round(delta["delivered"] / interval, 1),
                             bytes_per_second=round(delta["bytes"] / interval, 1), requests=delta["requests"],
                             failed=delta["failed"], rejected=delta["rejected"], retries=delta["retries"],
                             latency_ms=latency, stage=stage, interval=round(interval, 3), drain=round(drain, 3)))

    def write(self, directory: str | os.PathLike) -> list[Path]:
        """timeline.csv, timeline.json and (with matplotlib) chart.png in
        `directory`, each written whole or not at all; the paths written."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        names = [name for name, _ in PERCENTILES] + ["max"]
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["seconds", "signal", "events_per_second", "bytes_per_second", "requests", "failed",
                         "rejected", "retries", *[f"latency_{n}_ms" for n in names], "stage", "interval_seconds",
                         "drain_seconds"])
        for r in self.rows:
            writer.writerow([r.seconds, r.signal, r.events_per_second, r.bytes_per_second, r.requests, r.failed,
                             r.rejected, r.retries, *[r.latency_ms.get(n, "") for n in names], r.stage, r.interval,
                             r.drain])
        written = [out / "timeline.csv", out / "timeline.json"]
        write_atomic(written[0], text.getvalue().encode())
        write_atomic(written[1], (json.dumps([asdict(r) for r in self.rows], indent=1) + "\n").encode())
        chart = self.chart(out / "chart.png")
        return written + ([chart] if chart else [])

    def chart(self, path: Path) -> Path | None:
        """Throughput and p99 latency per signal over time; None without matplotlib."""
        try:
            import matplotlib
        except ImportError:
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from matplotlib.ticker import FuncFormatter

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        signals = list(dict.fromkeys(r.signal for r in self.rows))
        # A rate is drawn at the middle of the part of its interval that sent;
        # a row that is all drain (answers after sending stopped) is not a rate
        # the sender kept, so it is left out rather than drawn as a dip.
        rated = [(r, r.sending_rate()) for r in self.rows]
        rated = [(r, rate) for r, rate in rated if rate is not None]
        for signal in signals:
            points = [(_middle(r), rate) for r, rate in rated if r.signal == signal]
            top.plot([t for t, _ in points], [v for _, v in points], marker=".", label=signal)
            latency = [(_middle(r), r.latency_ms["p99"]) for r in self.rows if r.signal == signal
                       and "p99" in r.latency_ms]
            bottom.plot([t for t, _ in latency], [v for _, v in latency], marker=".", label=signal)
        if len(signals) > 1 or self.stages or self.target:
            totals: dict[float, float] = {}
            for r, rate in rated:
                middle = round(_middle(r), 3)
                totals[middle] = totals.get(middle, 0.0) + rate
            top.plot(list(totals), list(totals.values()), color="black", linewidth=1.2, label="all signals")
        if self.stages:
            times = [t for mark in self.stages for t in (mark.start, mark.end)]
            rates = [r for mark in self.stages for r in (mark.target_from, mark.target_to)]
            top.plot(times, rates, color="gray", linestyle="--", label="target")
        elif self.target and self.rows:
            top.plot([0, max(r.seconds for r in self.rows)], [self.target] * 2, color="gray", linestyle="--",
                     label="target")
        for mark in self.stages:
            for ax in (top, bottom):
                ax.axvline(mark.end, color="gray", linewidth=0.8, alpha=0.6)
            top.annotate(f"stage {mark.number}", ((mark.start + mark.end) / 2, 1.0), xycoords=("data", "axes fraction"),
                         ha="center", va="bottom", fontsize=7, color="dimgray")
        if self.p99_budget is not None:
            bottom.axhline(self.p99_budget * 1e3, color="red", linestyle="--", linewidth=1,
                           label=f"p99_latency {self.p99_budget * 1e3:g} ms")
        if self.aborted_at is not None:
            for ax in (top, bottom):
                ax.axvline(self.aborted_at, color="red", linewidth=1.2)
            # Beside the line, not on it.
            top.annotate("aborted", (self.aborted_at, 0.02), xycoords=("data", "axes fraction"), color="red",
                         fontsize=8, ha="right", va="bottom", rotation=90, xytext=(-3, 0),
                         textcoords="offset points")
        top.set_ylabel("delivered events/s")
        top.yaxis.set_major_formatter(FuncFormatter(lambda value, _: rate_label(value)))
        top.set_title("telegen send: throughput and export latency", pad=14 if self.stages else 6)
        bottom.set_ylabel("p99 latency per request (ms)")
        bottom.set_xlabel("seconds since sending started")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            ax.set_ylim(bottom=0)
        return save_png(fig, path)


def save_png(fig, path: Path) -> Path:
    """A matplotlib figure as a PNG at `path`, written whole or not at all; the figure closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path


def _middle(row: Row) -> float:
    """The middle of the part of a row's interval that sent."""
    sending = row.interval - row.drain
    return row.seconds - row.drain - sending / 2


def rate_label(value: float) -> str:
    """Events/s as a person reads them on an axis: 0, 500/s, 250k/s, 1.5M/s."""
    if value == 0:
        return "0"
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{unit}/s"
    return f"{value:g}/s"
