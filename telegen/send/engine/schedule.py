"""One pass of the run: every batch (times its replicas), signals interleaved,
and what one send of a batch becomes (its request bodies)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ... import _fastpath
from ...templates import SIGNALS
from ..load.batches import Batch, SignalTemplates
from ..load.compression import IDENTITY, PATCHABLE, body_encoding, patched_bodies, with_gzip, zlib_bodies
from .clock import TraceClock
from .settings import SendSettings


@dataclass(frozen=True)
class ScheduleItem:
    signal: str
    batch: Batch
    replica: int  # -1: no replica attribute to write


def build_schedule(loaded: Sequence[SignalTemplates]) -> list[ScheduleItem]:
    """One pass: every batch (times its replicas), signals interleaved evenly,
    except that a batch naming spans (logs, exemplars) comes after the trace
    batches it names: it waits for them in the first pass
    (telegen.send.load.correlate), and should not wait long."""
    keyed = []
    for templates in loaded:
        numbers = templates.copies.numbers() if templates.copies.width else range(-1, 0)
        items = [ScheduleItem(templates.signal, batch, replica) for replica in numbers for batch in templates.batches]
        keyed.extend(((k + 0.5) / len(items), SIGNALS.index(templates.signal), item) for k, item in enumerate(items))
    placed = {entry[2].batch.slot: entry[0] for entry in keyed if entry[2].batch.slot >= 0}
    keyed = [(max(place, *(placed.get(slot, 0.0) for slot in item.batch.needs)), signal, item)
             if item.batch.needs else (place, signal, item) for place, signal, item in keyed]
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in keyed]


def requests_for(item: ScheduleItem, settings: SendSettings, run_start_ns: int, step: int,
                 now_ns: int | None = None, send_number: int = 0, clock: TraceClock | None = None) -> list[bytes]:
    """The request bodies of one send of a batch: patched at `now_ns` (None:
    now; a metric batch gets its generation's stamp; or as settings.prepare
    says), cut into its pieces, gzip-compressed where the carrier wants gzip
    bodies, once `settings.on_sent` (if any) has seen the patched bytes. All
    the per-send work of the send path but the transport's (benchmarks count
    its instructions). `run_start_ns`: the start time of cumulative series,
    and for a batch of series kept whole when its replay began (their growth
    counts from there). `send_number`: the batch's sends before this one;
    with `clock`, every id is derived from its template id, the clock's key
    and the number of the send its trace went out in (telegen.send.engine.clock)."""
    batch = item.batch
    if settings.prepare is None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        if clock is None:
            data = _fastpath.patch(batch.plan, batch.data, now_ns, settings.jitter_ns, settings.backdate_ns,
                                   run_start_ns, step, item.replica)
        else:
            data = _fastpath.patch(batch.plan, batch.data, now_ns, settings.jitter_ns, settings.backdate_ns,
                                   run_start_ns, step, item.replica, None, clock.key, send_number, clock.table,
                                   batch.slots)
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

