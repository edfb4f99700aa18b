"""Churn: every `every` seconds, `fraction` of the metric series are replaced
by new ones, as when pods restart and their instance ids change.

A metric batch's copy (an item of the pass: batch, replica) is the unit: in
each interval, fraction x items of the pass's metric items are chosen (to
within one item, the remainder carried to the next interval; the same
choice in every worker process: a sample seeded by the interval), and each chosen item's next send writes its copy number plus
`churn_stride` times its churns so far into the fixed-width digits of its
`service.instance.id` and `telegen.replica` (SeriesCopies keeps CHURN_DIGITS
more digits for that): every series of the item is new, the old ones are
no longer written. A new series starts as a restarted process's would: its
cumulative start at its first send, its counters from the template's value.
The worker counts the series each churn creates (OTLP and Prometheus-style),
so the run's `series_total` is the distinct series it wrote.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

CHURN_DIGITS = 5  # room for 99,999 churns of one copy; beyond, numbers wrap (and repeat old series)


@dataclass
class Epoch:
    """A copy's current series (for one tenant): how many churns made it, and
    where its cumulative values start."""

    churns: int = 0
    start_ns: int = 0  # its cumulative start (0: the run's)
    generation: int = 0  # the generation its counters grow from


class Churn:
    """One worker's view of churn: how often each metric item was replaced,
    and each of its copies' (per tenant) current series."""

    def __init__(self, fraction: float, every: float, items: int, started: float | None = None) -> None:
        self.fraction, self.every, self.items = fraction, every, items
        self.started = time.monotonic() if started is None else started
        self.interval = 0  # intervals applied so far
        self.churns: dict[int, int] = {}
        self.epochs: dict[tuple[int, int], Epoch] = {}

    def chosen(self, interval: int) -> list[int]:
        """The items (by churn_index) replaced at the start of `interval` (>= 1):
        the same in every process. As many as keep the items replaced so far
        at `fraction` of the items per interval, to within one item: with few
        items (big batches) some intervals replace none, and the share holds
        over a run."""
        due = math.floor(interval * self.fraction * self.items + 1e-9)
        done = math.floor((interval - 1) * self.fraction * self.items + 1e-9)
        return random.Random(interval).sample(range(self.items), min(due - done, self.items))

    def epoch(self, index: int, tenant: int, now_ns: int, generation: int) -> tuple[Epoch, bool]:
        """Item `index`'s current series for `tenant`, and whether this send is
        its first (a new series: its start and its counters' growth from now)."""
        current = int((time.monotonic() - self.started) // self.every)
        while self.interval < current:
            self.interval += 1
            for chosen in self.chosen(self.interval):
                self.churns[chosen] = self.churns.get(chosen, 0) + 1
        churns = self.churns.get(index, 0)
        epoch = self.epochs.get((index, tenant))
        if epoch is None:
            epoch = self.epochs[(index, tenant)] = Epoch()
        if epoch.churns == churns:
            return epoch, False
        epoch = self.epochs[(index, tenant)] = Epoch(churns, now_ns, generation)
        return epoch, True
