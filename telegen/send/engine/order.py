"""Metric time that backends accept: every send of a metric batch belongs to
a generation, all of whose points carry one timestamp, and generation g+1
starts only once every metric request of generation g has been answered, in
every worker process.

Why: a Prometheus-style store appends a series' samples in time order and
rejects a whole request holding a sample older than one it already has. With
many requests in flight, pass k+1's request for a series could overtake
pass k's; and `target_info`, one series per resource written by every
request that holds a point of that resource, spans batches, so the order
must hold across batches and processes, not per batch. One timestamp per
generation makes the `target_info` samples of one generation equal (a store
keeps one), and strictly rising stamps (at least 1 ms apart: stores keep
milliseconds) mean no two samples of a series share a timestamp.

The processes agree through shared memory: each writes the last generation
it finished; once all have finished g, the first to start g+1 stamps it with
its clock (at least 1 ms, or the export interval, after g's) and publishes
the stamp for the others.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Hashable, Iterable
from multiprocessing.sharedctypes import RawArray

MIN_STEP_NS = 1_000_000  # stores keep milliseconds
# Shared slots per process: the last generation it finished.
_SLOTS = 1
_NO_METRICS = 2**62  # a process without metric batches never holds the others back


class Generations:
    """The shared state of a run's metric generations, made before forking."""

    def __init__(self, processes: int, start_ns: int, interval: float = 0.0) -> None:
        self.processes = max(1, processes)
        self.start_ns = start_ns  # the first generation's stamp, alike in every process
        self.interval_ns = int(interval * 1e9)
        # Then the latest generation stamped and its stamp, under `lock`.
        self.shared = RawArray("q", self.processes * _SLOTS + 2)
        self.lock = multiprocessing.get_context("fork").Lock()
        for index in range(self.processes):
            self.shared[index * _SLOTS] = -1
        self.shared[-2], self.shared[-1] = 1, start_ns

    def worker(self, index: int, keys: Iterable[Hashable]) -> WorkerGenerations:
        return WorkerGenerations(self, index, keys)


class WorkerGenerations:
    """One worker's view: which of its metric batches (keys) went out in the
    current generation, how many of its requests are unanswered, and the
    stamp of the generation."""

    def __init__(self, generations: Generations, index: int, keys: Iterable[Hashable],
                 clock=time.time_ns) -> None:
        self._shared = generations.shared
        self._shared_lock = generations.lock
        self._processes = generations.processes
        self._interval_ns = generations.interval_ns
        self._start_ns = generations.start_ns
        self._index = index
        self._clock = clock
        self._keys = set(keys)
        self._lock = threading.Lock()
        self.generation = 0
        self.stamp_ns = 0
        self._sent: set[Hashable] = set()
        self._pending = 0
        if not self._keys:
            self._shared[index * _SLOTS] = _NO_METRICS

    def take(self, key: Hashable) -> int | None:
        """The timestamp for sending metric batch `key` now, or None when it
        must wait: it already went out this generation, and the next cannot
        start yet (requests of this one unanswered here or in another
        process, or the export interval not yet over)."""
        with self._lock:
            if self.generation == 0:
                self._start(self._start_ns)
            elif key in self._sent:
                stamp = self._next_stamp()
                if stamp is None:
                    return None
                self._start(stamp)
            self._sent.add(key)
            self._pending += 1
            if len(self._sent) == len(self._keys):
                self._maybe_finished()
            return self.stamp_ns

    def answered(self) -> None:
        """A metric batch of the current generation has its outcome."""
        with self._lock:
            self._pending -= 1
            self._maybe_finished()

    def _start(self, stamp: int) -> None:
        self.generation += 1
        self.stamp_ns = stamp
        self._sent.clear()

    def _maybe_finished(self) -> None:
        if self._pending == 0 and len(self._sent) == len(self._keys):
            self._shared[self._index * _SLOTS] = self.generation

    def _next_stamp(self) -> int | None:
        """Generation g+1's stamp once every process has finished g: the
        clock of the first process to start it, published for the others."""
        g = self.generation
        for index in range(self._processes):
            if self._shared[index * _SLOTS] < g:
                return None
        with self._shared_lock:
            if self._shared[-2] == g + 1:
                return self._shared[-1]
            now = self._clock()
            if now < self.stamp_ns + self._interval_ns:
                return None  # the export interval is not over yet
            stamp = max(now, self.stamp_ns + MIN_STEP_NS)
            self._shared[-2], self._shared[-1] = g + 1, stamp
            return stamp
