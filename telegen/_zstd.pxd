# Declarations of telegen._zstd for other Cython modules (cimport).
cdef class ZstdTemplate:
    cdef readonly bytes data
    cdef readonly Py_ssize_t start, end
    cdef readonly object runs
