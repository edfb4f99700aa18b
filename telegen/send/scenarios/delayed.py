"""Delayed children: for a share of traces, the non-root spans go out a while
after their root, as spans of a long request or a slow exporter arrive late.

At load, each trace batch holding chosen traces is cut in two: the batch
itself keeps every span but the chosen traces' children, and a `children`
batch takes those. Both keep the trace's whole time bounds in their plans, so
the children batch, patched with the send number and `now` of the batch's
send (not of its own), gets the very ids and shift its spans would have had:
whole traces once every part is sent. The worker sends it `by` seconds later
(engine.worker), and a run's end waits up to `by` for those still due.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ... import _fastpath
from ..load.batches import Batch, SignalTemplates, finish_batch


def with_delayed_children(loaded: Sequence[SignalTemplates], fraction: float, max_bytes: int,
                          rng: random.Random | None = None) -> list[SignalTemplates]:
    """`loaded` with `fraction` of its traces (rounded, at least one when
    fraction > 0 and there are traces with children) set to send their
    children later."""
    rng = rng or random.Random()
    out = []
    for templates in loaded:
        if templates.signal != "traces" or fraction <= 0:
            out.append(templates)
            continue
        traces = [(b, tid) for b, batch in enumerate(templates.batches) for tid in _trace_ids(batch)]
        chosen = set(rng.sample(traces, round(fraction * len(traces)))) if traces else set()
        batches = tuple(_cut(batch, {tid for b2, tid in chosen if b2 == b}, max_bytes)
                        for b, batch in enumerate(templates.batches))
        out.append(dataclasses.replace(templates, batches=batches))
    return out


def _trace_ids(batch: Batch) -> list[bytes]:
    ids = np.ascontiguousarray(batch.plan.group_ids).view(np.uint8).reshape(-1, 16)
    return [ids[g].tobytes() for g in range(batch.plan.n_id_groups)]


def _cut(batch: Batch, chosen: set[bytes], max_bytes: int) -> Batch:
    if not chosen:
        return batch
    request = ExportTraceServiceRequest.FromString(bytes(batch.data))
    kept, children = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    delayed = set()
    for rs in request.resource_spans:
        kept_rs = children_rs = None
        for ss in rs.scope_spans:
            kept_ss = children_ss = None
            for span in ss.spans:
                late = bytes(span.trace_id) in chosen and bool(span.parent_span_id)
                if late:
                    delayed.add(bytes(span.trace_id))
                    if children_rs is None:
                        children_rs = children.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                    if children_ss is None:
                        children_ss = children_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url)
                    children_ss.spans.append(span)
                else:
                    if kept_rs is None:
                        kept_rs = kept.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                    if kept_ss is None:
                        kept_ss = kept_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url)
                    kept_ss.spans.append(span)
    if not delayed:
        return batch  # the chosen traces have no children
    bounds = _bounds(batch.plan)
    parent = _with_bounds(_batch(kept.SerializeToString(), max_bytes), bounds)
    later = _with_bounds(_batch(children.SerializeToString(), max_bytes), bounds)
    return dataclasses.replace(parent, children=later, delayed_traces=len(delayed))


def _batch(data: bytes, max_bytes: int) -> Batch:
    pieces = _fastpath.split("traces", data, max_bytes) if len(data) > max_bytes else [data]
    return finish_batch("traces", pieces)


def _bounds(plan: _fastpath.PatchPlan) -> dict[bytes, tuple[int, int]]:
    """Template trace id -> its spans' whole time bounds (a trace batch: time group g is id group g's)."""
    ids = _trace_ids_of(plan)
    keys = plan.time_keys
    return {ids[k]: (int(plan.group_min[t]), int(plan.group_max[t])) for t, k in enumerate(keys) if k >= 0}


def _trace_ids_of(plan: _fastpath.PatchPlan) -> list[bytes]:
    ids = np.ascontiguousarray(plan.group_ids).view(np.uint8).reshape(-1, 16)
    return [ids[g].tobytes() for g in range(plan.n_id_groups)]


def _with_bounds(batch: Batch, bounds: dict[bytes, tuple[int, int]]) -> Batch:
    """`batch` with each trace's time group bounds set to the whole trace's."""
    plan = batch.plan
    ids = _trace_ids_of(plan)
    arrays = plan.arrays()
    low, high = arrays["group_min"].copy(), arrays["group_max"].copy()
    for t, k in enumerate(plan.time_keys):
        if k >= 0 and ids[k] in bounds:
            low[t], high[t] = bounds[ids[k]]
    arrays.update(group_min=low, group_max=high)
    return dataclasses.replace(batch, plan=_fastpath.plan_from_arrays(**plan.scalars(), arrays=arrays))
