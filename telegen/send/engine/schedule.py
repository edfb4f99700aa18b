"""One pass of the run: every batch (times its replicas), signals interleaved,
and what one send of a batch becomes (its request bodies)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ... import _fastpath
from ...templates import SIGNALS
from ..load.batches import Batch, SignalTemplates
from ..load.compression import IDENTITY, PATCHABLE, body_encoding, patched_bodies, with_gzip, zlib_bodies
from ..tenants import TenantCycle, Tenants
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


def build_schedule(loaded: Sequence[SignalTemplates], tenants: Tenants | None = None) -> list[ScheduleItem]:
    """One pass: every batch (times its replicas), signals interleaved evenly;
    with tenants, each item's phase among them by its place in the pass."""
    keyed = []
    for templates in loaded:
        numbers = templates.copies.numbers() if templates.copies.width else range(-1, 0)
        items = [ScheduleItem(templates.signal, batch, replica) for replica in numbers for batch in templates.batches]
        keyed.extend(((k + 0.5) / len(items), SIGNALS.index(templates.signal), item) for k, item in enumerate(items))
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    schedule = [item for _, _, item in keyed]
    if tenants is None or tenants.count <= 1:
        return schedule
    cycle = TenantCycle(tenants.weights)
    strides = {t.signal: t.copies.total if t.signal == "metrics" else 0 for t in loaded}
    return [replace(item, tenants=cycle, tenant_phase=cycle.phase(k, len(schedule)),
                    tenant_stride=strides[item.signal]) for k, item in enumerate(schedule)]


def requests_for(item: ScheduleItem, settings: SendSettings, run_start_ns: int, step: int,
                 now_ns: int | None = None, tenant: int = 0) -> list[bytes]:
    """The request bodies of one send of a batch: patched at `now_ns` (None:
    now; a metric batch gets its generation's stamp; or as settings.prepare
    says), cut into its pieces, gzip-compressed where the carrier wants gzip
    bodies, once `settings.on_sent` (if any) has seen the patched bytes. All
    the per-send work of the send path but the transport's (benchmarks count
    its instructions). `run_start_ns`: the start time of cumulative series,
    and for a batch of series kept whole when its replay began (their growth
    counts from there). `tenant`: whose copy of a metric batch it is."""
    batch = item.batch
    if settings.prepare is None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        data = _fastpath.patch(batch.plan, batch.data, now_ns, settings.jitter_ns, settings.backdate_ns,
                               run_start_ns, step, item.replica + tenant * item.tenant_stride)
    else:
        data = settings.prepare(item)
    if settings.on_sent is not None:
        settings.on_sent(item, data, time.time_ns() if now_ns is None else now_ns)
    encoding = body_encoding(settings.targets[item.signal], settings.gzip_encoder)
    if encoding == PATCHABLE and batch.gzip:
        return patched_bodies(batch.gzip, data)
    requests = [data] if len(batch.pieces) == 1 else [data[a:b] for a, b in batch.pieces]
    return requests if encoding == IDENTITY else zlib_bodies(requests)


def prepare_gzip(loaded: Sequence[SignalTemplates], settings: SendSettings,
                 write: Callable[[str], None] | None = None) -> list[SignalTemplates]:
    """`loaded`, with the batches of every signal that will send patchable
    gzip bodies compressed once."""
    return [with_gzip(t, write) if body_encoding(settings.targets[t.signal], settings.gzip_encoder) == PATCHABLE
            else t for t in loaded]

