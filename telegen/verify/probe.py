"""The ingest-to-query lag, measured while a run sends.

`SentBatchSampler` is the engine's `on_sent` hook (SendSettings.on_sent): in
the worker, at most once a second per signal, it notes a batch's hand-over
time and what finds it in the backend (a trace id read at a planned offset
of the patched bytes; for metrics the labels of its first resource and the
newest point time, decoded from the batch with the official protobuf
classes), and puts that Probe on a pipe the forked workers share. Every
other batch costs one clock read and a comparison.

`LagWatcher` reads the probes in the sending process and polls the backend
every 100 ms until each can be queried (giving up after a bound); the time
from hand-over to the answer that first found it is one lag sample."""
from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from ..promstyle import data_points, job_instance
from .backend import Backend, Probe
from .http import BackendError

SAMPLE_EVERY = 1.0  # seconds between probes of one signal, per sending process
POLL_EVERY = 0.1  # seconds between looks for a pending probe
MOST_PENDING = 8  # probes of one signal looked for at once; more are skipped
LAG_GRACE = 1.0  # seconds a probe is still looked for once the counts have settled


class _Plan(Protocol):
    ids16: npt.NDArray[np.int64]  # rows of [byte offset of a trace id, id group]


class _Batch(Protocol):
    plan: _Plan
    pieces: tuple[tuple[int, int], ...]


class _Item(Protocol):
    """What the hook is handed (telegen.send.engine.ScheduleItem)."""

    signal: str
    batch: _Batch


class SentBatchSampler:
    """The `on_sent` hook: samples sent batches into Probes for a LagWatcher."""

    def __init__(self, signals: Iterable[str], every: float = SAMPLE_EVERY) -> None:
        self.signals = frozenset(signals)
        self.every = every
        # Made before the workers fork: they inherit the pipe's writing end.
        self._channel = multiprocessing.get_context("fork").SimpleQueue()
        self._next: dict[str, float] = {}

    def __call__(self, item: _Item, data: bytes, now_ns: int) -> None:
        """SendSettings.on_sent. `now_ns`, the patch's stamp, is not needed:
        the times a probe looks for are read from the patched bytes."""
        signal = item.signal
        if signal not in self.signals:
            return
        now = time.monotonic()
        if now < self._next.get(signal, 0.0):
            return
        probe = probe_for(signal, item.batch, data)
        if probe is not None:
            self._next[signal] = now + self.every
            self._channel.put(probe)

    def receive(self) -> Probe | None:
        """The next probe (blocking); None once `close` was called."""
        return self._channel.get()

    def close(self) -> None:
        self._channel.put(None)


def probe_for(signal: str, batch: _Batch, data: bytes) -> Probe | None:
    """What finds this send of `batch` (patched bytes `data`); None if
    nothing does (a log batch without trace ids, a resource without service)."""
    handed_ns = time.time_ns()
    if signal in ("traces", "logs"):
        rows = batch.plan.ids16
        if not len(rows):
            return None
        offset = int(rows[0, 0])
        return Probe(signal, handed_ns, trace_id=data[offset:offset + 16].hex())
    if signal == "metrics":
        start, end = batch.pieces[0]
        request = ExportMetricsServiceRequest.FromString(data[start:end])
        if not request.resource_metrics:
            return None
        resource = request.resource_metrics[0]
        labels = job_instance({kv.key: kv.value.string_value for kv in resource.resource.attributes})
        newest = max((point.time_unix_nano for scope in resource.scope_metrics for metric in scope.metrics
                      for point in data_points(metric)[1]), default=0)
        if not labels or not newest:
            return None
        return Probe(signal, handed_ns, labels=labels, newest_ms=newest // 1_000_000)
    return None


@dataclass
class LagSamples:
    """One signal's lags (ms), and the probes never found or left out."""

    samples_ms: list[float] = field(default_factory=list)
    unresolved: int = 0  # still not queryable when the watcher gave up on them
    skipped: int = 0  # sampled while MOST_PENDING were still looked for
    error: str | None = None  # the last failed look, if any


class LagWatcher:
    """Reads a sampler's probes and looks for each in its signal's backend
    every POLL_EVERY s, for at most `give_up` s."""

    def __init__(self, sampler: SentBatchSampler, backends: Mapping[str, Backend], give_up: float = 30.0) -> None:
        self.sampler = sampler
        self.backends = dict(backends)
        self.give_up = give_up
        self.results = {signal: LagSamples() for signal in self.backends}
        self._pending: list[Probe] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="telegen-lag-reader", daemon=True)
        self._poller = threading.Thread(target=self._poll, name="telegen-lag-poller", daemon=True)

    def start(self) -> LagWatcher:
        self._reader.start()
        self._poller.start()
        return self

    def finish(self, wait: float) -> dict[str, LagSamples]:
        """After the run: look for the probes still pending for at most
        `wait` s more, then stop; every signal's samples."""
        self.sampler.close()
        self._reader.join(timeout=5)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(POLL_EVERY / 2)
        self._closed.set()
        self._poller.join(timeout=5)
        with self._lock:
            for probe in self._pending:
                self.results[probe.signal].unresolved += 1
            self._pending.clear()
        return self.results

    def _read(self) -> None:
        while (probe := self.sampler.receive()) is not None:
            if probe.signal not in self.backends:
                continue
            with self._lock:
                if sum(p.signal == probe.signal for p in self._pending) >= MOST_PENDING:
                    self.results[probe.signal].skipped += 1
                else:
                    self._pending.append(probe)

    def _poll(self) -> None:
        while not self._closed.wait(POLL_EVERY):
            with self._lock:
                pending = list(self._pending)
            for probe in pending:
                self._look(probe)

    def _look(self, probe: Probe) -> None:
        result = self.results[probe.signal]
        try:
            found = self.backends[probe.signal].visible(probe)
        except BackendError as exc:
            found, result.error = False, str(exc)
        now_ns = time.time_ns()
        gave_up = not found and now_ns - probe.handed_ns > self.give_up * 1e9
        if found or gave_up:
            with self._lock:
                self._pending.remove(probe)
                if found:
                    result.samples_ms.append(round((now_ns - probe.handed_ns) / 1e6, 1))
                else:
                    result.unresolved += 1
