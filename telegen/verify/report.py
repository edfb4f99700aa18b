"""What `telegen verify` found, per signal, and the threshold that fails it:
stored against sent, the loss, whole traces, the ingest-to-query lag. The
printed lines and the `verify` object of --stats-json come from here."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_LOSS_PERCENT = 0.0


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in (0, 1]); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class SignalVerdict:
    """One signal at one backend. `sent` is None when the run delivered none
    of the signal (nothing is judged then)."""

    signal: str
    backend: str
    url: str
    unit: str
    sent: int | None
    stored: int | None = None
    max_loss_percent: float = DEFAULT_MAX_LOSS_PERCENT
    settled: str = ""  # how counting ended: reached what was sent, stopped rising, timed out short of it
    settle_seconds: float = 0.0
    traces_sent: int | None = None
    traces_stored: int | None = None
    traces_with_missing_parent: int | None = None
    lag_samples_ms: list[float] = field(default_factory=list)
    lag_unresolved: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the backend could not be counted

    @property
    def judged(self) -> bool:
        return bool(self.sent) and self.stored is not None

    @property
    def missing(self) -> int:
        return max((self.sent or 0) - (self.stored or 0), 0) if self.judged else 0

    @property
    def extra(self) -> int:
        return max((self.stored or 0) - (self.sent or 0), 0) if self.judged else 0

    @property
    def loss_percent(self) -> float | None:
        return 100.0 * self.missing / self.sent if self.judged and self.sent else None

    @property
    def passed(self) -> bool:
        if self.error is not None:
            return False
        return not self.judged or (self.loss_percent or 0.0) <= self.max_loss_percent

    @property
    def lag_p50_ms(self) -> float | None:
        return percentile(self.lag_samples_ms, 0.50)

    @property
    def lag_p99_ms(self) -> float | None:
        return percentile(self.lag_samples_ms, 0.99)

    def failure(self) -> str | None:
        """Why this signal fails the run, or None."""
        if self.error is not None:
            return f"{self.signal}: {self.backend}: {self.error}"
        if self.passed:
            return None
        return (f"{self.signal}: {self.missing:,} of {self.sent:,} {self.unit} missing at {self.backend} "
                f"({self.loss_percent:.2f} %, over --max-loss {self.max_loss_percent:g} %)")

    def line(self) -> str:
        head = f"  {self.signal:8s} {self.backend:13s}"
        if self.error is not None:
            return f"{head} not counted: {self.error}"
        if not self.sent:
            return f"{head} none delivered by this run: nothing to count"
        if self.stored is None:
            return f"{head} {self.sent:,} {self.unit} sent; this backend does not count {self.signal}"
        text = (f"{head} {self.stored:,} of {self.sent:,} {self.unit} stored ({self.missing:,} missing, "
                f"{self.loss_percent:.2f} %{f', {self.extra:,} more than sent' if self.extra else ''})")
        if self.traces_stored is not None:
            of = f" of {self.traces_sent:,}" if self.traces_sent is not None else ""
            text += (f"; {self.traces_stored:,}{of} traces, {self.traces_with_missing_parent:,} with a span whose "
                     f"parent is missing")
        text += f"; counted in {self.settle_seconds:.1f} s ({self.settled})"
        if self.lag_samples_ms:
            unresolved = f", {self.lag_unresolved} never found" if self.lag_unresolved else ""
            text += (f"; lag p50 {self.lag_p50_ms:,.0f} ms, p99 {self.lag_p99_ms:,.0f} ms "
                     f"({len(self.lag_samples_ms)} sample{'s' if len(self.lag_samples_ms) > 1 else ''}{unresolved})")
        return text

    def to_dict(self) -> dict:
        out: dict = {"backend": self.backend, "url": self.url, "unit": self.unit, "sent": self.sent,
                     "stored": self.stored, "missing": self.missing, "extra": self.extra,
                     "loss_percent": None if self.loss_percent is None else round(self.loss_percent, 4),
                     "max_loss_percent": self.max_loss_percent, "passed": self.passed,
                     "settled": self.settled, "settle_seconds": round(self.settle_seconds, 3),
                     "lag_p50_ms": self.lag_p50_ms, "lag_p99_ms": self.lag_p99_ms,
                     "lag_samples_ms": list(self.lag_samples_ms), "lag_unresolved": self.lag_unresolved,
                     "notes": list(self.notes), "error": self.error}
        if self.traces_stored is not None or self.traces_sent is not None:
            out.update(traces_sent=self.traces_sent, traces_stored=self.traces_stored,
                       traces_with_missing_parent=self.traces_with_missing_parent)
        return out


@dataclass
class VerifyReport:
    verdicts: list[SignalVerdict]

    def failures(self) -> list[str]:
        return [reason for verdict in self.verdicts if (reason := verdict.failure()) is not None]

    def lines(self) -> list[str]:
        lines = ["Verified against the backends (stored / sent, in the run's window):"]
        for verdict in self.verdicts:
            lines.append(verdict.line())
            lines += [f"  {'':8s} {'':13s} note: {note}" for note in verdict.notes]
        return lines

    def to_dict(self) -> dict:
        """`verify` in --stats-json: {signal: {sent, stored, lag_p50_ms, lag_p99_ms, ...}}."""
        return {verdict.signal: verdict.to_dict() for verdict in self.verdicts}
