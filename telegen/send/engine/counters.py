"""What workers record while they send: counters and latency histograms in
shared memory (the parent reads them), the reasons for events not delivered,
and error lines that say each reason once."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.sharedctypes import RawArray

import numpy as np

from ...templates import SIGNALS
from ..report import MAX_REASONS, OTHER_REASONS, add_reason, latency, merge_reasons
from ..report.latency import Histogram
from ..transport import Outcome
from ..transport.base import FAILED, REJECTED

# Counters per signal, in this order, in each worker's shared array.
# traces_delivered: the traces of trace batches every event of which was
# delivered (what a trace store should then hold); 0 for other signals.
# The scenarios' (telegen.send.scenarios): late: events sent with times set
# back; delayed: traces whose children went out after their root; series_created:
# metric series that churn made new. Reported under `scenarios`, not per signal.
# answered, refused: the events of request attempts that ended (an answer,
# or a transport error), and of those the events refused (an error answer,
# retried or not, or rejected in a partial success): what the capacity
# search judges a step by. Counted only in runs with a rate_control.
COUNTERS = ("sent", "delivered", "rejected", "failed", "requests", "bytes", "retries", "batches", "traces_delivered",
            "late", "delayed", "series_created", "prometheus_created", "answered", "refused")
SCENARIO_COUNTERS = ("late", "delayed", "series_created", "prometheus_created")
ATTEMPT_COUNTERS = ("answered", "refused")
# Per worker, after its counters in the same array: its process's CPU time
# (forked workers only: one in the parent is the parent's) and the time it
# was held back by the endpoint: waiting for an in-flight slot, or with every
# unsent batch waiting for answers (a metric generation's), microseconds.
# "permanent": events failed with an error retrying cannot fix (a
# certificate nobody trusts, the wrong protocol for the port, 401/404/501):
# with nothing delivered, the parent stops the run early (progress.Watch).
USAGE = ("cpu_us", "slot_wait_us", "permanent")
# Counters per tenant and signal (otlp.tenants), in another shared array:
# [tenant][signal][TENANT_COUNTERS], made only when there are several tenants.
TENANT_COUNTERS = ("sent", "delivered", "rejected", "failed", "requests", "bytes")
_TENANT_INDEX = {name: i for i, name in enumerate(TENANT_COUNTERS)}


class Counters:
    """A worker's counters and latency histograms in shared memory, updated
    from transport threads; the parent reads them while the run goes on."""

    def __init__(self, shared=None, latencies=None, tenants=None) -> None:
        self.shared = shared if shared is not None else new_counter_array()
        self.latencies = latencies if latencies is not None else new_latency_array()
        # Per tenant and signal (new_tenant_array); None: one tenant, whose counts are the signals'.
        self.tenants = tenants
        self.lock = threading.Lock()

    def add(self, signal: str, tenant: int = 0, **values: int) -> None:
        base = SIGNALS.index(signal) * len(COUNTERS)
        with self.lock:
            for name, value in values.items():
                self.shared[base + COUNTERS.index(name)] += value
            if self.tenants is not None:
                at = (tenant * len(SIGNALS) + SIGNALS.index(signal)) * len(TENANT_COUNTERS)
                for name, value in values.items():
                    index = _TENANT_INDEX.get(name)
                    if index is not None:
                        self.tenants[at + index] += value

    def add_outcome(self, signal: str, outcome: Outcome, traces: int = 0, tenant: int = 0) -> None:
        """An outcome's counts and its latencies (one per request attempt, one
        for the batch). `traces`: the batch's traces, counted delivered when
        all of its events were. `tenant`: whose requests they were."""
        base = SIGNALS.index(signal) * len(COUNTERS)
        at = SIGNALS.index(signal) * len(latency.KINDS) * latency.SLOTS
        with self.lock:
            if self.tenants is not None:
                own = (tenant * len(SIGNALS) + SIGNALS.index(signal)) * len(TENANT_COUNTERS)
                self.tenants[own + 1] += outcome.delivered
                self.tenants[own + 2] += outcome.rejected
                self.tenants[own + 3] += outcome.failed
            shared = self.shared
            shared[base + _DELIVERED] += outcome.delivered
            if traces and not outcome.failed and not outcome.rejected:
                shared[base + _TRACES_DELIVERED] += traces
            shared[base + _REJECTED] += outcome.rejected
            shared[base + _FAILED] += outcome.failed
            shared[base + _RETRIES] += outcome.extra.get("retries", 0)
            for seconds in outcome.latencies:
                latency.record(self.latencies, at, seconds)
            if outcome.elapsed:
                latency.record(self.latencies, at + latency.SLOTS, outcome.elapsed)

    def add_usage(self, name: str, value: int) -> None:
        at = len(SIGNALS) * len(COUNTERS) + USAGE.index(name)
        with self.lock:
            self.shared[at] += value

    def set_usage(self, name: str, value: int) -> None:
        self.shared[len(SIGNALS) * len(COUNTERS) + USAGE.index(name)] = value

    @staticmethod
    def usage_totals(arrays: Sequence) -> dict[str, int]:
        """USAGE summed over the workers' arrays."""
        base = len(SIGNALS) * len(COUNTERS)
        return {name: sum(array[base + i] for array in arrays) for i, name in enumerate(USAGE)}

    @staticmethod
    def totals(arrays: Sequence) -> dict[str, dict[str, int]]:
        out = {s: dict.fromkeys(COUNTERS, 0) for s in SIGNALS}
        for array in arrays:
            values = list(array)
            for si, s in enumerate(SIGNALS):
                for ci, c in enumerate(COUNTERS):
                    out[s][c] += values[si * len(COUNTERS) + ci]
        return out

    @staticmethod
    def latency_totals(arrays: Sequence) -> dict[str, dict[str, Histogram]]:
        """Per signal and kind ("request", "batch"), every worker's histogram merged (exactly)."""
        snapshots = [np.frombuffer(array, dtype=np.int64).copy() for array in arrays]
        out: dict[str, dict[str, Histogram]] = {}
        for si, s in enumerate(SIGNALS):
            out[s] = {}
            for ki, kind in enumerate(latency.KINDS):
                at = (si * len(latency.KINDS) + ki) * latency.SLOTS
                out[s][kind] = Histogram.merged(Histogram.from_slots(snap, at) for snap in snapshots)
        return out


def new_counter_array():
    """A worker's counters: COUNTERS per signal, then USAGE."""
    return RawArray("q", len(SIGNALS) * len(COUNTERS) + len(USAGE))


def new_latency_array():
    return RawArray("q", len(SIGNALS) * len(latency.KINDS) * latency.SLOTS)


def new_tenant_array(tenants: int):
    return RawArray("q", tenants * len(SIGNALS) * len(TENANT_COUNTERS))


def tenant_totals(arrays: Sequence, tenants: int) -> list[dict[str, dict[str, int]]]:
    """Per tenant, per signal, TENANT_COUNTERS summed over the workers' arrays."""
    total = np.zeros(tenants * len(SIGNALS) * len(TENANT_COUNTERS), dtype=np.int64)
    for array in arrays:
        total += np.frombuffer(array, dtype=np.int64)
    shaped = total.reshape(tenants, len(SIGNALS), len(TENANT_COUNTERS)).tolist()
    return [{s: dict(zip(TENANT_COUNTERS, shaped[t][si])) for si, s in enumerate(SIGNALS)} for t in range(tenants)]


_DELIVERED, _REJECTED, _FAILED, _RETRIES, _TRACES_DELIVERED = (
    COUNTERS.index(name) for name in ("delivered", "rejected", "failed", "retries", "traces_delivered"))


def signal_counts(signal: str, values: dict[str, int]) -> dict[str, int]:
    """A signal's counters as SignalReport takes them: traces_delivered is
    the traces signal's alone."""
    return {k: v for k, v in values.items()
            if k not in SCENARIO_COUNTERS and k not in ATTEMPT_COUNTERS
            and (signal == "traces" or k != "traces_delivered")}


class Reasons:
    """Events not delivered per signal, kind (FAILED, REJECTED) and reason,
    as a worker counts them from its outcomes (at most MAX_REASONS distinct
    per signal and kind). The parent sums its workers' into the report."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        self.lock = threading.Lock()

    def add(self, signal: str, kind: str, reason: str, events: int) -> None:
        with self.lock:
            add_reason(self.counts.setdefault(signal, {}).setdefault(kind, {}), reason, events)

    def merge(self, counts: dict[str, dict[str, dict[str, int]]]) -> None:
        with self.lock:
            for signal, by_kind in counts.items():
                merge_reasons(self.counts.setdefault(signal, {}), by_kind)

    def of(self, signal: str) -> dict[str, dict[str, int]]:
        """A copy of one signal's reasons, for a report."""
        with self.lock:
            return {kind: dict(by_reason) for kind, by_reason in self.counts.get(signal, {}).items()}


class ErrorLog:
    """What goes wrong, said so that a failing endpoint cannot flood the
    output: each distinct reason once per signal and kind (retrying, failed,
    rejected), at most MAX_REASONS of them (then one line that more are
    counted, not shown), and a reason that another kind already said is
    named by its code, not repeated. The counts are the progress lines' and
    the summary's. `error` is for anything else: once per key per interval."""

    def __init__(self, write: Callable[[str], None], interval: float = 5.0) -> None:
        self.write = write
        self.interval = interval
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}
        self.said: dict[tuple[str, str], set[str]] = {}  # (signal, kind) -> reasons said
        self.reasons_said: dict[str, set[str]] = {}  # signal -> reasons said, by any kind
        self.lock = threading.Lock()

    def error(self, key: str, text: str) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last.get(key, -1e9) < self.interval:
                self.held[key] = self.held.get(key, 0) + 1
                return
            held = self.held.pop(key, 0)
            self.last[key] = now
        suffix = f" (and {held} more like it)" if held else ""
        self.write(f"error: {text}{suffix}")

    def retrying(self, signal: str, reason: str, hint: str = "") -> None:
        """Requests are being retried after `reason`: a wrong endpoint shows at once, not after the back-off."""
        self._once(signal, "retrying", reason, hint,
                   lambda hint, said: f"{signal}: {hint + '; ' if hint else ''}retrying after {said}")

    def failed(self, signal: str, reason: str, events: int, attempts: int, before_any_success: bool,
               hint: str = "") -> None:
        plainly = (" (before any request succeeded: check the endpoint, TLS settings and headers)"
                   if before_any_success else "")
        self._once(signal, FAILED, reason, hint,
                   lambda hint, said: f"{signal}: {hint + ': ' if hint else ''}{events:,} events failed after "
                                      f"{attempts} attempt{'' if attempts == 1 else 's'}: {said}{plainly}")

    def rejected(self, signal: str, reason: str, events: int, hint: str = "") -> None:
        self._once(signal, REJECTED, reason, hint,
                   lambda hint, said: f"{signal}: {hint + ': ' if hint else ''}the endpoint rejected {events:,} "
                                      f"events: {said}")

    def _once(self, signal: str, kind: str, reason: str, hint: str, line: Callable[[str, str], str]) -> None:
        """Write `line(hint, reason)` if `reason` is new for (signal, kind)."""
        with self.lock:
            said = self.said.setdefault((signal, kind), set())
            if reason in said:
                return
            if len(said) >= MAX_REASONS:
                if OTHER_REASONS in said:
                    return
                said.add(OTHER_REASONS)
                text = (f"{signal}: more than {MAX_REASONS} distinct reasons ({kind}); the rest are counted, "
                        "not shown")
            else:
                said.add(reason)
                before = self.reasons_said.setdefault(signal, set())
                repeated = reason in before
                before.add(reason)
                # Said already (while retrying), with its hint: named by its code, not its whole text again.
                text = line("", f"{reason.split(': ', 1)[0]}, as above") if repeated else line(hint, reason)
        self.write(f"error: {text}")


class RelayedErrorLog(ErrorLog):
    """A forked worker's ErrorLog: what it would say goes to the parent's
    ErrorLog through `relay`, so each reason is said once over all workers.
    Each is sent once from here too: the pipe carries a few lines, not one
    per failed batch."""

    def __init__(self, relay: Relay) -> None:
        super().__init__(lambda text: relay.put(("line", text)))
        self.relay = relay
        self.sent: set[tuple[str, str, str]] = set()

    def retrying(self, signal: str, reason: str, hint: str = "") -> None:
        self._forward("retrying", signal, reason, hint)

    def failed(self, signal: str, reason: str, events: int, attempts: int, before_any_success: bool,
               hint: str = "") -> None:
        self._forward(FAILED, signal, reason, events, attempts, before_any_success, hint)

    def rejected(self, signal: str, reason: str, events: int, hint: str = "") -> None:
        self._forward(REJECTED, signal, reason, events, hint)

    def _forward(self, kind: str, signal: str, reason: str, *args: object) -> None:
        with self.lock:
            key = (kind, signal, reason)
            if key in self.sent or sum(1 for k, s, _ in self.sent if (k, s) == (kind, signal)) > MAX_REASONS:
                return
            self.sent.add(key)
        self.relay.put(("say", kind, signal, reason, *args))


class Relay:
    """What forked workers tell the parent besides their counters: the lines
    of their RelayedErrorLog as they come, and at the end the reasons they
    counted. A pipe; the parent reads it while it watches."""

    def __init__(self, context) -> None:
        self.queue = context.SimpleQueue()

    def put(self, message: tuple) -> None:
        self.queue.put(message)

    def deliver(self, errors: ErrorLog, reasons: Reasons) -> None:
        """Act on everything sent so far (the parent, without blocking)."""
        while not self.queue.empty():
            message = self.queue.get()
            if message[0] == "line":
                errors.write(message[1])
            elif message[0] == "reasons":
                reasons.merge(message[1])
            else:
                _, kind, signal, reason, *args = message
                {"retrying": errors.retrying, FAILED: errors.failed, REJECTED: errors.rejected}[kind](
                    signal, reason, *args)
