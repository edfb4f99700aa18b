"""What a fleet run did: the exact sum of its senders' reports, a row per sender."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

from ..send.engine.plan import RatePlan
from ..send.report import SendReport, SignalReport, StageReport, merge_reasons, merged_tenants
from ..send.report.latency import Histogram
from ..send.sender import loss_lines, signal_lines

_SUMMED = [f.name for f in fields(SignalReport)
           if f.name not in ("signal", "events_per_second", "latency", "reasons")]


@dataclass
class SenderRow:
    """One sender of the fleet: shard `index`, where it ran, how it ended.
    `report` is its final report, or for a sender that died its last one."""

    index: int
    node: str
    report: SendReport | None = None
    died: str | None = None  # why, when the sender died before reporting
    died_after: float = 0.0  # seconds into the run

    @property
    def status(self) -> str:
        if self.died is not None:
            return f"died after {self.died_after:.1f} s ({self.died})"
        if self.report is None:
            return "no report"
        return "interrupted" if self.report.interrupted else "done"


@dataclass
class FleetReport:
    """delivered + rejected + failed == sent per signal, for the fleet as for
    each sender; a sender that died counts what its last report said."""

    elapsed: float
    target_events_per_second: float
    senders: list[SenderRow] = field(default_factory=list)
    interrupted: bool = False
    breaches: list[str] = field(default_factory=list)  # the fleet's thresholds, judged on its totals
    stages: list[StageReport] = field(default_factory=list)  # with sending.stages: the senders' rows merged

    @property
    def signals(self) -> dict[str, SignalReport]:
        """Per signal, every sender's counts summed."""
        return merged_signals((row.report.signals for row in self.senders if row.report is not None), self.elapsed)

    @property
    def totals(self) -> SendReport:
        """The fleet as if it were one sender."""
        return SendReport(elapsed=self.elapsed, signals=self.signals,
                          target_events_per_second=self.target_events_per_second, processes=len(self.senders),
                          interrupted=self.interrupted, breaches=list(self.breaches), stages=self.stages,
                          tenants=merged_tenants(row.report.tenants for row in self.senders
                                                 if row.report is not None))

    @property
    def delivered(self) -> int:
        return self.totals.delivered

    @property
    def events_per_second(self) -> float:
        return self.totals.events_per_second

    @property
    def nodes(self) -> int:
        return len({row.node for row in self.senders})

    @property
    def lower_bound(self) -> bool:
        """Whether the totals are lower bounds: a sender died, and what it
        delivered after its last report is delivered but not counted."""
        return any(row.died is not None for row in self.senders)

    def failures(self) -> list[str]:
        """Why the run failed, or []: a sender died, or the fleet's totals
        failed as a single sender's would (see SendReport.failures)."""
        died = [f"sender {row.index}: {row.status}" for row in self.senders if row.died is not None]
        return died + self.totals.failures()

    def summary(self) -> str:
        totals = signal_lines(self.totals)
        if self.lower_bound:
            dead = ", ".join(str(row.index) for row in self.senders if row.died is not None)
            totals = [f"  totals are lower bounds: sender(s) {dead} died, and what they delivered after their "
                      "last report is not counted", *(_at_least(line) for line in totals)]
        lines = [f"Fleet of {len(self.senders)} senders on {self.nodes} node(s), {self.elapsed:.1f} s"
                 + (" (interrupted)" if self.interrupted else ""), *totals]
        lines.append(f"  {'sender':>6s}  {'node':12s}  {'delivered':>13s}  {'events/s':>11s}  {'failed':>9s}  "
                     f"{'rejected':>9s}  status")
        for row in self.senders:
            report = row.report
            delivered = report.delivered if report else 0
            failed = sum(s.failed for s in report.signals.values()) if report else 0
            rejected = sum(s.rejected for s in report.signals.values()) if report else 0
            rate = report.events_per_second if report else 0.0
            prefix = "at least " if row.died is not None else ""
            lines.append(f"  {row.index:>6d}  {row.node[:12]:12s}  {prefix}{delivered:>13,}  {rate:>11,.0f}  "
                         f"{failed:>9,}  {rejected:>9,}  {row.status}")
        return "\n".join(lines + loss_lines(self.totals))

    def to_dict(self) -> dict:
        totals = self.totals.to_dict()
        totals.pop("processes")
        # A dead sender's counts are its last report's: the totals are at least these.
        return {**totals, "lower_bound": self.lower_bound, "senders": [
            {"index": row.index, "node": row.node, "status": row.status, "died": row.died,
             "report": row.report.to_dict() if row.report else None} for row in self.senders]}


def _at_least(line: str) -> str:
    """A summary line's delivered count said as a lower bound."""
    head, sep, rest = line.partition(" delivered (")
    if not sep:
        return line
    label, _, number = head.rstrip().rpartition(" ")
    return f"{label} at least {number} delivered ({rest}"


def merged_signals(parts: Iterable[Mapping[str, SignalReport]], elapsed: float) -> dict[str, SignalReport]:
    """Per signal, the parts' counts summed and their histograms merged
    (exactly: the fleet's percentiles are of every request)."""
    out: dict[str, SignalReport] = {}
    for signals in parts:
        for name, own in signals.items():
            total = out.setdefault(name, SignalReport(signal=name))
            for key in _SUMMED:
                setattr(total, key, _sum(getattr(total, key), getattr(own, key)))
            total.latency = {kind: Histogram.merged([h, own.latency[kind]]) for kind, h in total.latency.items()}
            merge_reasons(total.reasons, own.reasons)
    for total in out.values():
        total.events_per_second = total.delivered / elapsed if elapsed > 0 else 0.0
    return out


def _sum(a: int | None, b: int | None) -> int | None:
    """A count summed over senders; None (a count that signal does not
    keep, such as traces_delivered for logs) stays None."""
    return b if a is None else a if b is None else a + b


def merged_stages(reports: Iterable[SendReport], plan: RatePlan) -> list[StageReport]:
    """The fleet's row per stage: every sender's row of that stage summed,
    the targets the fleet-wide plan's."""
    by_index: dict[int, list[StageReport]] = {}
    for report in reports:
        for stage in report.stages:
            by_index.setdefault(stage.index, []).append(stage)
    out = []
    for index in sorted(by_index):
        parts = by_index[index]
        segment = plan.segments[index]
        end = max(part.end for part in parts)
        seconds = max(min(end, segment.end) - segment.start, 0.0)
        out.append(StageReport(
            index=index, of=len(plan.stages), start=segment.start, planned_end=segment.end, end=end,
            target_from=segment.rate_from, target_to=segment.rate_to,
            planned_events=plan.events_by(min(end, segment.end)) - plan.events_by(segment.start),
            signals=merged_signals((part.signals for part in parts), seconds)))
    return out
