"""Clock skew: `services` of the templates' services have clocks off by a
fixed amount each, drawn once per run within plus or minus `max`.

Done once at load, in the templates' bytes: every span and log time under a
skewed service's resource moves by its skew, while the patch plans (their
time groups' bounds) stay those of the unskewed scan. A send then shifts
each trace as before, and the skewed service's spans (and its logs, which
move with them and stay inside them) land off by exactly the skew: the
kernel is unchanged, and patchable gzip's byte classes, read from the bytes,
see the new template values. Metric points are stamped by their generation
and stay on the sender's clock.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import numpy as np

from ...varint import iter_fields
from ..load.batches import Batch, SignalTemplates

SERVICE_NAME = b"service.name"
_SIGNALS = ("traces", "logs")


def resource_services(data: bytes | memoryview) -> list[tuple[int, int, str]]:
    """(start, end, service.name) of each Resource{Spans,Logs} of a request,
    walking only the request's top level and each resource's attributes."""
    out = []
    for start, end in _fields(data, 0, len(data), 1):
        name = ""
        for r_start, r_end in _fields(data, start, end, 1):  # the Resource
            for kv_start, kv_end in _fields(data, r_start, r_end, 1):  # its attributes
                key = _first(data, kv_start, kv_end, 1)
                if key is not None and bytes(data[key[0]:key[1]]) == SERVICE_NAME:
                    value = _first(data, kv_start, kv_end, 2)
                    text = _first(data, value[0], value[1], 1) if value is not None else None
                    if text is not None:
                        name = bytes(data[text[0]:text[1]]).decode("utf-8", "replace")
        out.append((start, end, name))
    return out


def _fields(data, start: int, end: int, number: int):
    """(start, end) of each length-delimited field `number` in data[start:end]."""
    for found, wire, value, after in iter_fields(data, start, end):
        if found == number and wire == 2:
            yield value, after


def _first(data, start: int, end: int, number: int) -> tuple[int, int] | None:
    return next(_fields(data, start, end, number), None)


def services_of(loaded: Sequence[SignalTemplates]) -> list[str]:
    """The service names of the trace (or else log) templates, first seen first."""
    seen: dict[str, None] = {}
    for templates in loaded:
        if templates.signal in _SIGNALS:
            for batch in templates.batches:
                for _, _, name in resource_services(batch.data):
                    if name:
                        seen.setdefault(name, None)
    return list(seen)


def draw_skews(services: Sequence[str], count: int, max_seconds: float,
               rng: random.Random | None = None) -> dict[str, int]:
    """`count` of `services`, each with a skew in [-max, +max] (ns)."""
    rng = rng or random.Random()
    chosen = rng.sample(list(services), min(count, len(services)))
    limit = int(max_seconds * 1e9)
    return {name: rng.randint(-limit, limit) for name in chosen}


def skewed(loaded: Sequence[SignalTemplates], skews: dict[str, int]) -> list[SignalTemplates]:
    """`loaded` with the times of skewed services' spans and logs moved by their skews."""
    if not skews:
        return list(loaded)
    return [dataclasses.replace(t, batches=tuple(_skew_batch(b, skews) for b in t.batches))
            if t.signal in _SIGNALS else t for t in loaded]


def _skew_batch(batch: Batch, skews: dict[str, int]) -> Batch:
    ranges = [(start, end, skews[name]) for start, end, name in resource_services(batch.data) if name in skews]
    times = batch.plan.time_add
    if not ranges or not len(times):
        return batch
    offsets = times[:, 0]
    data = np.frombuffer(bytearray(batch.data), dtype=np.uint8)
    for start, end, skew in ranges:
        inside = offsets[(offsets >= start) & (offsets < end)]
        if len(inside):
            index = inside[:, None] + np.arange(8)
            values = data[index].copy().view("<u8")[:, 0]
            data[index] = (values + np.uint64(skew % 2**64)).view(np.uint8).reshape(-1, 8)
    return dataclasses.replace(batch, data=data.tobytes())
