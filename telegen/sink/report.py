"""What `telegen sink` prints and writes: progress lines, the summary, stats JSON."""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_json
from .stats import SinkStats


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def interval_lines(previous: SinkStats, current: SinkStats) -> list[str]:
    """One line per signal: totals, events/s over the last interval and overall,
    MB/s over the last interval (decoded: the requests' protobuf size, which
    is what a sender's "MB sent" is too without compression), and invalid and
    refused requests (a fault's or the capacity's: what a run at a sink's
    capacity watches)."""
    seconds = current.elapsed - previous.elapsed
    lines = []
    for name, now in current.signals().items():
        before = previous.signals()[name]
        lines.append(
            f"[{current.elapsed:7.1f}s] {name:<7} events {now.events:>13,}"
            f"  {_rate(now.events - before.events, seconds):>11,.0f}/s"
            f"  (avg {_rate(now.events, current.elapsed):>11,.0f}/s)"
            f"  requests {now.requests:>9,}"
            f"  {_rate(now.bytes - before.bytes, seconds) / 1e6:>8.2f} MB/s decoded"
            f"  invalid {now.invalid_requests:,}  refused {now.refused_requests:,}")
    return lines


def idle_line(stats: SinkStats, idle_for: float) -> str:
    """One line instead of a line per signal when nothing arrived."""
    totals = ", ".join(f"{name} {s.events:,}" for name, s in stats.signals().items())
    return f"[{stats.elapsed:7.1f}s] idle for {idle_for:.0f} s; events so far: {totals}"


def changed(previous: SinkStats, current: SinkStats) -> bool:
    """Whether any request arrived (or was refused) between two snapshots."""
    return any(now.requests != before.requests or now.invalid_requests != before.invalid_requests
               or now.refused_requests != before.refused_requests
               for now, before in zip(current.signals().values(), previous.signals().values()))


def summary_lines(stats: SinkStats) -> list[str]:
    """The final summary: one line per signal with every counter."""
    lines = [f"Sink summary after {stats.elapsed:.1f}s:"]
    for name, s in stats.signals().items():
        lines.append(
            f"  {name:<7} {s.events:>13,} events ({_rate(s.events, stats.elapsed):,.0f}/s)"
            f"  {s.requests:,} requests  {s.bytes / 1e6:,.1f} MB decoded"
            f"  rejected {s.rejected_events:,}"
            f"  invalid {s.invalid_requests:,} requests / {s.invalid_events:,} events"
            f"  refused {s.refused_requests:,} requests / {s.refused_events:,} events")
    return lines


def write_stats_json(stats: SinkStats, path: Path) -> None:
    """Write `stats.to_dict()` to `path` atomically."""
    write_json(path, stats.to_dict())
