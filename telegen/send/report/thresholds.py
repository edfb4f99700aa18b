"""Pass/fail thresholds of a load test, checked when the run ends: each
breach is one plain line, and a run with any exits 1 (the CLI's `run failed`).
One is on unless switched off: more than 1 % of a signal's events lost
(failed or rejected), thresholds.max_lost_ratio."""
from __future__ import annotations

import time
from collections.abc import Callable

from ..config import ThresholdsConfig
from . import SendReport, percent


def breaches(report: SendReport, thresholds: ThresholdsConfig) -> list[str]:
    """What went over budget, one line each ([] when all held). A signal
    that sent nothing is not judged. A loss over max_lost_ratio (1 % unless
    set) says how much and the backend's reasons, when the report has them."""
    out: list[str] = []
    for name, s in report.signals.items():
        if not s.sent:
            continue
        if thresholds.max_lost_ratio is not None and s.lost / s.sent > thresholds.max_lost_ratio:
            why = s.loss_reasons()
            out.append(f"{name}: lost {percent(s.lost / s.sent)} of {s.sent:,} events ({s.rejected:,} rejected, "
                       f"{s.failed:,} failed), over max_lost_ratio {percent(thresholds.max_lost_ratio)}"
                       f"{': ' + why if why else ''}")
        if thresholds.max_failed_ratio is not None and s.failed / s.sent > thresholds.max_failed_ratio:
            out.append(f"{name}: {s.failed / s.sent:.4%} of events failed, over max_failed_ratio "
                       f"{thresholds.max_failed_ratio:.4%}")
        if thresholds.max_rejected_ratio is not None and s.rejected / s.sent > thresholds.max_rejected_ratio:
            out.append(f"{name}: {s.rejected / s.sent:.4%} of events rejected, over max_rejected_ratio "
                       f"{thresholds.max_rejected_ratio:.4%}")
        request = s.latency["request"]
        if thresholds.p99_latency is not None and request.count and request.quantile(0.99) > thresholds.p99_latency:
            out.append(f"{name}: p99 latency per request {request.quantile(0.99) * 1e3:,.1f} ms, over p99_latency "
                       f"{thresholds.p99_latency * 1e3:,.1f} ms")
    target = report.target_events_per_second
    if thresholds.min_rate_ratio is not None and target > 0 and report.elapsed > 0:
        achieved = report.events_per_second / target
        if achieved < thresholds.min_rate_ratio:
            out.append(f"delivered {report.events_per_second:,.0f} events/s, {achieved:.1%} of the target "
                       f"{target:,.0f}: under min_rate_ratio {thresholds.min_rate_ratio:.1%}")
    return out


def abort_check(thresholds: ThresholdsConfig) -> Callable[[SendReport], str | None] | None:
    """For `abort_on_breach`: judges each progress interval's own figures and
    returns why to stop once they have breached a threshold for that long
    (an interval that breached counts whole); None without it."""
    limit = thresholds.abort_on_breach
    if limit is None:
        return None
    breached_since: list[float | None] = [None]

    def check(interval: SendReport) -> str | None:
        found = breaches(interval, thresholds)
        now = time.monotonic()
        if not found:
            breached_since[0] = None
            return None
        if breached_since[0] is None:
            breached_since[0] = now - interval.elapsed
        held = now - breached_since[0]
        if held >= limit:
            return f"thresholds breached for {held:.1f} s (abort_on_breach {limit:g} s): {'; '.join(found)}"
        return None

    return check
