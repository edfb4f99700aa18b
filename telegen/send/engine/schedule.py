"""One pass of the run: every batch (times its replicas), signals interleaved,
and what one send of a batch becomes (its request bodies)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ... import _fastpath
from ...templates import SIGNALS
from ..load.batches import Batch, SignalTemplates
from ..load.compression import bodies, with_compression
from ..tenants import TenantCycle, Tenants
from .clock import TraceClock
from .settings import SendSettings


@dataclass(frozen=True)
class ScheduleItem:
    signal: str
    batch: Batch
    replica: int  # -1: no replica attribute to write
    # Several tenants (telegen.send.tenants): which tenant a turn of this
    # item goes to is tenants.pick(tenant_phase, turn); tenant t's copy
    # writes replica + t * tenant_stride. None: one tenant.
    tenants: TenantCycle | None = None
    tenant_phase: int = 0
    tenant_stride: int = 0
    # Churn (telegen.send.scenarios.churn): the item's place among the pass's
    # metric items, and what one churn adds to its number (0: it never churns).
    churn_index: int = -1
    churn_stride: int = 0


def build_schedule(loaded: Sequence[SignalTemplates], tenants: Tenants | None = None) -> list[ScheduleItem]:
    """One pass: every batch (times its replicas), signals interleaved evenly,
    except that a batch naming spans (logs, exemplars) comes after the trace
    batches it names: it waits for them in the first pass
    (telegen.send.load.correlate), and should not wait long. With tenants,
    each item's phase among them by its place in the pass."""
    keyed = []
    for templates in loaded:
        numbers = templates.copies.numbers() if templates.copies.width else range(-1, 0)
        items = [ScheduleItem(templates.signal, batch, replica) for replica in numbers for batch in templates.batches]
        keyed.extend(((k + 0.5) / len(items), SIGNALS.index(templates.signal), item) for k, item in enumerate(items))
    placed = {entry[2].batch.slot: entry[0] for entry in keyed if entry[2].batch.slot >= 0}
    keyed = [(max(place, *(placed.get(slot, 0.0) for slot in item.batch.needs)), signal, item)
             if item.batch.needs else (place, signal, item) for place, signal, item in keyed]
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    schedule = [item for _, _, item in keyed]
    strides = {t.signal: t.copies.churn_stride for t in loaded if t.copies.churn_digits}
    if strides:
        numbered = iter(range(len(schedule)))
        schedule = [replace(item, churn_index=next(numbered), churn_stride=strides[item.signal])
                    if item.signal in strides else item for item in schedule]
    if tenants is None or tenants.count <= 1:
        return schedule
    cycle = TenantCycle(tenants.weights)
    strides = {t.signal: t.copies.total if t.signal == "metrics" else 0 for t in loaded}
    phases = [cycle.phase(k, len(schedule)) for k in range(len(schedule))]
    for members in _named_together(schedule):  # a log goes to the tenant its spans went to
        for k in members:
            phases[k] = phases[members[0]]
    return [replace(item, tenants=cycle, tenant_phase=phases[k], tenant_stride=strides[item.signal])
            for k, item in enumerate(schedule)]


def _named_together(schedule: Sequence[ScheduleItem]) -> list[list[int]]:
    """Positions of the items tied by naming spans (a trace batch and every
    log batch naming its traces: one each, as correlate regroups them for
    tenants), each group in schedule order: they share a tenant phase, so in
    every turn a log goes to the tenant its spans went to. Metric batches
    with exemplars name spans of every trace batch: they keep their own
    phase, and their exemplars name the spans as last sent to their tenant."""
    parent = list(range(len(schedule)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    by_slot = {item.batch.slot: k for k, item in enumerate(schedule) if item.batch.slot >= 0}
    for k, item in enumerate(schedule):
        for slot in item.batch.needs if item.signal == "logs" else ():
            if slot in by_slot:
                parent[root(k)] = root(by_slot[slot])
    groups: dict[int, list[int]] = {}
    for k, item in enumerate(schedule):
        if (item.signal == "logs" and item.batch.needs) or item.batch.slot >= 0:
            groups.setdefault(root(k), []).append(k)
    return [members for members in groups.values() if len(members) > 1]


def requests_for(item: ScheduleItem, settings: SendSettings, run_start_ns: int, step: int,
                 now_ns: int | None = None, send_number: int = 0, clock: TraceClock | None = None,
                 tenant: int = 0, churns: int = 0) -> list[bytes]:
    """The request bodies of one send of a batch: patched at `now_ns` (None:
    now; a metric batch gets its generation's stamp; or as settings.prepare
    says), cut into its pieces, compressed where the carrier wants compressed
    bodies, once `settings.on_sent` (if any) has seen the patched bytes. All
    the per-send work of the send path but the transport's (benchmarks count
    its instructions). `run_start_ns`: the start time of cumulative series,
    and for a batch of series kept whole when its replay began (their growth
    counts from there). `send_number`: the batch's sends before this one;
    with `clock`, every id is derived from its template id, the clock's key
    (the tenant's) and the number of the send its trace went out in
    (telegen.send.engine.clock). `tenant`: whose copy it is; `churns`: how
    often this copy's series were replaced (churn scenario).
    """
    batch = item.batch
    encoding = settings.body_encoding(item.signal)
    # A gRPC message prefix the kernel writes before the copy (none where a
    # hook wants the bare bytes).
    head = encoding.head(batch) if settings.prepare is None and settings.on_sent is None else b""
    if settings.prepare is None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        replica = item.replica + tenant * item.tenant_stride + churns * item.churn_stride
        if clock is None:
            data = _fastpath.patch(batch.plan, batch.data, now_ns, settings.jitter_ns, settings.backdate_ns,
                                   run_start_ns, step, replica, head=head)
        else:
            data = _fastpath.patch(batch.plan, batch.data, now_ns, settings.jitter_ns, settings.backdate_ns,
                                   run_start_ns, step, replica, None, clock.key_for(tenant), send_number,
                                   clock.table[tenant], batch.slots, head=head)
    else:
        data = settings.prepare(item)
    if settings.on_sent is not None:
        settings.on_sent(item, data, time.time_ns() if now_ns is None else now_ns)
    return bodies(batch, data, encoding, headed=bool(head))


def prepare_compression(loaded: Sequence[SignalTemplates], settings: SendSettings,
                        write: Callable[[str], None] | None = None) -> list[SignalTemplates]:
    """`loaded`, with the batches of every signal that will send patchable
    gzip or zstd bodies compressed once."""
    return [with_compression(t, settings.body_encoding(t.signal), write) for t in loaded]

