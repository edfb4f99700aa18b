"""The capacity search's limits and pacing (sending.search, or --find-max)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

# Windows per step: a step is judged on all but its first (see judge).
WINDOWS_PER_STEP = 5
# min_rate 0 (auto): the least rate that sends this many requests per
# window (sends come a request at a time: fewer make lumpy windows), and
# at least AUTO_MIN_RATE.
REQUESTS_PER_WINDOW = 4
AUTO_MIN_RATE = 1000.0
# An auto min_rate that fails is probed downward, by `factor`, to this.
AUTO_FLOOR = 100.0


@dataclass(frozen=True)
class SearchSettings:
    signal: str = "all"
    min_rate: float = 0.0  # 0: auto (see resolved)
    max_rate: float = 0.0  # 0: no bound but the sender's
    factor: float = 2.0
    step_duration: float = 10.0
    cooldown: float = 5.0
    hold: float = 60.0
    resolution: float = 0.05
    min_step: float = 0.0  # events/s: the bracket closes within this too
    max_error_share: float = 0.01
    max_p99: float = 1.0  # seconds; 0: no latency limit
    min_delivered_share: float = 0.9
    # min_rate was chosen (resolved from 0): a first step that fails is then
    # not the end, the search probes downward to AUTO_FLOOR.
    auto_min: bool = False

    @classmethod
    def from_config(cls, config) -> SearchSettings:
        """From a SearchConfig (the same fields, and `enabled`)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if f.name != "auto_min"})

    def resolved(self, request_events: float, processes: int) -> SearchSettings:
        """min_rate 0 made the rate that sends REQUESTS_PER_WINDOW requests of
        `request_events` (each process's share) in a window."""
        if self.min_rate > 0:
            return self
        least = REQUESTS_PER_WINDOW * request_events * processes / self.window
        rate = max(AUTO_MIN_RATE, least)
        if self.max_rate:
            rate = min(rate, self.max_rate)
        return replace(self, min_rate=rate, auto_min=True)

    @property
    def floor(self) -> float:
        """The least rate searched: min_rate as given, or AUTO_FLOOR below an auto one."""
        return min(AUTO_FLOOR, self.min_rate) if self.auto_min else self.min_rate

    def coarse(self, request_events: float, processes: int) -> str | None:
        """A warning when min_rate's windows see fewer than REQUESTS_PER_WINDOW
        of the largest requests: their verdicts would be coarse."""
        least = REQUESTS_PER_WINDOW * request_events * processes / self.window
        if self.min_rate >= least or self.auto_min:
            return None
        return (f"warning: at min_rate {self.min_rate:,.0f}/s a {self.window:g} s window sees fewer than "
                f"{REQUESTS_PER_WINDOW} of the largest requests ({request_events:,.0f} events): the first steps "
                f"are judged coarsely; lengthen step_duration, use smaller batch_size, or start at "
                f"{least:,.0f}/s (min_rate: 0 does)")

    @property
    def window(self) -> float:
        """Seconds per window: a step's counts are read this often."""
        return self.step_duration / WINDOWS_PER_STEP

    def describe(self) -> str:
        """The setup line's account of what the search will do."""
        top = f"up to {self.max_rate:,.0f}/s" if self.max_rate else "with no upper bound but the sender's"
        p99 = f", p99 over {self.max_p99 * 1e3:,.0f} ms" if self.max_p99 else ""
        hold = f"; the knee is held {self.hold:g} s to confirm it" if self.hold else ""
        return (f"Searching for the most {self.signal if self.signal != 'all' else 'the mix of signals'} the backend "
                f"takes: from {self.min_rate:,.0f}/s x{self.factor:g} per step {top}, then bisecting to "
                f"{100 * self.resolution:g} %; steps of {self.step_duration:g} s with {self.cooldown:g} s cool-down; "
                f"a step fails on more than {100 * self.max_error_share:g} % refused{p99}, or under "
                f"{100 * self.min_delivered_share:g} % of the offered rate delivered{hold}")
