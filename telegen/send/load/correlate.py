"""Signals that name each other's spans, tied together once at load time.

A log record written inside a span, or an exemplar, names a template trace
id and span id. At send time every id is derived from its template id and
the key of the send it goes out in (the kernel's keyed patch), so what such
a record needs to name the span as it was actually sent is *which* send
that was: the latest send of the trace batch holding the span. Here each id
group of a log or metric batch gets that batch's row in the run's trace
clock (`slots`), and each log record keyed to a trace takes the trace's
template time bounds, so the kernel shifts it exactly as it shifted the
trace's spans: a log inside its span stays inside it.

The batches that name traces wait, the first time, for every trace batch
they name to have gone out once (`needs`): a log never names a span that
was never sent. Nothing here runs per send.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ... import _fastpath
from .batches import Batch, SignalTemplates

_NO_ID = bytes(16)


@dataclasses.dataclass(frozen=True)
class TraceSpot:
    """Where a template trace went: its trace batch's row in the trace clock
    and its spans' time bounds in the template."""

    slot: int
    low: int
    high: int


def trace_spots(traces: SignalTemplates) -> dict[bytes, TraceSpot]:
    """Template trace id -> its spot, for every trace of every batch."""
    spots: dict[bytes, TraceSpot] = {}
    for slot, batch in enumerate(traces.batches):
        plan = batch.plan
        keys = plan.time_keys
        low = np.zeros(plan.n_id_groups, dtype=np.uint64)
        high = np.zeros(plan.n_id_groups, dtype=np.uint64)
        keyed = keys >= 0
        low[keys[keyed]] = plan.group_min[keyed]
        high[keys[keyed]] = plan.group_max[keyed]
        ids = np.ascontiguousarray(plan.group_ids).view(np.uint8).reshape(-1, 16)
        for group in range(plan.n_id_groups):
            trace_id = ids[group].tobytes()
            if trace_id != _NO_ID:
                spots[trace_id] = TraceSpot(slot, int(low[group]), int(high[group]))
    return spots


def correlate(loaded: Sequence[SignalTemplates]) -> list[SignalTemplates]:
    """`loaded` with its trace batches numbered (their clock rows) and the
    log and metric batches that name their traces tied to them. Without
    traces to send there is nothing to tie: the ids still map alike, but
    no span they name goes out."""
    traces = next((t for t in loaded if t.signal == "traces"), None)
    if traces is None:
        return list(loaded)
    spots = trace_spots(traces)
    out = []
    for templates in loaded:
        if templates.signal == "traces":
            batches = tuple(dataclasses.replace(b, slot=slot) for slot, b in enumerate(templates.batches))
        else:
            batches = tuple(_tie(b, spots) for b in templates.batches)
        out.append(dataclasses.replace(templates, batches=batches))
    return out


def _tie(batch: Batch, spots: dict[bytes, TraceSpot]) -> Batch:
    plan = batch.plan
    if not plan.n_id_groups or not spots:
        return batch
    ids = np.ascontiguousarray(plan.group_ids).view(np.uint8).reshape(-1, 16)
    found = [spots.get(ids[group].tobytes()) for group in range(plan.n_id_groups)]
    slots = np.array([spot.slot if spot is not None else -1 for spot in found], dtype=np.int64)
    if (slots < 0).all():
        return batch
    keys = plan.time_keys
    tied = np.flatnonzero(keys >= 0)
    tied = tied[slots[keys[tied]] >= 0]
    if len(tied):  # a log record keyed to a trace here is shifted as that trace is
        arrays = plan.arrays()
        low, high = arrays["group_min"].copy(), arrays["group_max"].copy()
        for time_group in tied:
            spot = found[keys[time_group]]
            low[time_group], high[time_group] = spot.low, spot.high
        arrays.update(group_min=low, group_max=high)
        plan = _fastpath.plan_from_arrays(**plan.scalars(), arrays=arrays)
    return dataclasses.replace(batch, plan=plan, slots=slots, needs=tuple(np.unique(slots[slots >= 0]).tolist()),
                               tied=slots[keys[tied]] if len(tied) else None)
