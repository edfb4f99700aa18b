# Declarations of telegen._fastpath for other Cython modules (cimport).
cdef class PatchPlan:
    cdef readonly int signal
    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t events
    cdef readonly Py_ssize_t n_id_groups
    cdef readonly Py_ssize_t n_time_groups
    cdef readonly object ids16, ids8, time_add, time_now, time_start, time_window
    cdef readonly object counters, gauges, histograms, bucket_runs, replicas
    cdef readonly object group_min, group_max
    cdef readonly object time_series, series_values
