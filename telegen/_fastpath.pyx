# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The send path's compiled core: scan a serialized OTLP export request once
into a patch plan, then patch copies of it per send without parsing.

scan(signal, buf) walks the protobuf wire format (bounds-checked: malformed
input raises ValueError naming the byte offset) and records the offset of
every field that changes per send. Every such field is fixed-width, so a
patch never moves a byte: patch(plan, buf, ...) copies `buf` into a new bytes
object and overwrites ids, times and metric values in place with the GIL
released.

The code is split by concern: _rng.pxi (xoshiro256**), _plan.pxi (the
patch plan, and PlanView, the one struct the kernel reads it by), _wire.pxi
(the bounds-checked wire walk), _scan.pxi (request -> plan), _regroup.pxi
(requests regrouped and split at load time) and _patch.pxi (the kernel);
this file holds the entry points.

The plain-Python twins in telegen/reference/ (one module per concern)
implement the same operations on decoded messages; given the same seed both
produce identical bytes, which is how the tests check these files.
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
INSTANCE_KEY = b"service.instance.id"

cdef enum:
    TRACES = 0
    METRICS = 1
    LOGS = 2
    WIRE_VARINT = 0
    WIRE_I64 = 1
    WIRE_LEN = 2
    WIRE_I32 = 5

cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFFULL

# One extension, one include per concern (one C module: the kernel's calls
# stay direct, and benchmarks/instructions.py finds _patch by its C name).
include "_rng.pxi"
include "_plan.pxi"
include "_wire.pxi"
include "_scan.pxi"
include "_regroup.pxi"
include "_patch.pxi"


# -- the entry points ------------------------------------------------------------

def scan(signal: str, data) -> PatchPlan:
    """The patch plan of one serialized Export{Trace,Metrics,Logs}ServiceRequest
    (`signal` is "traces", "metrics" or "logs"). Raises ValueError with the
    byte offset on malformed input."""
    cdef const uint8_t[::1] view = data
    cdef _Scanner scanner = _Scanner()
    scanner.attach(signal, view)
    scanner.scan_request(0, scanner.size)
    if scanner.signal == TRACES:
        scanner.resolve_links()
    return scanner.plan()


def count_events(signal: str, data) -> int:
    """Spans, log records or metric data points in one request, without
    building a plan. Raises ValueError with the byte offset on malformed input."""
    cdef const uint8_t[::1] view = data
    cdef _Wire walk = _Wire()
    walk.attach(signal, view)
    walk.count_nested(0, walk.size, 0)
    return walk.events


def split(str signal, data, Py_ssize_t max_bytes, Py_ssize_t replica_width=0) -> list:
    """One request cut into requests of at most about `max_bytes` each, item by
    item, every item under its own resource and scope (each piece regrouped).
    For a template too big for one message: a 100,000-span trace."""
    cdef const uint8_t[::1] view = data
    cdef _Wire walk = _Wire()
    walk.attach(signal, view)
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


def patch(PatchPlan plan, object data, uint64_t now, uint64_t jitter_ns=0, uint64_t backdate_ns=0,
          uint64_t run_start=0, uint64_t step=0, int64_t replica=-1, seed=None, id_key=None,
          int64_t send_number=0, clock=None, slots=None, bytes head=b"") -> bytes:
    """A patched copy of `data` (the buffer `plan` was scanned from: bytes, or
    any buffer such as a view of a mapped load cache), after `head`: bytes a
    carrier wants before the message (a gRPC message prefix), written in the
    same allocation so the body needs no second copy to be framed.

    now: send time (ns since the epoch); traces end no later than now minus a
    per-trace jitter in [0, jitter_ns) and backdate_ns, log records are stamped
    now minus jitter and backdate, metric points now. run_start: start time of
    cumulative series (0: now); for metric series kept whole (several points,
    as `telegen import` writes them), when their replay began: their
    cumulative values grow at each series' captured rate for (now -
    run_start), and their start goes as far before run_start as it was before
    the series' last point. step: how far generated counters and histograms
    (a point alone) have grown (monotonic in it). replica >= 0: written zero-padded into every
    `telegen.replica` resource attribute. seed: for reproducible output (tests);
    otherwise the process-wide generator supplies fresh randomness.

    id_key (None: a random key per trace per send): derive every id group's
    keys from its template trace id, this key and a send number, so every
    signal maps a template id alike (docs/design.md, "Correlation").
    send_number: how often this batch went out before (its trace's keys
    and, with `clock`, what a trace batch's send writes there). clock: int64
    rows [now of an even send, now of an odd send, latest send number (-1:
    none), flags the kernel ignores] per trace batch; slots: int64 per id group, the clock row of the
    trace batch holding its trace (-1: none). A group with a sent slot takes
    that send's number and `now` (its times shift as its trace's did)."""
    cdef Py_buffer source, clock_view, slots_view
    cdef SendArgs send
    send.keyed = id_key is not None
    send.id_key = <uint64_t>(id_key & 0xFFFFFFFFFFFFFFFF) if id_key is not None else 0
    send.send_number = send_number
    send.clock = NULL
    send.clock_rows = 0
    send.slots = NULL
    cdef bint has_clock = False, has_slots = False
    PyObject_GetBuffer(data, &source, PyBUF_SIMPLE)
    try:
        if send.keyed and clock is not None and slots is not None:
            PyObject_GetBuffer(clock, &clock_view, PyBUF_C_CONTIGUOUS)
            has_clock = True
            PyObject_GetBuffer(slots, &slots_view, PyBUF_C_CONTIGUOUS)
            has_slots = True
            if clock_view.itemsize != 8 or clock_view.len % (8 * CLOCK_COLUMNS) or slots_view.itemsize != 8 \
                    or slots_view.len != 8 * plan.n_id_groups:
                raise ValueError(f"clock must be int64 rows of {CLOCK_COLUMNS} and slots one int64 per id group")
            send.clock = <const int64_t*>clock_view.buf
            send.clock_rows = clock_view.len // (8 * CLOCK_COLUMNS)
            send.slots = <const int64_t*>slots_view.buf
        return _patch(plan, <const char*>source.buf, source.len, now, jitter_ns, backdate_ns, run_start, step,
                      replica, seed, &send, head)
    finally:
        PyBuffer_Release(&source)
        if has_clock:
            PyBuffer_Release(&clock_view)
        if has_slots:
            PyBuffer_Release(&slots_view)
