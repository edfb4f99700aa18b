# Declarations of telegen._gzip for other Cython modules (cimport).
cdef class GzipTemplate:
    cdef readonly bytes data
    cdef readonly Py_ssize_t start, end
    cdef readonly object sites, codes
