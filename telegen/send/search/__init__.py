"""The capacity search (`telegen send --find-max`, `sending.search`): the
offered rate is moved step by step, each step judged by what the backend
answered, until the most it sustains is found, and who was the bottleneck.

    control   RateControl: a rate moved while the run goes, read by the workers
    settings  SearchSettings: the limits and pacing
    planner   Planner: the next rate (exponential probe, then a hinted bisection)
    judge     a step's verdict from its windows (sender, errors, latency, delivery)
    driver    Search: the steps, cool-downs and hold against a Driver
    local     one sender as a Driver; report: SearchReport (lines, JSON, chart)
"""
from __future__ import annotations

from .control import ControlledPlan, RateControl
from .driver import Driver, Search
from .judge import Reading, Window, judge
from .planner import Planner
from .report import SearchReport, SearchStep
from .settings import SearchSettings

__all__ = ["ControlledPlan", "Driver", "Planner", "RateControl", "Reading", "Search", "SearchReport", "SearchSettings",
           "SearchStep", "Window", "judge"]
