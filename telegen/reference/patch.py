"""The plain-Python twin of the patch kernel (telegen/_patch.pxi, on a plan
from telegen/_scan.pxi): decode with protobuf, change the fields, encode.

It follows the same contract, down to the order random numbers are drawn
(per id group: a 16-byte key until non-zero, then an 8-byte key until
non-zero, unless the send is keyed (derived_keys); per time group not keyed
to a trace: a jitter; per wandering metric value: a noise draw), so with the same seed both produce the same bytes for any template
that protobuf itself encoded, and for metrics `telegen import` wrote with
exponential histograms in its padded layout (telegen.templates).
"""
from __future__ import annotations

import os

from google.protobuf.message import Message
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE

from ..templates import decode_record, padded_exponential_metric
from ..varint import encode_varint
from .regroup import INSTANCE_KEY, REPLICA_KEY
from .rng import MASK64, Xoshiro256


def _int64(x: int) -> int:
    return ((x + (1 << 63)) & MASK64) - (1 << 63)


def _grow(v: int, step: int) -> int:
    return (v + step * ((v >> 10) + (1 if v > 0 else 0))) & MASK64


def _elapsed(now: int, run_start: int) -> float:
    """How long series kept whole have been replayed, in ns (0 before run_start)."""
    return max(float(_int64(now - run_start)), 0.0)


def _fraction(elapsed: float, first: Message, last: Message) -> float:
    """The replay's time so far over the series' captured span: the series
    grows by x times its captured increase (last - first), at its captured rate."""
    return elapsed / float(_int64(last.time_unix_nano - first.time_unix_nano))


def _growth(increase: int, x: float) -> int:
    """A captured increase (modulo 2**64, read signed) times x, truncated toward zero."""
    g = float(_int64(increase)) * x
    return 0 if g != g else int(min(max(g, -9.2e18), 9.2e18))


class _Groups:
    """Id groups (per distinct trace id) and time groups, numbered in order of
    first appearance, exactly as the scan numbers them."""

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}
        self.time_min: list[int] = []
        self.time_max: list[int] = []
        self.time_keys: list[int] = []

    def id_group(self, trace_id: bytes) -> int:
        return self.ids.setdefault(trace_id, len(self.ids))

    def time_group(self, low: int, high: int, key: int = -1) -> int:
        """A time group whose shift is keyed to id group `key` (-1: none)."""
        self.time_min.append(low)
        self.time_max.append(high)
        self.time_keys.append(key)
        return len(self.time_min) - 1


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def derived_keys(id_key: int, number: int, trace_id: bytes, attempt: int = 0) -> tuple[int, int, int, int]:
    """A keyed send's keys for the trace `trace_id` (template bytes) in send
    `number` of the run key `id_key`: the trace id's two, the span ids' and
    the jitter draw (telegen/_patch.pxi, _derive_keys)."""
    lo = int.from_bytes(trace_id[:8], "little") if len(trace_id) == 16 else 0
    hi = int.from_bytes(trace_id[8:], "little") if len(trace_id) == 16 else 0
    seed = _mix64((id_key + number * 0x9E3779B97F4A7C15) & MASK64)
    seed = _mix64(seed ^ lo)
    seed = _mix64(seed ^ hi ^ ((attempt * 0xD6E8FEB86659FD93) & MASK64))
    keys = []
    for _ in range(4):
        seed = (seed + 0x9E3779B97F4A7C15) & MASK64
        keys.append(_mix64(seed))
    return keys[0], keys[1], keys[2], keys[3]


class _Keyed:
    """What a keyed send derives its ids from (None: a random key per group)."""

    def __init__(self, id_key: int, send_number: int, clock, slots) -> None:
        self.id_key = id_key & MASK64
        self.send_number = send_number
        self.clock = clock
        self.slots = slots
        self.attempt = 0

    def group(self, index: int, now: int) -> tuple[int, int]:
        """The send number and `now` id group `index` is patched with."""
        slot = int(self.slots[index]) if self.clock is not None and self.slots is not None else -1
        if 0 <= slot < len(self.clock):
            number = int(self.clock[slot][2])
            if number >= 0:
                return number, int(self.clock[slot][number & 1]) & MASK64
        return self.send_number, now


class _Draws:
    def __init__(self, rng: Xoshiro256, groups: _Groups, now: int, jitter: int, backdate: int,
                 keyed: _Keyed | None = None) -> None:
        self.keys = []
        nows = []
        jitters = []
        for index, trace_id in enumerate(groups.ids):
            if keyed is not None:
                number, group_now = keyed.group(index, now)
                k0, k1, k2, k3 = derived_keys(keyed.id_key, number, trace_id, keyed.attempt)
                self.keys.append((k0, k1, k2))
                nows.append(group_now)
                jitters.append(k3 % jitter if jitter else 0)
                continue
            while True:
                k0, k1 = rng.next(), rng.next()
                if k0 | k1:
                    break
            while True:
                k2 = rng.next()
                if k2:
                    break
            self.keys.append((k0, k1, k2))
        self.deltas = []
        for low, high, key in zip(groups.time_min, groups.time_max, groups.time_keys):
            if keyed is not None and key >= 0:
                j, base = jitters[key], nows[key]
            else:
                j, base = (rng.next() % jitter if jitter else 0), now
            self.deltas.append((base - (high - low) - j - backdate - low) & MASK64)
        self.rng = rng
        self.zero_id = False

    def trace_id(self, value: bytes, group: int) -> bytes:
        k0, k1, _ = self.keys[group]
        a = int.from_bytes(value[:8], "little") ^ k0
        b = int.from_bytes(value[8:], "little") ^ k1
        self.zero_id |= (a | b) == 0
        return a.to_bytes(8, "little") + b.to_bytes(8, "little")

    def span_id(self, value: bytes, group: int) -> bytes:
        a = int.from_bytes(value, "little") ^ self.keys[group][2]
        self.zero_id |= a == 0
        return a.to_bytes(8, "little")


def patch_reference(signal: str, data: bytes, now: int, jitter_ns: int = 0, backdate_ns: int = 0,
                    run_start: int = 0, step: int = 0, replica: int = -1, seed: int | None = None,
                    id_key: int | None = None, send_number: int = 0, clock=None, slots=None,
                    head: bytes = b"") -> bytes:
    """What telegen._fastpath.patch(scan(signal, data), data, ...) returns
    (after `head`).
    `clock` and `slots` only matter with `id_key`: (a sequence of) rows
    [now of an even send, of an odd one, latest send number, flags] per
    trace batch, and a clock row per id group (-1: none)."""
    rng = Xoshiro256(int.from_bytes(os.urandom(8), "little") if seed is None else seed)
    run_start = run_start or now
    padded: list[bool] = []
    kept: list[list[frozenset[str]]] = []
    keyed = _Keyed(id_key, send_number, clock, slots) if id_key is not None else None
    while True:
        message = decode_record(signal, data)
        if signal == "metrics":
            padded = _padded_layout(message, bytes(data))
            kept = _fixed64_present(message, padded)
        groups = _Groups()
        if signal == "traces":
            _group_traces(message, groups)
        elif signal == "logs":
            _group_logs(message, groups)
        else:
            _group_exemplars(message, groups)
        draws = _Draws(rng, groups, now, jitter_ns, backdate_ns, keyed)
        if signal == "traces":
            _patch_traces(message, groups, draws)
        elif signal == "logs":
            _patch_logs(message, groups, draws)
        else:
            _patch_metrics(message, groups, draws, now, run_start, step, padded)
        if not draws.zero_id:
            break
        if keyed is not None:
            keyed.attempt += 1
    if replica >= 0:
        _patch_replicas(message, signal, replica)
    return head + (_encode_metrics(message, padded, kept) if any(padded) else message.SerializeToString())


# -- traces ----------------------------------------------------------------------


def _spans(message: Message):
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            yield from ss.spans


def _group_traces(message: Message, groups: _Groups) -> None:
    for span in _spans(message):
        group = groups.id_group(span.trace_id)
        if group == len(groups.time_min):
            groups.time_group(MASK64, 0, group)
        if span.start_time_unix_nano:
            groups.time_min[group] = min(groups.time_min[group], span.start_time_unix_nano)
        if span.end_time_unix_nano:
            groups.time_max[group] = max(groups.time_max[group], span.end_time_unix_nano)


def _patch_traces(message: Message, groups: _Groups, draws: _Draws) -> None:
    trace_groups = dict(groups.ids)
    for span in _spans(message):
        group = trace_groups[span.trace_id]
        delta = draws.deltas[group]
        if span.trace_id:
            span.trace_id = draws.trace_id(span.trace_id, group)
        if span.span_id:
            span.span_id = draws.span_id(span.span_id, group)
        if span.parent_span_id:
            span.parent_span_id = draws.span_id(span.parent_span_id, group)
        if span.start_time_unix_nano:
            span.start_time_unix_nano = (span.start_time_unix_nano + delta) & MASK64
        if span.end_time_unix_nano:
            span.end_time_unix_nano = (span.end_time_unix_nano + delta) & MASK64
        for event in span.events:
            if event.time_unix_nano:
                event.time_unix_nano = (event.time_unix_nano + delta) & MASK64
        for link in span.links:
            target = trace_groups.get(link.trace_id) if link.trace_id else None
            if target is None:
                continue  # a link out of the batch keeps its ids
            link.trace_id = draws.trace_id(link.trace_id, target)
            if link.span_id:
                link.span_id = draws.span_id(link.span_id, target)


# -- logs ------------------------------------------------------------------------


def _log_records(message: Message):
    for rl in message.resource_logs:
        for sl in rl.scope_logs:
            yield from sl.log_records


def _group_logs(message: Message, groups: _Groups) -> None:
    for log in _log_records(message):
        key = groups.id_group(log.trace_id) if log.trace_id or log.span_id else -1
        if log.time_unix_nano or log.observed_time_unix_nano:
            anchor = log.time_unix_nano or log.observed_time_unix_nano
            groups.time_group(anchor, anchor, key)


def _patch_logs(message: Message, groups: _Groups, draws: _Draws) -> None:
    time_group = 0
    for log in _log_records(message):
        if log.time_unix_nano or log.observed_time_unix_nano:
            delta = draws.deltas[time_group]
            time_group += 1
            if log.time_unix_nano:
                log.time_unix_nano = (log.time_unix_nano + delta) & MASK64
            if log.observed_time_unix_nano:
                log.observed_time_unix_nano = (log.observed_time_unix_nano + delta) & MASK64
        _fresh_context(log, groups, draws)


def _fresh_context(item: Message, groups: _Groups, draws: _Draws) -> None:
    """A log record's or exemplar's trace context: fresh ids from its trace id's group."""
    if item.trace_id or item.span_id:
        group = groups.ids[item.trace_id]
        if item.trace_id:
            item.trace_id = draws.trace_id(item.trace_id, group)
        if item.span_id:
            item.span_id = draws.span_id(item.span_id, group)


# -- metrics ---------------------------------------------------------------------

_POINT_EXEMPLARS = {"gauge": "exemplars", "sum": "exemplars", "histogram": "exemplars",
                    "exponential_histogram": "exemplars", "summary": None}


def _metric_points(message: Message):
    """(metric kind, data message, point) in wire order."""
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                for point in data.data_points:
                    yield kind, data, point


def _exemplars(kind: str, point: Message):
    field = _POINT_EXEMPLARS[kind]
    return getattr(point, field) if field else ()


def _group_exemplars(message: Message, groups: _Groups) -> None:
    for kind, _, point in _metric_points(message):
        for exemplar in _exemplars(kind, point):
            if exemplar.trace_id or exemplar.span_id:
                groups.id_group(exemplar.trace_id)


def _patch_point_times(point: Message, now: int, run_start: int, cumulative: bool,
                       first_time: int | None = None, last_time: int | None = None) -> None:
    """`first_time`, `last_time`: the template times of the first and last
    points of the point's series (a series kept whole): the point goes as far
    before now as it was before the last one, a delta window ends where its
    point does, and a cumulative start goes as far before run_start as it was
    before the last point, no later than the first."""
    start, time = point.start_time_unix_nano, point.time_unix_nano
    end = time if last_time is None else last_time
    if time:
        point.time_unix_nano = (now - (end - time)) & MASK64
    if start:
        if cumulative and last_time is not None:
            point.start_time_unix_nano = (run_start - (last_time - min(start, first_time))) & MASK64
        elif cumulative:
            point.start_time_unix_nano = run_start
        elif time:
            point.start_time_unix_nano = (now - (end - start)) & MASK64


def _metrics(message: Message):
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def _series_runs(points) -> list[tuple[int, int] | None]:
    """Per point, (first, last) index of its series when the series has
    several points, else None. A series: consecutive points with the same
    attributes, each later than the one before (as the scan finds them)."""
    attrs = [[kv.SerializeToString() for kv in p.attributes] for p in points]
    out: list[tuple[int, int] | None] = [None] * len(points)
    i = 0
    while i < len(points):
        j = i + 1
        while (j < len(points) and attrs[j] == attrs[j - 1] and points[j - 1].time_unix_nano
               and points[j].time_unix_nano > points[j - 1].time_unix_nano):
            j += 1
        if j - i > 1:
            for k in range(i, j):
                out[k] = (i, j - 1)
        i = j
    return out


def _patch_metrics(message: Message, groups: _Groups, draws: _Draws, now: int, run_start: int, step: int,
                   padded: list[bool]) -> None:
    """`padded`: per metric in wire order, whether it is in the padded layout."""
    elapsed = _elapsed(now, run_start)
    for metric, is_padded in zip(_metrics(message), padded):
        kind = metric.WhichOneof("data")
        if kind is None:
            continue
        data = getattr(metric, kind)
        temporality = getattr(data, "aggregation_temporality", 0)
        cumulative = temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        points = data.data_points
        runs = _series_runs(points)
        template = [type(p).FromString(p.SerializeToString()) for p in points] if any(runs) else []
        for index, point in enumerate(points):
            run = runs[index]
            first, last = (template[run[0]], template[run[1]]) if run else (None, None)
            first_time = first.time_unix_nano if first is not None else None
            last_time = last.time_unix_nano if last is not None else None
            x = _fraction(elapsed, first, last) if first is not None else 0.0
            for exemplar in _exemplars(kind, point):
                if exemplar.time_unix_nano:
                    exemplar.time_unix_nano = now
                _fresh_context(exemplar, groups, draws)
            if kind in ("gauge", "sum"):
                is_sum_cumulative = kind == "sum" and cumulative
                _patch_point_times(point, now, run_start, is_sum_cumulative, first_time, last_time)
                counter = is_sum_cumulative and data.is_monotonic
                is_int = point.WhichOneof("value") == "as_int"
                if (counter and first is not None and (first.WhichOneof("value") == "as_int") == is_int
                        and (last.WhichOneof("value") == "as_int") == is_int):
                    _grow_number_by_series(point, first, last, x)
                elif not counter and first is not None:
                    pass  # a gauge series replays its captured values
                else:
                    _patch_number(point, counter, step, draws)
            elif kind == "histogram":
                _patch_point_times(point, now, run_start, cumulative, first_time, last_time)
                if cumulative and point.count:
                    if first is not None:
                        _grow_histogram_by_series(point, first, last, x)
                    else:
                        _patch_histogram(point, step)
            elif kind == "exponential_histogram":
                _patch_point_times(point, now, run_start, cumulative, first_time, last_time)
                if cumulative and first is not None:
                    _grow_exponential_by_series(point, first, last, x, is_padded)
                elif cumulative:
                    _patch_exponential(point, step, is_padded)
            else:  # summary: cumulative by definition
                _patch_point_times(point, now, run_start, True, first_time, last_time)
                if first is not None:
                    if point.count and first.count and last.count:
                        point.count = (point.count + _growth(last.count - first.count, x)) & MASK64
                    if point.sum and first.sum and last.sum:
                        point.sum = point.sum + (last.sum - first.sum) * x


def _grow_number_by_series(point: Message, first: Message, last: Message, x: float) -> None:
    """A counter in a series goes on from the capture at its captured rate: + (last - first) * x."""
    which = point.WhichOneof("value")
    if which is None or first.WhichOneof("value") is None or last.WhichOneof("value") is None:
        return
    if which == "as_int":
        point.as_int = _int64(point.as_int + _growth(last.as_int - first.as_int, x))
    else:
        point.as_double = point.as_double + (last.as_double - first.as_double) * x


def _grow_exponential_by_series(point: Message, first: Message, last: Message, x: float, padded: bool) -> None:
    """Zero count, sum and (padded) every bucket count + (last - first) * x,
    the count + what the zero count and buckets grew by. The kernel can grow bucket counts only where they are varints
    padded to 10 bytes: in the padded layout, while the three points have as
    many buckets on each side; protobuf's own encoding of bucket counts
    leaves the point as captured."""
    sides = ("positive", "negative")
    if padded:
        if any(len(getattr(p, side).bucket_counts) != len(getattr(point, side).bucket_counts)
               for p in (first, last) for side in sides):
            return
    elif any(len(getattr(p, side).bucket_counts) for p in (point, first, last) for side in sides):
        return
    parts: list[int] = []  # what the zero count and each bucket grew by
    if point.zero_count and first.zero_count and last.zero_count:
        parts.append(_growth(last.zero_count - first.zero_count, x))
        point.zero_count = (point.zero_count + parts[-1]) & MASK64
    for side in sides:
        counts = getattr(point, side).bucket_counts
        if len(counts):  # only then: assigning even nothing would make an absent side present
            grown = [_growth(lb - fb, x) for fb, lb in
                     zip(getattr(first, side).bucket_counts, getattr(last, side).bucket_counts)]
            counts[:] = [(b + g) & MASK64 for b, g in zip(counts, grown)]
            parts += grown
    _grow_count(point, first, last, x, parts)
    if point.HasField("sum") and first.HasField("sum") and last.HasField("sum"):
        point.sum = point.sum + (last.sum - first.sum) * x


def _grow_histogram_by_series(point: Message, first: Message, last: Message, x: float) -> None:
    """Buckets and sum each + (last - first) * x, the count + what its
    buckets grew by. Left as captured where the bucket layout changed."""
    n = len(point.bucket_counts)
    if n and (len(first.bucket_counts) != n or len(last.bucket_counts) != n):
        return
    parts = [_growth(lb - fb, x) for fb, lb in zip(first.bucket_counts, last.bucket_counts)] if n else []
    point.bucket_counts[:] = [(b + g) & MASK64 for b, g in zip(point.bucket_counts, parts)]
    _grow_count(point, first, last, x, parts)
    if point.HasField("sum") and first.HasField("sum") and last.HasField("sum"):
        point.sum = point.sum + (last.sum - first.sum) * x


def _grow_count(point: Message, first: Message, last: Message, x: float, parts: list[int]) -> None:
    """A histogram's count grows by what its parts (buckets, zero count) grew
    by, so it stays their sum; by its own increase when it has none."""
    if parts:
        if point.count:
            point.count = (point.count + sum(parts)) & MASK64
    elif point.count and first.count and last.count:
        point.count = (point.count + _growth(last.count - first.count, x)) & MASK64


def _patch_number(point: Message, counter: bool, step: int, draws: _Draws) -> None:
    which = point.WhichOneof("value")
    if which is None:
        return
    if counter:
        if which == "as_int":
            v = point.as_int
            point.as_int = _int64(v + step * ((v >> 10) + 1) if v >= 0 else v + step)
        else:
            d = point.as_double
            point.as_double = d + float(step) * (d * 1e-3 if d > 0 else 1.0)
        return
    f = 0.1 * (2.0 * draws.rng.unit() - 1.0)
    if which == "as_int":
        v = point.as_int
        point.as_int = _int64(v + int(float(v) * f))
    else:
        d = point.as_double
        if 0 < d <= 1.0:
            d = min(d * (1.0 + f), 1.0)
        else:
            d = d * (1.0 + f)
        point.as_double = d


def _patch_histogram(point: Message, step: int) -> None:
    count = point.count
    if len(point.bucket_counts):
        grown = [_grow(b, step) for b in point.bucket_counts]
        point.bucket_counts[:] = grown
        new_count = sum(grown) & MASK64
    else:
        new_count = _grow(count, step)
    point.count = new_count
    if point.HasField("sum") and count > 0:
        point.sum = point.sum * (float(new_count) / float(count))


def _patch_exponential(point: Message, step: int, padded: bool) -> None:
    """A cumulative exponential histogram point alone grows as an explicit
    one: every bucket count and the zero count by the step, the count by
    what they grew (by itself when it has neither), the sum in proportion. Only where the kernel can rewrite the
    buckets (padded varints, or none) and the count is set."""
    sides = ("positive", "negative")
    if not point.count or (not padded and any(len(getattr(point, side).bucket_counts) for side in sides)):
        return
    count = point.count
    new_count = count
    parts = 0
    for side in sides:
        counts = getattr(point, side).bucket_counts
        parts += len(counts)
        if len(counts):
            grown = [_grow(b, step) for b in counts]
            new_count += sum(grown) - sum(counts)
            counts[:] = grown
    if point.zero_count:
        zero = _grow(point.zero_count, step)
        new_count += zero - point.zero_count
        point.zero_count = zero
    elif not parts:
        new_count = _grow(count, step)
    point.count = new_count & MASK64
    if point.HasField("sum"):
        point.sum = point.sum * (float(new_count & MASK64) / float(count))


# -- the padded layout of exponential histograms --------------------------------


def _padded_layout(message: Message, data: bytes) -> list[bool]:
    """Per metric in wire order: whether the template holds it in the padded
    layout `telegen import` writes exponential histograms in. Decoding loses
    the layout, and protobuf would write the bucket counts back minimal
    (and the fields in another order), so the twin finds which metrics to
    write back padded by looking for their padded bytes in the template."""
    return [metric.WhichOneof("data") == "exponential_histogram" and padded_exponential_metric(metric) in data
            for metric in _metrics(message)]


def _len_field(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def _fixed64_present(message: Message, padded: list[bool]) -> list[list[frozenset[str]]]:
    """Per padded metric, per point: its fixed64 counts on the template's
    wire (non-zero), which the kernel rewrites in place and so keeps there
    even when one wraps to exactly 0."""
    kept = []
    for metric, is_padded in zip(_metrics(message), padded):
        if is_padded:
            kept.append([frozenset(name for name in ("count", "zero_count") if getattr(point, name))
                         for point in metric.exponential_histogram.data_points])
    return kept


def _encode_metrics(message: Message, padded: list[bool], kept: list[list[frozenset[str]]] | None = None) -> bytes:
    """The request as protobuf writes it, but for the metrics in the padded
    layout; `kept`: see _fixed64_present (None: nothing kept at 0)."""
    flags = iter(padded)
    kept_points = iter(kept) if kept is not None else None
    out = b""
    for rm in message.resource_metrics:
        body = type(rm)(resource=rm.resource).SerializeToString() if rm.HasField("resource") else b""
        for sm in rm.scope_metrics:
            scope = type(sm)(scope=sm.scope).SerializeToString() if sm.HasField("scope") else b""
            for metric in sm.metrics:
                scope += _len_field(2, padded_exponential_metric(metric, next(kept_points) if kept_points else None)
                                    if next(flags)
                                    else metric.SerializeToString())
            body += _len_field(2, scope + type(sm)(schema_url=sm.schema_url).SerializeToString())
        out += _len_field(1, body + type(rm)(schema_url=rm.schema_url).SerializeToString())
    return out


# -- series multiplier -----------------------------------------------------------


def _patch_replicas(message: Message, signal: str, replica: int) -> None:
    containers = {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}
    for item in getattr(message, containers[signal]):
        width = 0
        for kv in item.resource.attributes:
            value = kv.value.string_value
            if kv.key == REPLICA_KEY and value:
                width = len(value.encode())
                kv.value.string_value = str(replica % 10**width).zfill(width)
        # A numbered copy's instance id ends in as many digits (regroup).
        for kv in item.resource.attributes:
            value = kv.value.string_value.encode()
            if width and kv.key == INSTANCE_KEY and len(value) >= width:
                kv.value.string_value = (value[:-width] + str(replica % 10**width).zfill(width).encode()).decode()
