# The patch plan: what a scan finds and the patch kernel reads, its arrays by
# name for Python and as one PlanView for the kernel. Included by _fastpath.pyx.

cdef class PatchPlan:
    """Offsets of every per-send field of one serialized request.

    Arrays are int64 [offset, argument] rows; group numbers index the id
    groups (one per trace, or per distinct trace id referenced by logs and
    exemplars) and time groups (one per trace, or per log record).
    `group_ids` holds each id group's template trace id (two little-endian
    words; zeros for none): a keyed patch derives the group's fresh ids from
    it. `time_keys` names, per time group, the id group whose key also
    decides its shift (a trace's own; a log record's trace), -1 for none."""

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
    "time_series": (np.int64, 2), "series_values": (np.int64, 6), "series_start": (np.int64, 3),
    "group_ids": (np.int64, 2), "time_keys": (np.int64, 0), "exp_histograms": (np.int64, 5),
    "varint_runs": (np.int64, 2),
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
    if len(plan.group_min) != n_time_groups or len(plan.group_max) != n_time_groups \
            or len(plan.time_keys) != n_time_groups:
        raise ValueError("plan time groups do not match their bounds")
    if len(plan.group_ids) != n_id_groups:
        raise ValueError("plan id groups do not match their template ids")
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
    if len(values) and (values[:, 3].min() < 0 or values[:, 3].max() > 4):
        raise ValueError("plan array series_values has an unknown value kind")
    kinds = values[:, 3] if len(values) else np.zeros(0, dtype=np.int64)
    for column in range(3):
        offsets("series_values", values[(kinds != 3) & (kinds != 4)], 8, column)
        offsets("series_values", values[kinds == 3], 10, column)
    offsets("series_values", values[kinds == 4], 8, 0)
    offsets("series_values", values, 8, 4)
    offsets("series_values", values, 8, 5)
    counts = np.flatnonzero(kinds == 4)
    # A count totals rows written before it, none of them a count or a double.
    if len(counts) and ((values[counts, 1] < 0).any() or (values[counts, 1] > values[counts, 2]).any()
                        or (values[counts, 2] > counts).any()
                        or any(((kinds[a:b] == 0) | (kinds[a:b] == 4)).any() for a, b in values[counts, 1:3])):
        raise ValueError("plan array series_values has a count of rows that do not precede it")
    for column in range(3):
        offsets("series_start", plan.series_start, 8, column)
    keys = plan.time_keys
    if len(keys) and (keys.min() < -1 or keys.max() >= plan.n_id_groups):
        raise ValueError("plan array time_keys names an id group that does not exist")
    varints, exponential = plan.varint_runs, plan.exp_histograms
    if len(varints) and (varints[:, 0].min() < 0 or varints[:, 1].min() < 0
                         or (varints[:, 0] + 10 * varints[:, 1]).max() > plan.size):
        raise ValueError("plan array varint_runs runs outside the buffer")
    if len(exponential):
        offsets("exp_histograms", exponential, 8, 0)
        for column in (1, 2):
            if exponential[:, column].max() > plan.size - 8 or exponential[:, column].min() < -1:
                raise ValueError("plan array exp_histograms has an offset outside the buffer")
        if exponential[:, 3].min() < 0 or exponential[:, 4].max() > len(varints) \
                or (exponential[:, 3] > exponential[:, 4]).any():
            raise ValueError("plan array exp_histograms names varint runs that do not exist")
    replicas = plan.replicas
    if len(replicas) and (replicas[:, 0].min() < 0 or replicas[:, 1].min() < 0
                          or (replicas[:, 0] + replicas[:, 1]).max() > plan.size):
        raise ValueError("plan array replicas runs outside the buffer")


# series_values kinds: how a value is read and written. Each grows by its
# series' captured rate, (last - first) / (last time - first time), times the
# time since the series' replay started (_patch.pxi).
cdef enum:
    GROW_DOUBLE = 0
    GROW_INT64 = 1
    GROW_UINT64 = 2
    GROW_VARINT10 = 3  # a varint padded to 10 bytes (as `telegen import` writes exponential buckets)
    GROW_COUNT = 4  # a histogram's count (fixed64): + what series_values rows [first, last) grew by


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

    cdef int add3(self, int64_t a, int64_t b, int64_t c) except -1:
        cdef int64_t* r = self.row()
        r[0] = a
        r[1] = b
        r[2] = c
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
