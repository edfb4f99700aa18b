"""The run report (`telegen send --report DIR`): a row per signal per
progress interval, written as timeline.csv and timeline.json, and a chart of
throughput and p99 latency over time (chart.png, with matplotlib: the
`report` extra).

Rows come from the same interval figures as the progress lines (every
`sending.stats_interval`, and one for the last part of the run), so the
report and the terminal never disagree.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_atomic
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
    stage: str = ""


class Timeline:
    """Collects the rows of one run; `write(directory)` saves them."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, seconds: float, signal: str, interval: float, delta: dict[str, int], histogram: Histogram,
            stage: str = "") -> None:
        latency = {name: round(histogram.quantile(q) * 1e3, 3) for name, q in PERCENTILES} if histogram.count else {}
        if histogram.count:
            latency["max"] = round(histogram.max_ns / 1e6, 3)
        self.rows.append(Row(seconds=round(seconds, 3), signal=signal,
                             events_per_second=round(delta["delivered"] / interval, 1),
                             bytes_per_second=round(delta["bytes"] / interval, 1), requests=delta["requests"],
                             failed=delta["failed"], rejected=delta["rejected"], retries=delta["retries"],
                             latency_ms=latency, stage=stage))

    def write(self, directory: str | os.PathLike) -> list[Path]:
        """timeline.csv, timeline.json and (with matplotlib) chart.png in
        `directory`, each written whole or not at all; the paths written."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        names = [name for name, _ in PERCENTILES] + ["max"]
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["seconds", "signal", "events_per_second", "bytes_per_second", "requests", "failed",
                         "rejected", "retries", *[f"latency_{n}_ms" for n in names], "stage"])
        for r in self.rows:
            writer.writerow([r.seconds, r.signal, r.events_per_second, r.bytes_per_second, r.requests, r.failed,
                             r.rejected, r.retries, *[r.latency_ms.get(n, "") for n in names], r.stage])
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

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        for signal in dict.fromkeys(r.signal for r in self.rows):
            rows = [r for r in self.rows if r.signal == signal]
            top.plot([r.seconds for r in rows], [r.events_per_second for r in rows], marker=".", label=signal)
            latency = [(r.seconds, r.latency_ms["p99"]) for r in rows if "p99" in r.latency_ms]
            bottom.plot([t for t, _ in latency], [v for _, v in latency], marker=".", label=signal)
        top.set_ylabel("delivered events/s")
        top.set_title("telegen send: throughput and export latency")
        bottom.set_ylabel("p99 latency per request (ms)")
        bottom.set_xlabel("seconds since sending started")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            ax.set_ylim(bottom=0)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        write_atomic(path, buffer.getvalue())
        return path
