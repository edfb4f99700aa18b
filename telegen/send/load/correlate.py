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


def correlate(loaded: Sequence[SignalTemplates], per_trace_batch: bool = False) -> list[SignalTemplates]:
    """`loaded` with its trace batches numbered (their clock rows) and the
    log and metric batches that name their traces tied to them. Without
    traces to send there is nothing to tie: the ids still map alike, but
    no span they name goes out. `per_trace_batch`: first regroup the logs so
    that each batch names the spans of one trace batch at most (for
    tenants: a log batch then goes to the tenant its trace batch went to)."""
    traces = next((t for t in loaded if t.signal == "traces"), None)
    if traces is None:
        return list(loaded)
    spots = trace_spots(traces)
    out = []
    for templates in loaded:
        if templates.signal == "traces":
            batches = tuple(dataclasses.replace(b, slot=slot) for slot, b in enumerate(templates.batches))
        else:
            batches = templates.batches
            if per_trace_batch and templates.signal == "logs":
                batches = tuple(part for b in batches for part in _by_trace_batch(b, spots))
            batches = tuple(_tie(b, spots) for b in batches)
        out.append(dataclasses.replace(templates, batches=batches))
    return out


def _by_trace_batch(batch: Batch, spots: dict[bytes, TraceSpot]) -> list[Batch]:
    """A log batch cut into batches whose records name spans of one trace
    batch each (and one of records naming none), resources and scopes kept.
    Decoded and encoded with protobuf: once, at load, and only for tenants."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from .batches import finish_batch

    parts: dict[int, ExportLogsServiceRequest] = {}
    for rl in ExportLogsServiceRequest.FromString(bytes(batch.data)).resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                spot = spots.get(bytes(record.trace_id)) if record.trace_id else None
                part = parts.setdefault(spot.slot if spot is not None else -1, ExportLogsServiceRequest())
                if not part.resource_logs or part.resource_logs[-1].resource != rl.resource \
                        or part.resource_logs[-1].schema_url != rl.schema_url:
                    part.resource_logs.add(resource=rl.resource, schema_url=rl.schema_url)
                target = part.resource_logs[-1]
                if not target.scope_logs or target.scope_logs[-1].scope != sl.scope \
                        or target.scope_logs[-1].schema_url != sl.schema_url:
                    target.scope_logs.add(scope=sl.scope, schema_url=sl.schema_url)
                target.scope_logs[-1].log_records.append(record)
    if len(parts) <= 1:
        return [batch]
    return [finish_batch("logs", [parts[key].SerializeToString()]) for key in sorted(parts)]


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
