# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The send path's compiled core: scan a serialized OTLP export request once
into a patch plan, then patch copies of it per send without parsing.

scan(signal, buf) walks the protobuf wire format (bounds-checked: malformed
input raises ValueError naming the byte offset) and records the offset of
every field that changes per send. Every such field is fixed-width, so a
patch never moves a byte: patch(plan, buf, ...) copies `buf` into a new bytes
object and overwrites ids, times and metric values in place with the GIL
released.

The plain-Python twins in telegen/reference/ implement the same
operations on decoded messages; given the same seed both produce identical
bytes, which is how the tests check this file.
"""
import os
import sys

import numpy as np

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

if sys.byteorder != "little":  # protobuf fixed64/double are little-endian on the wire
    raise ImportError("telegen._fastpath needs a little-endian machine")

SIGNALS = ("traces", "metrics", "logs")
REPLICA_KEY = b"telegen.replica"

cdef enum:
    TRACES = 0
    METRICS = 1
    LOGS = 2
    WIRE_VARINT = 0
    WIRE_I64 = 1
    WIRE_LEN = 2
    WIRE_I32 = 5

cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFFULL


# -- random numbers: xoshiro256**, seeded by splitmix64 --------------------------

cdef struct Xoshiro:
    uint64_t s0, s1, s2, s3


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline void _seed(Xoshiro* rng, uint64_t seed) noexcept nogil:
    rng.s0 = _splitmix64(&seed)
    rng.s1 = _splitmix64(&seed)
    rng.s2 = _splitmix64(&seed)
    rng.s3 = _splitmix64(&seed)


cdef inline uint64_t _next(Xoshiro* rng) noexcept nogil:
    cdef uint64_t result = _rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = _rotl(rng.s3, 45)
    return result


cdef Xoshiro _global_rng


def _reseed() -> None:
    """Fresh process-wide randomness; runs at import and in every forked child
    so worker processes never repeat each other's ids."""
    global _global_rng
    _seed(&_global_rng, int.from_bytes(os.urandom(8), "little"))


_reseed()
os.register_at_fork(after_in_child=_reseed)


# -- the patch plan --------------------------------------------------------------

cdef class PatchPlan:
    """Offsets of every per-send field of one serialized request.

    Arrays are int64 [offset, argument] rows; group numbers index the id
    groups (one per trace, or per distinct trace id referenced by logs and
    exemplars) and time groups (one per trace, or per log record)."""

    def __repr__(self) -> str:
        return (f"<PatchPlan {SIGNALS[self.signal]} {self.size} bytes, {self.events} events, "
                f"{self.n_id_groups} id groups, {self.n_time_groups} time groups>")

    def __getattr__(self, str name):
        """The arrays by name (plan.ids16, ...), as PLAN_ARRAYS lists them."""
        index = _ARRAY_INDEX.get(name)
        if index is None:
            raise AttributeError(f"'PatchPlan' object has no attribute {name!r}")
        return self._arrays[index] if self._arrays is not None else None

    def __reduce__(self):
        return plan_from_arrays, (*self.scalars().values(), self.arrays())

    def scalars(self) -> dict:
        """Everything but the arrays, as plan_from_arrays takes it."""
        return {"signal": SIGNALS[self.signal], "size": self.size, "events": self.events,
                "n_id_groups": self.n_id_groups, "n_time_groups": self.n_time_groups}

    def arrays(self) -> dict:
        """name -> array: what plan_from_arrays takes back."""
        return dict(zip(PLAN_ARRAYS, self._arrays))


# The arrays of a plan, and each one's dtype and columns (0: one-dimensional),
# in the order of the slots of PlanView.arrays (_fastpath.pxd).
PLAN_ARRAYS = {
    "ids16": (np.int64, 2), "ids8": (np.int64, 2), "time_add": (np.int64, 2), "time_now": (np.int64, 0),
    "time_start": (np.int64, 0), "time_window": (np.int64, 2), "counters": (np.int64, 2),
    "gauges": (np.int64, 2), "histograms": (np.int64, 4), "bucket_runs": (np.int64, 2),
    "replicas": (np.int64, 2), "group_min": (np.uint64, 0), "group_max": (np.uint64, 0),
    "time_series": (np.int64, 2), "series_values": (np.int64, 4),
}
if len(PLAN_ARRAYS) != N_PLAN_ARRAYS:
    raise ImportError("PLAN_ARRAYS and PlanView (_fastpath.pxd) disagree")
_ARRAY_INDEX = {name: index for index, name in enumerate(PLAN_ARRAYS)}
_ROW_WIDTHS = tuple(max(columns, 1) for _, columns in PLAN_ARRAYS.values())


cdef PatchPlan _new_plan(int signal, Py_ssize_t size, Py_ssize_t events, Py_ssize_t n_id_groups,
                         Py_ssize_t n_time_groups, arrays):
    """A plan holding `arrays` (C-contiguous, in PLAN_ARRAYS' order) and its
    view of them. The view keeps no buffer acquired: a numpy array's memory
    stays where it is while the array lives, and the plan keeps it alive."""
    cdef PatchPlan plan = PatchPlan.__new__(PatchPlan)
    plan.signal = signal
    plan.size = size
    plan.events = events
    plan.n_id_groups = plan.view.n_id_groups = n_id_groups
    plan.n_time_groups = plan.view.n_time_groups = n_time_groups
    plan._arrays = tuple(arrays)
    cdef Py_buffer buffer
    cdef Py_ssize_t i
    for i in range(N_PLAN_ARRAYS):
        PyObject_GetBuffer(plan._arrays[i], &buffer, PyBUF_C_CONTIGUOUS)
        plan.view.arrays[i].at = <const int64_t*>buffer.buf
        plan.view.arrays[i].n = buffer.shape[0]
        PyBuffer_Release(&buffer)
    return plan


def plan_from_arrays(str signal, Py_ssize_t size, Py_ssize_t events, Py_ssize_t n_id_groups,
                     Py_ssize_t n_time_groups, dict arrays) -> PatchPlan:
    """A plan from saved parts (a load cache), the arrays used as they are
    (read-only views of a mapping are fine). Shapes and dtypes are checked;
    offsets are trusted to come from a scan of a buffer of `size` bytes."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}")
    for name, (dtype, columns) in PLAN_ARRAYS.items():
        array = arrays[name]
        if array.dtype != dtype or array.ndim != (2 if columns else 1) or (columns and array.shape[1] != columns):
            raise ValueError(f"plan array {name} has dtype {array.dtype} and shape {array.shape}")
    cdef PatchPlan plan = _new_plan(SIGNALS.index(signal), size, events, n_id_groups, n_time_groups,
                                    [arrays[name] for name in PLAN_ARRAYS])
    if len(plan.group_min) != n_time_groups or len(plan.group_max) != n_time_groups:
        raise ValueError("plan time groups do not match their bounds")
    _check_bounds(plan)
    return plan


def _check_bounds(PatchPlan plan) -> None:
    """Every write patch would make lands inside the buffer, and every group
    index names a group: a damaged cache file must fail here, not corrupt
    memory there."""
    def offsets(name, array, width, column=0):
        if len(array):
            values = array[:, column] if array.ndim == 2 else array
            if values.min() < 0 or values.max() > plan.size - width:
                raise ValueError(f"plan array {name} has an offset outside the {plan.size}-byte buffer")

    def groups(name, array, count):
        if len(array) and (array[:, 1].min() < 0 or array[:, 1].max() >= count):
            raise ValueError(f"plan array {name} names a group that does not exist")

    offsets("ids16", plan.ids16, 16)
    groups("ids16", plan.ids16, plan.n_id_groups)
    offsets("ids8", plan.ids8, 8)
    groups("ids8", plan.ids8, plan.n_id_groups)
    offsets("time_add", plan.time_add, 8)
    groups("time_add", plan.time_add, plan.n_time_groups)
    offsets("time_now", plan.time_now, 8)
    offsets("time_start", plan.time_start, 8)
    offsets("time_window", plan.time_window, 8, 0)
    offsets("time_window", plan.time_window, 8, 1)
    offsets("counters", plan.counters, 8)
    offsets("gauges", plan.gauges, 8)
    offsets("histograms", plan.histograms, 8)
    runs, histograms = plan.bucket_runs, plan.histograms
    if len(runs):
        if runs[:, 1].min() < 0 or (runs[:, 0] + 8 * runs[:, 1]).max() > plan.size or runs[:, 0].min() < 0:
            raise ValueError("plan array bucket_runs runs outside the buffer")
    if len(histograms):
        sums = histograms[:, 1]
        if sums.max() > plan.size - 8 or sums.min() < -1:
            raise ValueError("plan array histograms has a sum offset outside the buffer")
        if histograms[:, 2].min() < 0 or histograms[:, 3].max() > len(runs) or (histograms[:, 2] > histograms[:, 3]).any():
            raise ValueError("plan array histograms names bucket runs that do not exist")
    offsets("time_series", plan.time_series, 8, 0)
    offsets("time_series", plan.time_series, 8, 1)
    values = plan.series_values
    for column in range(3):
        offsets("series_values", values[values[:, 3] != 3] if len(values) else values, 8, column)
        offsets("series_values", values[values[:, 3] == 3] if len(values) else values, 10, column)
    if len(plan.series_values) and (plan.series_values[:, 3].min() < 0 or plan.series_values[:, 3].max() > 3):
        raise ValueError("plan array series_values has an unknown value kind")
    replicas = plan.replicas
    if len(replicas) and (replicas[:, 0].min() < 0 or replicas[:, 1].min() < 0
                          or (replicas[:, 0] + replicas[:, 1]).max() > plan.size):
        raise ValueError("plan array replicas runs outside the buffer")


# -- scanning --------------------------------------------------------------------

cdef class _Rows:
    """A growable C array of int64 rows of `width` columns: what a scan
    records per field, without a Python object per row."""
    cdef int64_t* data
    cdef Py_ssize_t n, cap, width

    def __cinit__(self, Py_ssize_t width):
        self.width = width
        self.n = 0
        self.cap = 0
        self.data = NULL

    def __dealloc__(self):
        free(self.data)

    cdef int64_t* row(self) except NULL:
        """Room for one more row, counted; the caller fills it."""
        cdef Py_ssize_t cap
        cdef int64_t* grown
        if self.n == self.cap:
            cap = self.cap * 2 if self.cap else 64
            grown = <int64_t*>realloc(self.data, cap * self.width * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            self.data = grown
            self.cap = cap
        self.n += 1
        return self.data + (self.n - 1) * self.width

    cdef int add1(self, int64_t a) except -1:
        self.row()[0] = a
        return 0

    cdef int add2(self, int64_t a, int64_t b) except -1:
        cdef int64_t* r = self.row()
        r[0] = a
        r[1] = b
        return 0

    cdef object array(self, object dtype, bint flat):
        """A numpy copy: (n, width) rows, or n values when `flat`."""
        out = np.empty(self.n * self.width, dtype=dtype)
        if not flat:
            out = out.reshape(self.n, self.width)
        cdef uint8_t[::1] raw = out.reshape(-1).view(np.uint8)
        if self.n:
            memcpy(&raw[0], self.data, self.n * self.width * sizeof(int64_t))
        return out


# Columns of _Scanner.points: what a metric's points need for series.
cdef enum:
    P_ATTR_START = 0  # the attributes' bytes (the first to the last attribute field)
    P_ATTR_END = 1
    P_TIME_OFF = 2
    P_TIME = 3
    P_VALUE_OFF = 4  # a number's value; a histogram's or summary's count
    P_SUM_OFF = 5
    P_BUCKETS_OFF = 6  # packed bucket counts
    P_BUCKETS = 7
    P_IS_INT = 8
    P_NEG_OFF = 9  # an exponential histogram's negative bucket counts (positive: P_BUCKETS_OFF)
    P_NEG = 10
    P_ZERO_OFF = 11  # its zero_count
    POINT_COLUMNS = 12

# series_values kinds: how a value grows (value + step * (last - first)).
cdef enum:
    GROW_DOUBLE = 0
    GROW_INT64 = 1
    GROW_UINT64 = 2
    GROW_VARINT10 = 3  # a varint padded to 10 bytes (as `telegen import` writes exponential buckets)


cdef struct Field:
    uint64_t number
    int wire
    Py_ssize_t start   # value start (after tag, and after length for LEN)
    Py_ssize_t end     # value end
    uint64_t value     # VARINT value; I64/I32 raw


cdef class _Scanner:
    cdef const uint8_t* buf
    cdef Py_ssize_t size
    cdef int signal
    cdef Py_ssize_t events
    # The plan's arrays as they grow, one _Rows per PlanView slot (group bounds:
    # uint64 values in int64 slots). Metric series kept whole (several points
    # of one attribute set, in time order, as `telegen import` writes them)
    # fill TIME_SERIES and SERIES_VALUES: their times keep their offsets from
    # the series' last point, their cumulative values grow by the series'
    # own increase per step.
    cdef tuple out
    cdef _Rows times  # one span's or log record's time offsets, reused
    cdef _Rows points  # one metric's points (see collect_points), reused
    cdef Py_ssize_t first_point, last_point  # rows of `points`: the current point's series; -1: none
    cdef Py_ssize_t current_point
    cdef list links
    cdef dict id_groups
    cdef Py_ssize_t n_time_groups

    def __cinit__(self):
        self.out = tuple([_Rows(width) for width in _ROW_WIDTHS])
        self.times = _Rows(1)
        self.points = _Rows(POINT_COLUMNS)
        self.first_point = -1
        self.last_point = -1
        self.current_point = -1
        self.links = []
        self.id_groups = {}
        self.n_time_groups = 0
        self.events = 0

    # wire primitives

    cdef int _fail(self, Py_ssize_t offset, str what) except -1:
        raise ValueError(f"malformed {SIGNALS[self.signal]} request at byte offset {offset}: {what}")

    cdef int next_field(self, Py_ssize_t* pos, Py_ssize_t end, Field* f) except -1:
        cdef Py_ssize_t at = pos[0]
        cdef uint64_t tag = 0
        cdef uint64_t length
        self.varint(pos, end, &tag)
        f.number = tag >> 3
        f.wire = <int>(tag & 7)
        if f.number == 0:
            self._fail(at, "field number 0")
        if f.wire == WIRE_VARINT:
            f.start = pos[0]
            self.varint(pos, end, &f.value)
            f.end = pos[0]
        elif f.wire == WIRE_I64:
            if pos[0] + 8 > end:
                self._fail(at, "truncated 64-bit field")
            f.start = pos[0]
            f.end = pos[0] + 8
            memcpy(&f.value, self.buf + pos[0], 8)
            pos[0] += 8
        elif f.wire == WIRE_LEN:
            length = 0
            self.varint(pos, end, &length)
            if length > <uint64_t>(end - pos[0]):
                self._fail(at, f"length {length} runs past the end of its message")
            f.start = pos[0]
            f.end = pos[0] + <Py_ssize_t>length
            pos[0] = f.end
        elif f.wire == WIRE_I32:
            if pos[0] + 4 > end:
                self._fail(at, "truncated 32-bit field")
            f.start = pos[0]
            f.end = pos[0] + 4
            f.value = 0
            memcpy(&f.value, self.buf + pos[0], 4)
            pos[0] += 4
        else:
            self._fail(at, f"unsupported wire type {f.wire}")
        return 0

    cdef int varint(self, Py_ssize_t* pos, Py_ssize_t end, uint64_t* out) except -1:
        cdef uint64_t result = 0
        cdef int shift = 0
        cdef uint8_t byte
        cdef Py_ssize_t at = pos[0]
        if at < end and self.buf[at] < 0x80:  # one byte: most tags and short lengths
            out[0] = self.buf[at]
            pos[0] = at + 1
            return 0
        while True:
            if pos[0] >= end:
                self._fail(at, "truncated varint")
            if shift >= 64:
                self._fail(at, "varint longer than 10 bytes")
            byte = self.buf[pos[0]]
            pos[0] += 1
            result |= (<uint64_t>(byte & 0x7F)) << shift
            if byte < 0x80:
                out[0] = result
                return 0
            shift += 7

    cdef int expect(self, Field* f, int wire, str name) except -1:
        if f.wire != wire:
            self._fail(f.start, f"{name} has wire type {f.wire}, expected {wire}")
        return 0

    cdef inline _Rows rows(self, int which):
        """The plan array in slot `which` (IDS16, ...) as it grows."""
        return <_Rows>self.out[which]

    cdef bytes id_value(self, Field* f, Py_ssize_t width, str name, Py_ssize_t* offset):
        """An id field's bytes; `offset` gets its position, or -1 when empty."""
        cdef Py_ssize_t n = f.end - f.start
        self.expect(f, WIRE_LEN, name)
        if n != width and n != 0:
            self._fail(f.start, f"{name} is {n} bytes, expected {width}")
        offset[0] = f.start if n else -1
        return (<const char*>self.buf)[f.start:f.end]

    cdef Py_ssize_t id_group(self, bytes key):
        group = self.id_groups.get(key)
        if group is None:
            group = self.id_groups[key] = len(self.id_groups)
        return group

    cdef int add_ids(self, Py_ssize_t group, Py_ssize_t trace_off, Py_ssize_t span_off) except -1:
        """A trace id and a span id (either may be absent: -1) keyed to `group`."""
        if trace_off >= 0:
            self.rows(IDS16).add2(trace_off, group)
        if span_off >= 0:
            self.rows(IDS8).add2(span_off, group)
        return 0

    cdef Py_ssize_t new_time_group(self, uint64_t low, uint64_t high):
        self.rows(GROUP_MIN).add1(<int64_t>low)
        self.rows(GROUP_MAX).add1(<int64_t>high)
        self.n_time_groups += 1
        return self.n_time_groups - 1

    # shared structure: request -> resource -> scope -> items

    cdef int scan_request(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1:
                self.expect(&f, WIRE_LEN, "resource")
                self.scan_resource_items(f.start, f.end)
        return 0

    cdef int scan_resource_items(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1:
                self.expect(&f, WIRE_LEN, "resource")
                self.scan_resource(f.start, f.end)
            elif f.number == 2:
                self.expect(&f, WIRE_LEN, "scope items")
                self.scan_scope_items(f.start, f.end)
        return 0

    cdef int scan_resource(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start, kpos, vpos
        cdef Field f, k, v
        cdef bint is_replica
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number != 1 or f.wire != WIRE_LEN:
                continue
            # KeyValue{1: key, 2: AnyValue{1: string_value}}
            kpos = f.start
            is_replica = False
            while kpos < f.end:
                self.next_field(&kpos, f.end, &k)
                if k.number == 1 and k.wire == WIRE_LEN:
                    is_replica = (<const char*>self.buf)[k.start:k.end] == REPLICA_KEY
                elif k.number == 2 and k.wire == WIRE_LEN and is_replica:
                    vpos = k.start
                    while vpos < k.end:
                        self.next_field(&vpos, k.end, &v)
                        if v.number == 1 and v.wire == WIRE_LEN and v.end > v.start:
                            self.rows(REPLICAS).add2(v.start, v.end - v.start)
        return 0

    cdef int scan_scope_items(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2:
                self.expect(&f, WIRE_LEN, "item")
                if self.signal == TRACES:
                    self.scan_span(f.start, f.end)
                elif self.signal == LOGS:
                    self.scan_log(f.start, f.end)
                else:
                    self.scan_metric(f.start, f.end)
        return 0

    # traces

    cdef int scan_span(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t trace_off = -1, span_off = -1, parent_off = -1
        cdef uint64_t t_start = 0, t_end = 0
        cdef _Rows times = self.times
        cdef bytes trace_id = b""
        cdef Py_ssize_t i
        times.n = 0
        self.events += 1
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1:
                trace_id = self.id_value(&f, 16, "span.trace_id", &trace_off)
            elif f.number == 2:
                self.id_value(&f, 8, "span.span_id", &span_off)
            elif f.number == 4:
                self.id_value(&f, 8, "span.parent_span_id", &parent_off)
            elif f.number == 7 or f.number == 8:
                self.expect(&f, WIRE_I64, "span time")
                if f.value:
                    times.add1(f.start)
                    if f.number == 7:
                        t_start = f.value
                    else:
                        t_end = f.value
            elif f.number == 11:
                self.expect(&f, WIRE_LEN, "span.events")
                self.scan_event(f.start, f.end, times)
            elif f.number == 13:
                self.expect(&f, WIRE_LEN, "span.links")
                self.scan_link(f.start, f.end)
        cdef Py_ssize_t group = self.id_group(trace_id)
        if group == self.n_time_groups:
            self.new_time_group(U64_MAX, 0)
        cdef _Rows lows = self.rows(GROUP_MIN), highs = self.rows(GROUP_MAX)
        cdef uint64_t* low = <uint64_t*>lows.data + group
        cdef uint64_t* high = <uint64_t*>highs.data + group
        if t_start and t_start < low[0]:
            low[0] = t_start
        if t_end and t_end > high[0]:
            high[0] = t_end
        if trace_off >= 0:
            self.rows(IDS16).add2(trace_off, group)
        if span_off >= 0:
            self.rows(IDS8).add2(span_off, group)
        if parent_off >= 0:
            self.rows(IDS8).add2(parent_off, group)
        for i in range(times.n):
            self.rows(TIME_ADD).add2(times.data[i], group)
        return 0

    cdef int scan_event(self, Py_ssize_t start, Py_ssize_t end, _Rows times) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1:
                self.expect(&f, WIRE_I64, "event.time_unix_nano")
                if f.value:
                    times.add1(f.start)
        return 0

    cdef int scan_link(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t trace_off = -1, span_off = -1
        cdef bytes trace_id = b""
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1:
                trace_id = self.id_value(&f, 16, "link.trace_id", &trace_off)
            elif f.number == 2:
                self.id_value(&f, 8, "link.span_id", &span_off)
        # Resolved once the whole request is scanned: a link follows the new
        # ids of a trace in the same batch and keeps ids it cannot resolve.
        self.links.append((trace_id, trace_off, span_off))
        return 0

    cdef int resolve_links(self) except -1:
        for trace_id, trace_off, span_off in self.links:
            group = self.id_groups.get(trace_id) if trace_id else None
            if group is None:
                continue
            self.add_ids(group, trace_off, span_off)
        return 0

    # logs

    cdef int scan_log(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t trace_off = -1, span_off = -1
        cdef uint64_t t_time = 0, t_observed = 0
        cdef _Rows times = self.times
        cdef bytes trace_id = b""
        cdef bint has_ids = False
        cdef Py_ssize_t i
        times.n = 0
        self.events += 1
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 1 or f.number == 11:
                self.expect(&f, WIRE_I64, "log time")
                if f.value:
                    times.add1(f.start)
                    if f.number == 1:
                        t_time = f.value
                    else:
                        t_observed = f.value
            elif f.number == 9:
                trace_id = self.id_value(&f, 16, "log.trace_id", &trace_off)
                has_ids = has_ids or trace_off >= 0
            elif f.number == 10:
                self.id_value(&f, 8, "log.span_id", &span_off)
                has_ids = has_ids or span_off >= 0
        cdef Py_ssize_t group
        cdef uint64_t anchor
        if times.n:
            anchor = t_time if t_time else t_observed
            group = self.new_time_group(anchor, anchor)
            for i in range(times.n):
                self.rows(TIME_ADD).add2(times.data[i], group)
        if has_ids:
            group = self.id_group(trace_id)
            self.add_ids(group, trace_off, span_off)
        return 0

    # metrics

    cdef int scan_metric(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number in (5, 7, 9, 10, 11):
                self.expect(&f, WIRE_LEN, "metric data")
                self.scan_metric_data(<int>f.number, f.start, f.end)
        return 0

    cdef int scan_metric_data(self, int kind, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef uint64_t temporality = 0
        cdef bint monotonic = False
        # Temporality and monotonicity follow the points on the wire, so read
        # them first: they decide how each point is patched.
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2 and f.wire == WIRE_VARINT and kind != 11:
                temporality = f.value
            elif f.number == 3 and f.wire == WIRE_VARINT and kind == 7:
                monotonic = f.value != 0
        cdef bint cumulative = temporality == 2
        self.collect_points(kind, start, end)
        cdef Py_ssize_t index = 0, run_start = 0, run_end
        cdef int64_t* series = NULL
        series = <int64_t*>malloc((self.points.n + 1) * sizeof(int64_t))
        if series == NULL:
            raise MemoryError()
        try:
            self.find_series(series)
            pos = start
            while pos < end:
                self.next_field(&pos, end, &f)
                if f.number == 1:
                    self.expect(&f, WIRE_LEN, "data point")
                    self.events += 1
                    run_end = series[index]
                    if index == 0 or series[index - 1] != run_end:
                        run_start = index
                    if run_end - run_start > 1:
                        self.first_point, self.last_point = run_start, run_end - 1
                    else:
                        self.first_point = self.last_point = -1
                    self.current_point = index
                    self.scan_point(kind, f.start, f.end, cumulative, monotonic)
                    index += 1
        finally:
            free(series)
            self.first_point = self.last_point = -1
        return 0

    cdef int scan_point(self, int kind, Py_ssize_t start, Py_ssize_t end, bint cumulative,
                        bint monotonic) except -1:
        if kind == 5 or kind == 7:
            self.scan_number_point(start, end, kind == 7 and cumulative, kind == 7 and cumulative and monotonic)
        elif kind == 9:
            self.scan_histogram_point(start, end, cumulative)
        else:
            self.scan_other_point(start, end, kind == 10, cumulative)
        return 0

    cdef int collect_points(self, int kind, Py_ssize_t start, Py_ssize_t end) except -1:
        """One row per point of a metric's data (self.points): where its
        attributes, time and values are, for finding its series."""
        cdef Py_ssize_t pos = start, inner
        cdef Field f, g
        cdef int64_t* p
        # The attributes' field number differs per point type.
        cdef uint64_t attrs = 9 if kind == 9 else (1 if kind == 10 else 7)
        self.points.n = 0
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number != 1:
                continue
            self.expect(&f, WIRE_LEN, "data point")
            p = self.points.row()
            p[P_ATTR_START] = p[P_ATTR_END] = -1
            p[P_TIME_OFF] = p[P_VALUE_OFF] = p[P_SUM_OFF] = p[P_BUCKETS_OFF] = -1
            p[P_TIME] = p[P_BUCKETS] = p[P_IS_INT] = p[P_NEG] = 0
            p[P_NEG_OFF] = p[P_ZERO_OFF] = -1
            inner = f.start
            while inner < f.end:
                self.next_field(&inner, f.end, &g)
                if g.number == attrs and g.wire == WIRE_LEN:
                    if p[P_ATTR_START] < 0:
                        p[P_ATTR_START] = g.start
                    p[P_ATTR_END] = g.end
                elif g.number == 3 and g.wire == WIRE_I64:
                    p[P_TIME_OFF] = g.start
                    p[P_TIME] = <int64_t>g.value
                elif g.wire == WIRE_I64 and ((kind == 5 or kind == 7) and (g.number == 4 or g.number == 6)):
                    p[P_VALUE_OFF] = g.start
                    p[P_IS_INT] = g.number == 6
                elif g.wire == WIRE_I64 and kind >= 9 and g.number == 4:
                    p[P_VALUE_OFF] = g.start
                elif g.wire == WIRE_I64 and kind >= 9 and g.number == 5:
                    p[P_SUM_OFF] = g.start
                elif kind == 10 and g.wire == WIRE_I64 and g.number == 7:
                    p[P_ZERO_OFF] = g.start
                elif kind == 10 and g.wire == WIRE_LEN and (g.number == 8 or g.number == 9):
                    self.padded_buckets(g.start, g.end, p, P_BUCKETS_OFF if g.number == 8 else P_NEG_OFF)
                elif kind == 9 and g.number == 6 and g.wire == WIRE_LEN and (g.end - g.start) % 8 == 0:
                    p[P_BUCKETS_OFF] = g.start
                    p[P_BUCKETS] = (g.end - g.start) // 8
        return 0

    cdef int padded_buckets(self, Py_ssize_t start, Py_ssize_t end, int64_t* p, int column) except -1:
        """An exponential histogram's Buckets: where its counts are, and how
        many, when every count is a varint padded to 10 bytes (the only kind a
        patch can rewrite in place); -1 counts otherwise."""
        cdef Py_ssize_t pos = start, k, i
        cdef Field f
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2:
                if f.wire != WIRE_LEN or (f.end - f.start) % 10:
                    p[column + 1] = -1
                    return 0
                for k in range(f.start, f.end, 10):
                    for i in range(9):
                        if not (self.buf[k + i] & 0x80):
                            p[column + 1] = -1
                            return 0
                    if self.buf[k + 9] > 1:
                        p[column + 1] = -1
                        return 0
                p[column] = f.start
                p[column + 1] = (f.end - f.start) // 10
        return 0

    cdef int grow_exponential_by_series(self) except -1:
        """A cumulative exponential histogram in a series: count, zero count,
        sum and every bucket go on by the series' own increase, when all its
        bucket counts are padded varints in the same layout; else as captured."""
        cdef int64_t* first = self.series_point(False)
        cdef int64_t* last = self.series_point(True)
        cdef int64_t* here = self.points.data + self.current_point * POINT_COLUMNS
        cdef Py_ssize_t k
        cdef int64_t* r
        cdef int side
        for side in (P_BUCKETS_OFF, P_NEG_OFF):
            if here[side + 1] < 0 or first[side + 1] != here[side + 1] or last[side + 1] != here[side + 1]:
                return 0
        self.grow_by_series(here[P_VALUE_OFF], P_VALUE_OFF, GROW_UINT64)
        self.grow_by_series(here[P_ZERO_OFF], P_ZERO_OFF, GROW_UINT64)
        self.grow_by_series(here[P_SUM_OFF], P_SUM_OFF, GROW_DOUBLE)
        for side in (P_BUCKETS_OFF, P_NEG_OFF):
            for k in range(here[side + 1]):
                r = self.rows(SERIES_VALUES).row()
                r[0] = here[side] + 10 * k
                r[1] = first[side] + 10 * k
                r[2] = last[side] + 10 * k
                r[3] = GROW_VARINT10
        return 0

    cdef int find_series(self, int64_t* run_end) except -1:
        """run_end[i]: one past the last point of point i's series, where a
        series is a run of consecutive points with the same attribute bytes,
        each with a time later than the one before; a point alone is its own."""
        cdef Py_ssize_t i = 0, j, n = self.points.n
        cdef int64_t* a
        cdef int64_t* b
        while i < n:
            j = i + 1
            while j < n:
                a = self.points.data + (j - 1) * POINT_COLUMNS
                b = self.points.data + j * POINT_COLUMNS
                if not self.same_attributes(a, b) or a[P_TIME_OFF] < 0 or b[P_TIME_OFF] < 0 \
                        or <uint64_t>b[P_TIME] <= <uint64_t>a[P_TIME]:
                    break
                j += 1
            for k in range(i, j):
                run_end[k] = j
            i = j
        return 0

    cdef bint same_attributes(self, int64_t* a, int64_t* b):
        cdef Py_ssize_t la = a[P_ATTR_END] - a[P_ATTR_START], lb = b[P_ATTR_END] - b[P_ATTR_START]
        if a[P_ATTR_START] < 0 or b[P_ATTR_START] < 0:
            return a[P_ATTR_START] < 0 and b[P_ATTR_START] < 0
        return la == lb and memcmp(self.buf + a[P_ATTR_START], self.buf + b[P_ATTR_START], la) == 0

    cdef int64_t* series_point(self, bint last):
        return self.points.data + (self.last_point if last else self.first_point) * POINT_COLUMNS

    cdef int grow_by_series(self, Py_ssize_t off, int column, int how) except -1:
        """A series_values row for the value at `off`: column `column` of the
        series' first and last points names the same value there."""
        cdef int64_t first = self.series_point(False)[column], last = self.series_point(True)[column]
        cdef int64_t* r
        if off < 0 or first < 0 or last < 0:
            return 0
        r = self.rows(SERIES_VALUES).row()
        r[0] = off
        r[1] = first
        r[2] = last
        r[3] = how
        return 0

    cdef int point_time_field(self, Field* f, Py_ssize_t* start_off, Py_ssize_t* time_off) except -1:
        """Data points share field 2 (start time) and 3 (time); zero means unset."""
        self.expect(f, WIRE_I64, "point time")
        if f.value:
            if f.number == 2:
                start_off[0] = f.start
            else:
                time_off[0] = f.start
        return 0

    cdef int point_times(self, Py_ssize_t start_off, Py_ssize_t time_off, bint cumulative) except -1:
        # In a series, times are read back from its last point: time_i becomes
        # now - (t_last - t_i), and a delta window ends where its point does.
        cdef Py_ssize_t last_time = self.series_point(True)[P_TIME_OFF] if self.last_point >= 0 else -1
        if time_off >= 0:
            if last_time >= 0:
                self.rows(TIME_SERIES).add2(time_off, last_time)
            else:
                self.rows(TIME_NOW).add1(time_off)
        if start_off >= 0:
            if cumulative:
                self.rows(TIME_START).add1(start_off)
            elif time_off >= 0:
                self.rows(TIME_WINDOW).add2(start_off, last_time if last_time >= 0 else time_off)
        return 0

    cdef int scan_number_point(self, Py_ssize_t start, Py_ssize_t end, bint cumulative, bint counter) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t start_off = -1, time_off = -1, value_off = -1
        cdef bint is_int = False
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2 or f.number == 3:
                self.point_time_field(&f, &start_off, &time_off)
            elif f.number == 4 or f.number == 6:
                self.expect(&f, WIRE_I64, "point value")
                value_off = f.start
                is_int = f.number == 6
            elif f.number == 5:
                self.expect(&f, WIRE_LEN, "exemplar")
                self.scan_exemplar(f.start, f.end)
        self.point_times(start_off, time_off, cumulative)
        if value_off >= 0:
            if counter and self.last_point >= 0 and self.series_point(False)[P_IS_INT] == is_int \
                    and self.series_point(True)[P_IS_INT] == is_int:
                self.grow_by_series(value_off, P_VALUE_OFF, GROW_INT64 if is_int else GROW_DOUBLE)
            elif not counter and self.last_point >= 0:
                pass  # a gauge (or up-down counter) series replays its captured values: its shape is the point
            else:
                self.rows(COUNTERS if counter else GAUGES).add2(value_off, is_int)
        return 0

    cdef int scan_histogram_point(self, Py_ssize_t start, Py_ssize_t end, bint cumulative) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t start_off = -1, time_off = -1, count_off = -1, sum_off = -1
        cdef _Rows runs = self.rows(BUCKET_RUNS)
        cdef Py_ssize_t runs_from = runs.n
        cdef int64_t* h
        cdef bint has_buckets
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2 or f.number == 3:
                self.point_time_field(&f, &start_off, &time_off)
            elif f.number == 4:
                self.expect(&f, WIRE_I64, "histogram count")
                count_off = f.start
            elif f.number == 5:
                self.expect(&f, WIRE_I64, "histogram sum")
                sum_off = f.start
            elif f.number == 6:
                if f.wire == WIRE_LEN:  # packed, as every proto3 encoder writes
                    if (f.end - f.start) % 8:
                        self._fail(f.start, "packed bucket_counts length is not a multiple of 8")
                    if f.end > f.start:
                        runs.add2(f.start, (f.end - f.start) // 8)
                else:
                    self.expect(&f, WIRE_I64, "bucket_counts")
                    runs.add2(f.start, 1)
            elif f.number == 8:
                self.expect(&f, WIRE_LEN, "exemplar")
                self.scan_exemplar(f.start, f.end)
        self.point_times(start_off, time_off, cumulative)
        if cumulative and count_off >= 0 and self.last_point >= 0:
            has_buckets = runs.n > runs_from
            runs.n = runs_from
            # Buckets written unpacked (no proto3 encoder does) cannot be followed: left as captured.
            if not has_buckets or (self.points.data + self.current_point * POINT_COLUMNS)[P_BUCKETS]:
                self.grow_histogram_by_series(count_off, sum_off)
        elif cumulative and count_off >= 0:
            h = self.rows(HISTOGRAMS).row()
            h[0] = count_off
            h[1] = sum_off
            h[2] = runs_from
            h[3] = runs.n
        else:
            runs.n = runs_from
        return 0

    cdef int grow_histogram_by_series(self, Py_ssize_t count_off, Py_ssize_t sum_off) except -1:
        """A cumulative histogram in a series: count, sum and every bucket grow
        by the series' own increase (so the count stays the buckets' sum);
        buckets only where the first and last points have as many as this one."""
        cdef int64_t* first = self.series_point(False)
        cdef int64_t* last = self.series_point(True)
        cdef int64_t* here = self.points.data + self.current_point * POINT_COLUMNS
        cdef Py_ssize_t k
        cdef int64_t* r
        if here[P_BUCKETS] and (first[P_BUCKETS] != here[P_BUCKETS] or last[P_BUCKETS] != here[P_BUCKETS]):
            return 0  # the bucket layout changed within the series: left as captured
        self.grow_by_series(count_off, P_VALUE_OFF, GROW_UINT64)
        if sum_off >= 0:
            self.grow_by_series(sum_off, P_SUM_OFF, GROW_DOUBLE)
        for k in range(here[P_BUCKETS]):
            r = self.rows(SERIES_VALUES).row()
            r[0] = here[P_BUCKETS_OFF] + 8 * k
            r[1] = first[P_BUCKETS_OFF] + 8 * k
            r[2] = last[P_BUCKETS_OFF] + 8 * k
            r[3] = GROW_UINT64
        return 0

    cdef int scan_other_point(self, Py_ssize_t start, Py_ssize_t end, bint exponential, bint cumulative) except -1:
        """Exponential histograms and summaries: times (and exemplars) only;
        their counts are varints or quantiles that cannot move in place."""
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t start_off = -1, time_off = -1
        cdef int64_t* here
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2 or f.number == 3:
                self.point_time_field(&f, &start_off, &time_off)
            elif exponential and f.number == 11:
                self.expect(&f, WIRE_LEN, "exemplar")
                self.scan_exemplar(f.start, f.end)
        self.point_times(start_off, time_off, cumulative or not exponential)
        if exponential and cumulative and self.last_point >= 0:
            self.grow_exponential_by_series()
        if not exponential and self.last_point >= 0:
            # A summary's count and sum (cumulative by definition) go on from the capture.
            here = self.points.data + self.current_point * POINT_COLUMNS
            self.grow_by_series(here[P_VALUE_OFF], P_VALUE_OFF, GROW_UINT64)
            self.grow_by_series(here[P_SUM_OFF], P_SUM_OFF, GROW_DOUBLE)
        return 0

    cdef int scan_exemplar(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef Py_ssize_t trace_off = -1, span_off = -1
        cdef bytes trace_id = b""
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number == 2:
                self.expect(&f, WIRE_I64, "exemplar.time_unix_nano")
                if f.value:
                    self.rows(TIME_NOW).add1(f.start)
            elif f.number == 5:
                trace_id = self.id_value(&f, 16, "exemplar.trace_id", &trace_off)
            elif f.number == 4:
                self.id_value(&f, 8, "exemplar.span_id", &span_off)
        if trace_off >= 0 or span_off >= 0:
            group = self.id_group(trace_id)
            self.add_ids(group, trace_off, span_off)
        return 0

    # counting only: the same bounds-checked walk, recording nothing

    cdef int count_nested(self, Py_ssize_t start, Py_ssize_t end, int depth) except -1:
        """Count the items under request (depth 0) -> resource (1) -> scope (2)."""
        cdef Py_ssize_t pos = start
        cdef Field f
        cdef uint64_t wanted = 1 if depth == 0 else 2
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number != wanted:
                continue
            self.expect(&f, WIRE_LEN, "nested message")
            if depth < 2:
                self.count_nested(f.start, f.end, depth + 1)
            elif self.signal == METRICS:
                self.count_points(f.start, f.end)
            else:
                self.events += 1
        return 0

    cdef int count_points(self, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = start, inner
        cdef Field f, g
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number in (5, 7, 9, 10, 11):
                self.expect(&f, WIRE_LEN, "metric data")
                inner = f.start
                while inner < f.end:
                    self.next_field(&inner, f.end, &g)
                    if g.number == 1:
                        self.events += 1
        return 0

    cdef PatchPlan plan(self):
        return _new_plan(self.signal, self.size, self.events, len(self.id_groups), self.n_time_groups,
                         [(<_Rows>rows).array(dtype, columns == 0)
                          for rows, (dtype, columns) in zip(self.out, PLAN_ARRAYS.values())])


cdef _Scanner _scanner(str signal, const uint8_t[::1] view):
    """A scanner over `view`; the caller keeps the buffer alive meanwhile."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
    cdef _Scanner scanner = _Scanner()
    scanner.buf = &view[0] if view.shape[0] else <const uint8_t*>b""
    scanner.size = view.shape[0]
    scanner.signal = SIGNALS.index(signal)
    return scanner


def scan(signal: str, data) -> PatchPlan:
    """The patch plan of one serialized Export{Trace,Metrics,Logs}ServiceRequest
    (`signal` is "traces", "metrics" or "logs"). Raises ValueError with the
    byte offset on malformed input."""
    cdef const uint8_t[::1] view = data
    cdef _Scanner scanner = _scanner(signal, view)
    scanner.scan_request(0, scanner.size)
    if scanner.signal == TRACES:
        scanner.resolve_links()
    return scanner.plan()


def count_events(signal: str, data) -> int:
    """Spans, log records or metric data points in one request, without
    building a plan. Raises ValueError with the byte offset on malformed input."""
    cdef const uint8_t[::1] view = data
    cdef _Scanner scanner = _scanner(signal, view)
    scanner.count_nested(0, scanner.size, 0)
    return scanner.events


# -- load-time assembly: requests regrouped at the wire level --------------------
#
# Every signal nests the same way: request {1: ResourceX}, ResourceX {1: resource,
# 2: ScopeX, 3: schema_url}, ScopeX {1: scope, 2: item, 3: schema_url}, the item
# being a span, a metric or a log record. Regrouping moves bytes between these
# levels and never decodes an item.

cdef inline Py_ssize_t _varint_size(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline Py_ssize_t _put_varint(char* p, uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 0
    while v >= 0x80:
        p[n] = <char>((v & 0x7F) | 0x80)
        v >>= 7
        n += 1
    p[n] = <char>v
    return n + 1


cdef inline Py_ssize_t _len_field_size(Py_ssize_t length) noexcept nogil:
    """Bytes of a length-delimited field whose tag takes one byte."""
    return 1 + _varint_size(<uint64_t>length) + length


cdef inline Py_ssize_t _put_len_field(char* p, uint8_t tag, Py_ssize_t length) noexcept nogil:
    """Writes a tag and a length; returns their size (the value follows)."""
    p[0] = <char>tag
    return 1 + _put_varint(p + 1, <uint64_t>length)


cdef bytes _replica_attribute(Py_ssize_t width):
    """The serialized Resource.attributes entry (tag included) of
    KeyValue{key: "telegen.replica", value: {string_value: "0" * width}}."""
    if width <= 0:
        return b""
    value = b"\x0a" + bytes([width]) + b"0" * width          # AnyValue.string_value
    key_value = b"\x0a" + bytes([len(REPLICA_KEY)]) + REPLICA_KEY + b"\x12" + bytes([len(value)]) + value
    return b"\x0a" + bytes([len(key_value)]) + key_value


cdef tuple _resource_parts(_Scanner walk, Py_ssize_t start, Py_ssize_t end):
    """(resource bytes, schema_url bytes, [(start, end) of every ScopeX]) of one ResourceX."""
    cdef Py_ssize_t pos = start
    cdef Field f
    cdef bytes resource = b"", schema = b""
    cdef list scopes = []
    cdef const char* buf = <const char*>walk.buf
    while pos < end:
        walk.next_field(&pos, end, &f)
        if f.number == 1:
            walk.expect(&f, WIRE_LEN, "resource")
            resource = buf[f.start:f.end]
        elif f.number == 2:
            walk.expect(&f, WIRE_LEN, "scope items")
            scopes.append((f.start, f.end))
        elif f.number == 3:
            walk.expect(&f, WIRE_LEN, "schema_url")
            schema = buf[f.start:f.end]
    return resource, schema, scopes


cdef tuple _scope_header(_Scanner walk, Py_ssize_t start, Py_ssize_t end):
    """(scope bytes, schema_url bytes, item count) of one ScopeX: what says
    which group its items join, read before the items are moved."""
    cdef Py_ssize_t pos = start, n_items = 0
    cdef Field f
    cdef bytes scope = b"", schema = b""
    cdef const char* buf = <const char*>walk.buf
    while pos < end:
        walk.next_field(&pos, end, &f)
        if f.number == 1:
            walk.expect(&f, WIRE_LEN, "scope")
            scope = buf[f.start:f.end]
        elif f.number == 2:
            walk.expect(&f, WIRE_LEN, "item")
            n_items += 1
        elif f.number == 3:
            walk.expect(&f, WIRE_LEN, "schema_url")
            schema = buf[f.start:f.end]
    return scope, schema, n_items


cdef class _Group:
    """One ResourceX or ScopeX of the output: its header message and schema_url
    bytes, and what goes under it: scope groups, or (for a scope) runs of raw
    item fields as (address, length) rows into the input buffers, copied once,
    when the request is built."""
    cdef bytes head, schema
    cdef list children
    cdef _Rows runs
    cdef Py_ssize_t children_size  # serialized bytes of what goes under it

    def __cinit__(self, bytes head, bytes schema):
        self.head = head
        self.schema = schema
        self.children = []
        self.runs = _Rows(2)
        self.children_size = 0

    cdef int add_run(self, const char* start, Py_ssize_t length) except -1:
        self.runs.add2(<int64_t>start, length)
        self.children_size += length
        return 0


cdef class Regrouper:
    """Builds one request from the items of several: the items of one resource
    (and schema_url) gathered under one ResourceX, those of one scope under one
    ScopeX, in first-seen order. `replica_width` > 0 appends a `telegen.replica`
    attribute of that many zeros to every resource, for the patch to number."""
    cdef int signal
    cdef bytes replica
    cdef dict resource_index, scope_index
    cdef list resources
    cdef list owners  # the input buffers the runs point into, kept alive until build
    cdef readonly Py_ssize_t items

    def __init__(self, str signal, Py_ssize_t replica_width=0):
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        self.signal = SIGNALS.index(signal)
        self.replica = _replica_attribute(replica_width)
        self.resource_index = {}
        self.scope_index = {}
        self.resources = []
        self.owners = []
        self.items = 0

    cdef _Group scope_group(self, bytes resource, bytes resource_schema, bytes scope, bytes scope_schema):
        rkey = resource + b"\0" + resource_schema
        cdef _Group rgroup = self.resource_index.get(rkey)
        if rgroup is None:
            rgroup = _Group(resource + self.replica, resource_schema)
            self.resource_index[rkey] = rgroup
            self.resources.append(rgroup)
        skey = (rkey, scope + b"\0" + scope_schema)
        cdef _Group sgroup = self.scope_index.get(skey)
        if sgroup is None:
            sgroup = _Group(scope, scope_schema)
            self.scope_index[skey] = sgroup
            rgroup.children.append(sgroup)
        return sgroup

    def add(self, data, Py_ssize_t start=0, Py_ssize_t end=-1):
        """Gather every item of the request data[start:end] (all of `data` by default).
        Raises ValueError with the byte offset on malformed input."""
        cdef const uint8_t[::1] view = data
        cdef _Scanner walk = _scanner(SIGNALS[self.signal], view)
        if end < 0:
            end = walk.size
        if not 0 <= start <= end <= walk.size:
            raise ValueError(f"range {start}..{end} is outside the {walk.size}-byte buffer")
        self.owners.append(data)
        cdef Py_ssize_t pos = start
        cdef Field f
        while pos < end:
            walk.next_field(&pos, end, &f)
            if f.number == 1:
                walk.expect(&f, WIRE_LEN, "resource items")
                self.add_resource_items(walk, f.start, f.end)
        return None

    cdef int add_resource_items(self, _Scanner walk, Py_ssize_t start, Py_ssize_t end) except -1:
        """One ResourceX: its scopes' items gathered under their groups."""
        resource, schema, scopes = _resource_parts(walk, start, end)
        for scope_start, scope_end in scopes:
            self.add_scope_items(walk, scope_start, scope_end, resource, schema)
        return 0

    cdef int add_scope_items(self, _Scanner walk, Py_ssize_t start, Py_ssize_t end, bytes resource,
                             bytes resource_schema) except -1:
        cdef Py_ssize_t pos = start, field_start, run_start = -1, run_end = -1
        cdef Field f
        cdef const char* buf = <const char*>walk.buf
        cdef bytes scope, schema
        cdef Py_ssize_t n_items
        scope, schema, n_items = _scope_header(walk, start, end)
        if not n_items:
            return 0
        cdef _Group group = self.scope_group(resource, resource_schema, scope, schema)
        pos = start
        while pos < end:
            field_start = pos
            walk.next_field(&pos, end, &f)
            if f.number != 2:
                continue
            if run_end == field_start:
                run_end = pos
            else:  # the first item, or another field came between: a new run
                if run_start >= 0:
                    group.add_run(buf + run_start, run_end - run_start)
                run_start, run_end = field_start, pos
        group.add_run(buf + run_start, run_end - run_start)
        self.items += n_items
        return 0

    cdef int add_run(self, bytes resource, bytes resource_schema, bytes scope, bytes scope_schema,
                     const char* start, Py_ssize_t length, Py_ssize_t n_items) except -1:
        """A run of `n_items` consecutive item fields in a buffer in `owners`."""
        self.scope_group(resource, resource_schema, scope, scope_schema).add_run(start, length)
        self.items += n_items
        return 0

    cpdef bytes build(self):
        """The request: ResourceX by ResourceX, as first seen."""
        cdef _Group r, s
        cdef Py_ssize_t total = 0, size, scopes_size
        cdef list sizes = []
        for r in self.resources:
            scopes_size = 0
            for s in r.children:
                size = _optional_size(s.head) + s.children_size + _optional_size(s.schema)
                scopes_size += _len_field_size(size)
                sizes.append(size)
            size = _optional_size(r.head) + scopes_size + _optional_size(r.schema)
            r.children_size = scopes_size
            total += _len_field_size(size)
            sizes.append(size)
        out = PyBytes_FromStringAndSize(NULL, total)
        cdef char* p = PyBytes_AS_STRING(out)
        cdef Py_ssize_t at = 0, k = 0, rsize_index, i
        # sizes hold, per resource, its scopes' sizes then its own
        for r in self.resources:
            rsize_index = k + len(r.children)
            at += _put_len_field(p + at, 0x0A, sizes[rsize_index])
            at = _put_optional(p, at, 0x0A, r.head)
            for s in r.children:
                at += _put_len_field(p + at, 0x12, sizes[k])
                k += 1
                at = _put_optional(p, at, 0x0A, s.head)
                for i in range(s.runs.n):
                    memcpy(p + at, <const char*>s.runs.data[2 * i], s.runs.data[2 * i + 1])
                    at += s.runs.data[2 * i + 1]
                at = _put_optional(p, at, 0x1A, s.schema)
            at = _put_optional(p, at, 0x1A, r.schema)
            k += 1
        if at != total:
            raise AssertionError(f"regroup wrote {at} bytes, expected {total}")
        return out


cdef inline Py_ssize_t _optional_size(bytes value):
    """An empty message or string is left out, as protobuf serializers do."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    return _len_field_size(n) if n else 0


cdef inline Py_ssize_t _put_optional(char* p, Py_ssize_t at, uint8_t tag, bytes value):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    if n:
        at += _put_len_field(p + at, tag, n)
        memcpy(p + at, PyBytes_AS_STRING(value), n)
        at += n
    return at


cdef class _Splitter:
    """Cuts one request into pieces of at most about max_bytes, item by item:
    each piece a Regrouper fed runs of consecutive items, never one item at a
    time, so a 100,000-span trace costs a few calls per piece."""
    cdef str signal
    cdef Py_ssize_t width, max_bytes, size
    cdef Regrouper current
    cdef object last_resource, last_scope
    cdef list pieces

    def __cinit__(self, str signal, Py_ssize_t max_bytes, Py_ssize_t width):
        self.signal = signal
        self.width = width
        self.max_bytes = max_bytes
        self.pieces = []
        self.start_piece()

    cdef int start_piece(self) except -1:
        self.current = Regrouper(self.signal, self.width)
        self.size = 0
        self.last_resource = self.last_scope = None
        return 0

    cdef int finish_piece(self) except -1:
        if self.size:
            self.pieces.append(self.current.build())
        return 0

    cdef int add_run(self, bytes resource, bytes resource_schema, bytes scope, bytes scope_schema,
                     const char* start, Py_ssize_t length, Py_ssize_t n_items) except -1:
        return self.current.add_run(resource, resource_schema, scope, scope_schema, start, length, n_items)

    cdef int resource_items(self, _Scanner walk, Py_ssize_t start, Py_ssize_t end) except -1:
        resource, schema, scopes = _resource_parts(walk, start, end)
        for scope_start, scope_end in scopes:
            self.scope_items(walk, scope_start, scope_end, resource, schema)
        return 0

    cdef int scope_items(self, _Scanner walk, Py_ssize_t start, Py_ssize_t end, bytes resource,
                         bytes resource_schema) except -1:
        cdef Py_ssize_t pos = start, field_start, run_start = -1, run_end = -1, item_size, n_run = 0
        cdef Field f
        cdef const char* buf = <const char*>walk.buf
        cdef bytes scope, schema
        scope, schema, _ = _scope_header(walk, start, end)
        while pos < end:
            field_start = pos
            walk.next_field(&pos, end, &f)
            if f.number != 2:
                continue
            walk.expect(&f, WIRE_LEN, "item")
            item_size = f.end - f.start + 16  # the item and room for its framing
            if self.size and self.size + item_size > self.max_bytes:
                if n_run:
                    self.add_run(resource, resource_schema, scope, schema, buf + run_start, run_end - run_start, n_run)
                    n_run = 0
                self.finish_piece()
                self.start_piece()
            if resource != self.last_resource:
                self.size += PyBytes_GET_SIZE(resource) + 8
                self.last_resource, self.last_scope = resource, None
            if scope != self.last_scope:
                self.size += PyBytes_GET_SIZE(scope) + 8
                self.last_scope = scope
            if n_run and run_end != field_start:  # another field between items: a new run
                self.add_run(resource, resource_schema, scope, schema, buf + run_start, run_end - run_start, n_run)
                n_run = 0
            if not n_run:
                run_start = field_start
            run_end = pos
            n_run += 1
            self.size += item_size
        if n_run:
            self.add_run(resource, resource_schema, scope, schema, buf + run_start, run_end - run_start, n_run)
        return 0


def split(str signal, data, Py_ssize_t max_bytes, Py_ssize_t replica_width=0) -> list:
    """One request cut into requests of at most about `max_bytes` each, item by
    item, every item under its own resource and scope (each piece regrouped).
    For a template too big for one message: a 100,000-span trace."""
    cdef const uint8_t[::1] view = data
    cdef _Scanner walk = _scanner(signal, view)
    cdef _Splitter splitter = _Splitter(signal, max_bytes, replica_width)
    cdef Py_ssize_t pos = 0
    # `data` outlives every piece's build (all happen inside this call).
    cdef Field f
    while pos < walk.size:
        walk.next_field(&pos, walk.size, &f)
        if f.number == 1:
            walk.expect(&f, WIRE_LEN, "resource items")
            splitter.resource_items(walk, f.start, f.end)
    splitter.finish_piece()
    return splitter.pieces


# -- patching --------------------------------------------------------------------

cdef inline uint64_t _load64(const char* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline void _store64(char* p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)


cdef inline uint64_t _load_varint10(const char* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(10):
        v |= (<uint64_t>(<uint8_t>p[i]) & 0x7F) << (7 * i)
    return v


cdef inline void _store_varint10(char* p, uint64_t v) noexcept nogil:
    """`v` as a varint of exactly 10 bytes (continuation bits on the first nine)."""
    cdef int i
    for i in range(9):
        p[i] = <char>(((v >> (7 * i)) & 0x7F) | 0x80)
    p[9] = <char>((v >> 63) & 0x01)


cdef inline double _unit(Xoshiro* rng) noexcept nogil:
    return <double>(_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef inline uint64_t _grow(uint64_t v, uint64_t step) noexcept nogil:
    return v + step * ((v >> 10) + (1 if v > 0 else 0))


# What one send asks for, beyond the plan and the template.
cdef struct SendArgs:
    uint64_t now
    uint64_t jitter
    uint64_t backdate
    uint64_t run_start
    uint64_t step
    int64_t replica


cdef bint _patch_once(const PlanView* plan, const char* src, char* dst, Py_ssize_t n, Xoshiro* rng,
                      const SendArgs* send, uint64_t* keys, uint64_t* deltas) noexcept nogil:
    """One attempt; returns False when an id came out all-zero (the caller
    retries with fresh randomness, so such an id is never emitted)."""
    # Locals, not reads through `plan` and `send`: every store into `dst`
    # (a char*) could alias those, and would force them reloaded.
    cdef uint64_t now = send.now, jitter = send.jitter, step = send.step
    cdef PlanRows rows
    cdef const int64_t* row
    cdef const int64_t* runs = plan.arrays[BUCKET_RUNS].at
    cdef const uint64_t* group_min = <const uint64_t*>plan.arrays[GROUP_MIN].at
    cdef const uint64_t* group_max = <const uint64_t*>plan.arrays[GROUP_MAX].at
    cdef Py_ssize_t i, g, j, k, off, width
    cdef uint64_t a, b, v, count, new_count
    cdef double d, e, f
    cdef int64_t iv, r
    cdef bint ok = True
    memcpy(dst, src, n)
    # The draw order (keys, jitter, gauge noise) is part of the contract with
    # the reference implementation.
    for g in range(plan.n_id_groups):
        while True:
            keys[3 * g] = _next(rng)
            keys[3 * g + 1] = _next(rng)
            if keys[3 * g] | keys[3 * g + 1]:
                break
        while True:
            keys[3 * g + 2] = _next(rng)
            if keys[3 * g + 2]:
                break
    for g in range(plan.n_time_groups):
        v = _next(rng) % jitter if jitter else 0
        deltas[g] = now - (group_max[g] - group_min[g]) - v - send.backdate - group_min[g]
    rows = plan.arrays[IDS16]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        g = row[1]
        a = _load64(src + off) ^ keys[3 * g]
        b = _load64(src + off + 8) ^ keys[3 * g + 1]
        _store64(dst + off, a)
        _store64(dst + off + 8, b)
        ok = ok and (a | b) != 0
    rows = plan.arrays[IDS8]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        a = _load64(src + off) ^ keys[3 * row[1] + 2]
        _store64(dst + off, a)
        ok = ok and a != 0
    rows = plan.arrays[TIME_ADD]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        _store64(dst + off, _load64(src + off) + deltas[row[1]])
    rows = plan.arrays[TIME_WINDOW]
    for i in range(rows.n):
        row = rows.at + 2 * i
        a = _load64(src + row[0])
        b = _load64(src + row[1])
        _store64(dst + row[0], now - (b - a))
    rows = plan.arrays[TIME_NOW]
    for i in range(rows.n):
        _store64(dst + rows.at[i], now)
    rows = plan.arrays[TIME_SERIES]
    for i in range(rows.n):  # a series' point: as far before now as before its last point
        row = rows.at + 2 * i
        a = _load64(src + row[0])
        b = _load64(src + row[1])
        _store64(dst + row[0], now - (b - a))
    rows = plan.arrays[TIME_START]
    for i in range(rows.n):
        _store64(dst + rows.at[i], send.run_start)
    rows = plan.arrays[COUNTERS]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        if row[1]:
            memcpy(&iv, src + off, 8)
            iv = iv + <int64_t>step * ((iv >> 10) + 1) if iv >= 0 else iv + <int64_t>step
            memcpy(dst + off, &iv, 8)
        else:
            memcpy(&d, src + off, 8)
            d = d + <double>step * (d * 1e-3 if d > 0 else 1.0)
            memcpy(dst + off, &d, 8)
    rows = plan.arrays[GAUGES]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        f = 0.1 * (2.0 * _unit(rng) - 1.0)
        if row[1]:
            memcpy(&iv, src + off, 8)
            iv = iv + <int64_t>(<double>iv * f)
            memcpy(dst + off, &iv, 8)
        else:
            memcpy(&d, src + off, 8)
            if 0 < d <= 1.0:
                d = d * (1.0 + f)
                if d > 1.0:
                    d = 1.0
            else:
                d = d * (1.0 + f)
            memcpy(dst + off, &d, 8)
    rows = plan.arrays[HISTOGRAMS]  # [count offset, sum offset (-1: none), first bucket run, end run]
    for i in range(rows.n):
        row = rows.at + 4 * i
        off = row[0]
        count = _load64(src + off)
        if row[2] < row[3]:
            new_count = 0
            for j in range(row[2], row[3]):
                for k in range(runs[2 * j + 1]):
                    v = _grow(_load64(src + runs[2 * j] + 8 * k), step)
                    _store64(dst + runs[2 * j] + 8 * k, v)
                    new_count += v
        else:
            new_count = _grow(count, step)
        _store64(dst + off, new_count)
        if row[1] >= 0 and count > 0:
            memcpy(&d, src + row[1], 8)
            d = d * (<double>new_count / <double>count)
            memcpy(dst + row[1], &d, 8)
    rows = plan.arrays[SERIES_VALUES]  # [value offset, first point's, last point's, kind]
    for i in range(rows.n):  # a series' value, on from the capture: + step * (last - first)
        row = rows.at + 4 * i
        off = row[0]
        if row[3] == GROW_DOUBLE:
            memcpy(&d, src + off, 8)
            memcpy(&f, src + row[2], 8)
            memcpy(&e, src + row[1], 8)
            d = d + <double>step * (f - e)
            memcpy(dst + off, &d, 8)
        elif row[3] == GROW_VARINT10:
            _store_varint10(dst + off, _load_varint10(src + off)
                            + step * (_load_varint10(src + row[2]) - _load_varint10(src + row[1])))
        else:  # int64 and uint64 alike: the same bits, modulo 2**64
            _store64(dst + off, _load64(src + off) + step * (_load64(src + row[2]) - _load64(src + row[1])))
    if send.replica >= 0:
        rows = plan.arrays[REPLICAS]  # [offset, width]: the digits of a telegen.replica value
        for i in range(rows.n):
            row = rows.at + 2 * i
            off = row[0]
            width = row[1]
            r = send.replica
            for k in range(width - 1, -1, -1):
                dst[off + k] = <char>(48 + r % 10)
                r = r // 10
    return ok


def patch(PatchPlan plan, object data, uint64_t now, uint64_t jitter_ns=0, uint64_t backdate_ns=0,
          uint64_t run_start=0, uint64_t step=0, int64_t replica=-1, seed=None) -> bytes:
    """A patched copy of `data` (the buffer `plan` was scanned from: bytes, or
    any buffer such as a view of a mapped load cache).

    now: send time (ns since the epoch); traces end no later than now minus a
    per-trace jitter in [0, jitter_ns) and backdate_ns, log records are stamped
    now minus jitter and backdate, metric points now. run_start: start time of
    cumulative series (0: now). step: how far counters and histograms have grown
    (monotonic in it). replica >= 0: written zero-padded into every
    `telegen.replica` resource attribute. seed: for reproducible output (tests);
    otherwise the process-wide generator supplies fresh randomness."""
    cdef Py_buffer source
    PyObject_GetBuffer(data, &source, PyBUF_SIMPLE)
    try:
        return _patch(plan, <const char*>source.buf, source.len, now, jitter_ns, backdate_ns, run_start, step,
                      replica, seed)
    finally:
        PyBuffer_Release(&source)


# benchmarks/instructions.py counts the kernel's instructions inside this
# function's C symbol (KERNEL_SYMBOL): keep the C compiler from inlining it
# into patch(), now that it is small enough to be. A change to _patch's
# signature must be made here too (the compiler rejects a mismatch).
cdef extern from *:
    """
    struct __pyx_obj_7telegen_9_fastpath_PatchPlan;
    static PyObject *__pyx_f_7telegen_9_fastpath__patch(
        struct __pyx_obj_7telegen_9_fastpath_PatchPlan *, char const *, Py_ssize_t, uint64_t, uint64_t,
        uint64_t, uint64_t, uint64_t, int64_t, PyObject *) __attribute__((noinline));
    """


cdef bytes _patch(PatchPlan plan, const char* src, Py_ssize_t n, uint64_t now, uint64_t jitter_ns,
                  uint64_t backdate_ns, uint64_t run_start, uint64_t step, int64_t replica, seed):
    if n != plan.size:
        raise ValueError(f"buffer is {n} bytes but the plan was scanned from {plan.size}")
    cdef SendArgs send
    send.now = now
    send.jitter = jitter_ns
    send.backdate = backdate_ns
    send.run_start = run_start if run_start else now  # a zero start time would read as "unset"
    send.step = step
    send.replica = replica
    cdef Xoshiro rng
    if seed is None:
        _seed(&rng, _next(&_global_rng))
    else:
        _seed(&rng, <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF))
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef uint64_t* keys = <uint64_t*>malloc((3 * plan.n_id_groups + 1) * sizeof(uint64_t))
    cdef uint64_t* deltas = <uint64_t*>malloc((plan.n_time_groups + 1) * sizeof(uint64_t))
    if keys == NULL or deltas == NULL:
        free(keys)
        free(deltas)
        raise MemoryError()
    try:
        with nogil:
            while not _patch_once(&plan.view, src, dst, n, &rng, &send, keys, deltas):
                pass
    finally:
        free(keys)
        free(deltas)
    return out
