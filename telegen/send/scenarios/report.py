"""What each scenario did in a run, exactly: the `scenarios` object of the
report (and of --stats-json) and its summary lines."""
from __future__ import annotations

from typing import Any

from . import Scenarios


def scenario_report(scenarios: Scenarios, totals: dict[str, dict[str, int]]) -> dict[str, Any] | None:
    """From the run's counters (engine.counters: late, delayed, series_created); None when none is on."""
    if not scenarios.any:
        return None
    out: dict[str, Any] = {}
    if scenarios.bursts:
        out["burst"] = {"every_seconds": scenarios.burst_every, "for_seconds": scenarios.burst_for,
                        "factor": scenarios.burst_factor}
    if scenarios.late:
        late = {s: totals[s]["late"] for s in ("traces", "logs")}
        sent = sum(totals[s]["sent"] for s in ("traces", "logs"))
        out["late"] = {"fraction": scenarios.late_fraction, "by_seconds": scenarios.late_by, "events": late,
                       "share": round(sum(late.values()) / sent, 4) if sent else 0.0}
    if scenarios.skew:
        out["clock_skew"] = {"max_seconds": scenarios.skew_max,
                             "services": {name: round(ns / 1e6, 3) for name, ns in scenarios.skews.items()}}
    if scenarios.delayed:
        out["delayed_children"] = {"fraction": scenarios.delayed_fraction, "by_seconds": scenarios.delayed_by,
                                   "traces": totals["traces"]["delayed"]}
    if scenarios.churn:
        out["churn"] = {"fraction": scenarios.churn_fraction, "every_seconds": scenarios.churn_every,
                        "series_created": totals["metrics"]["series_created"],
                        "prometheus_series_created": totals["metrics"]["prometheus_created"]}
    return out


def scenario_lines(report: dict[str, Any] | None) -> list[str]:
    """One summary line per scenario that was on."""
    if not report:
        return []
    lines = []
    if "burst" in report:
        b = report["burst"]
        lines.append(f"  burst: the rate x{b['factor']:g} for {b['for_seconds']:g} s every {b['every_seconds']:g} s")
    if "late" in report:
        late = report["late"]
        events = ", ".join(f"{n:,} {what}" for what, n in (("spans", late["events"]["traces"]),
                                                            ("log records", late["events"]["logs"])))
        lines.append(f"  late: {events} sent {late['by_seconds']:g} s in the past ({late['share']:.2%} of spans "
                     "and log records)")
    if "clock_skew" in report:
        skews = ", ".join(f"{name} {ms:+,.1f} ms" for name, ms in report["clock_skew"]["services"].items())
        lines.append(f"  clock skew: {skews or 'no service to skew'}")
    if "delayed_children" in report:
        d = report["delayed_children"]
        lines.append(f"  delayed children: {d['traces']:,} traces sent their children {d['by_seconds']:g} s "
                     "after their root")
    if "churn" in report:
        c = report["churn"]
        lines.append(f"  churn: {c['series_created']:,} new metric series (every {c['every_seconds']:g} s, "
                     f"{c['fraction']:.1%} of series)")
    return ["Scenarios:", *lines] if lines else []
