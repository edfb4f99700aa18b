# Declarations of telegen._fastpath for other Cython modules (cimport).
from libc.stdint cimport int64_t

# A patch plan's arrays, in the order of PLAN_ARRAYS: each one's slot in
# PlanView.arrays.
cdef enum:
    IDS16
    IDS8
    TIME_ADD
    TIME_NOW
    TIME_START
    TIME_WINDOW
    COUNTERS
    GAUGES
    HISTOGRAMS
    BUCKET_RUNS
    REPLICAS
    GROUP_MIN
    GROUP_MAX
    TIME_SERIES
    SERIES_VALUES
    SERIES_START
    GROUP_IDS
    TIME_KEYS
    EXP_HISTOGRAMS
    VARINT_RUNS
    N_PLAN_ARRAYS

cdef struct PlanRows:
    const int64_t* at  # rows of PLAN_ARRAYS' column count, row after row (group bounds: uint64 bits)
    Py_ssize_t n       # rows

# What the patch kernel reads of a plan, without the GIL: made once with the
# plan, so a send acquires no buffer.
cdef struct PlanView:
    Py_ssize_t n_id_groups
    Py_ssize_t n_time_groups
    PlanRows arrays[N_PLAN_ARRAYS]

cdef class PatchPlan:
    cdef readonly int signal
    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t events
    cdef readonly Py_ssize_t n_id_groups
    cdef readonly Py_ssize_t n_time_groups
    cdef tuple _arrays  # in PLAN_ARRAYS' order; they own the memory `view` points into
    cdef PlanView view
