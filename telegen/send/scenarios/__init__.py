"""Scenarios: the messy traffic real backends must survive, each off until
asked for (`sending.scenarios`; docs/scenarios.md). Each keeps every other
invariant: unique ids, whole traces once all their parts are sent,
counters monotonic within a series, each series in time order, exact counts.

    burst             the rate times a factor for a while, every so often (burst.py)
    late              a share of span and log sends carry times far in the past (engine)
    clock_skew        some services' clocks are off by a fixed amount (skew.py)
    delayed_children  a share of traces: their non-root spans go out later than the root (delayed.py)
    churn             a share of metric series replaced by new ones every interval (churn.py)
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..engine.plan import RatePlan
from .burst import BurstPlan

if TYPE_CHECKING:
    from ..config.schema import ScenariosConfig
    from ..load.batches import SignalTemplates

__all__ = ["BurstPlan", "Scenarios", "prepare_scenarios"]


@dataclass(frozen=True)
class Scenarios:
    """What a run does beyond replaying its templates; all off by default."""

    skew_services: int = 0
    skew_max: float = 0.0  # seconds
    late_fraction: float = 0.0
    late_by: float = 0.0  # seconds
    delayed_fraction: float = 0.0
    delayed_by: float = 0.0  # seconds
    churn_fraction: float = 0.0
    churn_every: float = 0.0  # seconds
    burst_every: float = 0.0  # seconds; 0: no bursts
    burst_for: float = 0.0
    burst_factor: float = 1.0
    # Set at load: the skew each affected service got (ns), by service name;
    # the metric items of a pass (what churn chooses from).
    skews: dict[str, int] = field(default_factory=dict)
    churn_items: int = 0

    @classmethod
    def from_config(cls, config: ScenariosConfig) -> Scenarios:
        return cls(skew_services=config.clock_skew.services, skew_max=config.clock_skew.max,
                   late_fraction=config.late.fraction, late_by=config.late.by,
                   delayed_fraction=config.delayed_children.fraction, delayed_by=config.delayed_children.by,
                   churn_fraction=config.churn.fraction, churn_every=config.churn.every,
                   burst_every=config.burst.every, burst_for=config.burst.for_, burst_factor=config.burst.factor)

    @property
    def late(self) -> bool:
        return self.late_fraction > 0 and self.late_by > 0

    @property
    def bursts(self) -> bool:
        return self.burst_every > 0 and self.burst_factor != 1.0

    @property
    def delayed(self) -> bool:
        return self.delayed_fraction > 0

    @property
    def churn(self) -> bool:
        return self.churn_fraction > 0

    @property
    def skew(self) -> bool:
        return self.skew_services > 0 and self.skew_max > 0

    @property
    def any(self) -> bool:
        return self.late or self.bursts or self.delayed or self.churn or self.skew

    def rate_plan(self, plan: RatePlan) -> RatePlan | BurstPlan:
        """`plan` with the bursts on top (a plan without a rate has none)."""
        if not self.bursts or plan.unthrottled:
            return plan
        return BurstPlan(plan, self.burst_every, self.burst_for, self.burst_factor)

    def lines(self) -> list[str]:
        """What the setup says the run will do beyond replaying."""
        out = []
        if self.bursts:
            out.append(f"scenario burst: the rate x{self.burst_factor:g} for {self.burst_for:g} s every "
                       f"{self.burst_every:g} s")
        if self.late:
            out.append(f"scenario late: {self.late_fraction:.1%} of span and log sends {self.late_by:g} s in the past")
        if self.skew:
            shown = ", ".join(f"{name} {ns / 1e6:+,.0f} ms" for name, ns in self.skews.items()) or "none found"
            out.append(f"scenario clock_skew: {shown}")
        if self.delayed:
            out.append(f"scenario delayed_children: {self.delayed_fraction:.1%} of traces send their children "
                       f"{self.delayed_by:g} s after their root")
        if self.churn:
            out.append(f"scenario churn: {self.churn_fraction:.1%} of metric series replaced every "
                       f"{self.churn_every:g} s")
        return out


def prepare_scenarios(loaded: Sequence[SignalTemplates], scenarios: Scenarios, max_bytes: int,
                      rng: random.Random | None = None) -> tuple[list[SignalTemplates], Scenarios]:
    """The loaded templates as the scenarios need them (skewed services'
    times moved, delayed children cut off), once, before anything is sent;
    and `scenarios` with the skews drawn."""
    from .delayed import with_delayed_children
    from .skew import draw_skews, services_of, skewed

    rng = rng or random.Random()
    out = list(loaded)
    if scenarios.skew:
        skews = draw_skews(services_of(out), scenarios.skew_services, scenarios.skew_max, rng)
        out = skewed(out, skews)
        scenarios = dataclasses.replace(scenarios, skews=skews)
    if scenarios.delayed:
        out = with_delayed_children(out, scenarios.delayed_fraction, max_bytes, rng)
    if scenarios.churn:
        out = [_with_series(t) if t.signal == "metrics" else t for t in out]
    return out, scenarios


def _with_series(templates: SignalTemplates) -> SignalTemplates:
    """Each metric batch with the series one copy of it writes (what a churn of it creates)."""
    from ..load.series import count_series
    from ..shard import SeriesCopies

    def one(batch):
        counted = count_series(dataclasses.replace(templates, batches=(batch,), copies=SeriesCopies()))
        return dataclasses.replace(batch, series=(counted.otlp, counted.prometheus))
    return dataclasses.replace(templates, batches=tuple(one(b) for b in templates.batches))
