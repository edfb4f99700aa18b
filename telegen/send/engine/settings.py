"""What a run is told: targets, rate or stages, bounds, concurrency, hooks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..load.compression import PATCHABLE, BodyEncoding, body_encoding
from ..report import SendReport
from ..scenarios import Scenarios
from ..tenants import Tenants
from ..transport import RetryPolicy, Target
from .plan import RatePlan, Stage

if TYPE_CHECKING:
    from ..search.control import ControlledPlan, RateControl
    from .schedule import ScheduleItem


@dataclass(frozen=True)
class SendSettings:
    targets: dict[str, Target]
    events_per_second: float = 0  # 0: as fast as possible
    # Ramping stages (k6's meaning): when given, they set the rate over time
    # instead of events_per_second, and the run lasts as long as they do.
    stages: tuple[Stage, ...] = ()
    concurrency: int = 50
    duration: float = 0.0  # seconds; 0: no time bound
    passes: int = 0  # 0: no pass bound
    processes: int = 1
    jitter_ns: int = 0
    # Seconds between a metric series' samples at least (an SDK's export
    # interval); 0: as often as the rate asks and the backend answers.
    metric_interval: float = 0.0
    backdate_ns: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stats_interval: float = 5.0
    drain_timeout: float = 10.0
    # How gzip bodies are made where the carrier sends them as given
    # (OTLP/HTTP): "patchable" (compressed once, patched per send) or "zlib".
    gzip_encoder: str = PATCHABLE
    # Likewise for zstd bodies: "patchable" or "library" (zstandard, level 1).
    zstd_encoder: str = PATCHABLE
    # Called with each progress interval's figures (a SendReport of that
    # interval); a reason returned stops the run early as aborted.
    abort_check: Callable[[SendReport], str | None] | None = None
    # Called with each finished stage's figures (as a report of their own);
    # the lines returned (thresholds it breached) are kept with the stage.
    stage_check: Callable[[SendReport], list[str]] | None = None
    # How a batch becomes request bytes: None patches with the compiled
    # kernel (every real run). Benchmarks swap in the unpatched bytes (the
    # transport's ceiling) or a naive protobuf re-encoder to compare against.
    prepare: Callable[[ScheduleItem], bytes] | None = None
    # Called with each batch's patched bytes (before any gzip) and the time
    # they were patched at, just before they go to the transport: how
    # `telegen send --verify` samples sent batches to time how soon a backend
    # can be queried for them (telegen.verify.probe). None (every run without
    # --verify) costs the send path one test per batch. It runs in the worker
    # (a forked process with `processes` > 1), so it must be cheap and hand
    # anything it keeps to its own process-safe channel.
    on_sent: Callable[[ScheduleItem, bytes, int], None] | None = None
    # The messy traffic asked for (bursts, late data, skewed clocks, delayed
    # children, churn); all off by default.
    scenarios: Scenarios = field(default_factory=Scenarios)
    # Several tenants (otlp.tenants; telegen.send.tenants): who each send is
    # for. None: one tenant, the targets' own headers.
    tenants: Tenants | None = None
    # A rate a controller moves while the run goes (the capacity search,
    # telegen.send.search): it replaces events_per_second and stages, and
    # the run lasts until the controller stops it. The workers then also
    # count each attempt's answer and their CPU for it.
    rate_control: RateControl | None = None
    # The progress lines every stats_interval (off under a search: its steps are the lines).
    progress_lines: bool = True

    def body_encoding(self, signal: str) -> BodyEncoding:
        """How this signal's request bodies are made (compressed by the engine or not)."""
        return body_encoding(self.targets[signal], self.gzip_encoder, self.zstd_encoder)

    @property
    def plan(self) -> RatePlan | ControlledPlan:
        if self.rate_control is not None:
            return self.rate_control.plan()
        return RatePlan(self.stages, self.events_per_second)


def target_rate(settings: SendSettings) -> float:
    """The run's target events/s: with stages, their average over the run."""
    if settings.rate_control is not None:
        control = settings.rate_control
        return control.average(0.0, control.now())
    plan = settings.plan
    return plan.average(0.0, plan.duration) if plan.staged else settings.events_per_second

