# The scan: one walk over a request records the offset of every field a send
# changes, in the plan's arrays. Included by _fastpath.pyx.

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


cdef class _Scanner(_Wire):
    """The walk that builds a patch plan: every field a send changes, recorded
    by offset in the plan's arrays."""
    # The plan's arrays as they grow, one _Rows per PlanView slot (group bounds:
    # uint64 values in int64 slots). Metric series kept whole (several points
    # of one attribute set, in time order, as `telegen import` writes them)
    # fill TIME_SERIES, SERIES_VALUES and SERIES_START: their times keep
    # their offsets from the series' last point, their cumulative values grow
    # at the series' captured rate, and their start goes as far before the
    # replay's start as it was before the series' last point.
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
        cdef int64_t* words
        group = self.id_groups.get(key)
        if group is None:
            group = self.id_groups[key] = len(self.id_groups)
            words = self.rows(GROUP_IDS).row()
            words[0] = words[1] = 0
            if len(key) == 16:  # the template trace id a keyed patch derives the group's keys from
                memcpy(words, <const char*>key, 16)
        return group

    cdef int add_ids(self, Py_ssize_t group, Py_ssize_t trace_off, Py_ssize_t span_off) except -1:
        """A trace id and a span id (either may be absent: -1) keyed to `group`."""
        if trace_off >= 0:
            self.rows(IDS16).add2(trace_off, group)
        if span_off >= 0:
            self.rows(IDS8).add2(span_off, group)
        return 0

    cdef Py_ssize_t new_time_group(self, uint64_t low, uint64_t high, Py_ssize_t key_group):
        """A time group with template bounds [low, high], its shift keyed to
        id group `key_group` (-1: none)."""
        self.rows(GROUP_MIN).add1(<int64_t>low)
        self.rows(GROUP_MAX).add1(<int64_t>high)
        self.rows(TIME_KEYS).add1(key_group)
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
        """The digits of a numbered copy: the `telegen.replica` value's, and
        as many at the end of `service.instance.id` (see _numbered_resource)."""
        cdef Py_ssize_t pos = start, kpos, vpos, width = 0, instance_end = -1, instance_size = 0
        cdef Field f, k, v
        cdef bint is_replica, is_instance
        while pos < end:
            self.next_field(&pos, end, &f)
            if f.number != 1 or f.wire != WIRE_LEN:
                continue
            # KeyValue{1: key, 2: AnyValue{1: string_value}}
            kpos = f.start
            is_replica = is_instance = False
            while kpos < f.end:
                self.next_field(&kpos, f.end, &k)
                if k.number == 1 and k.wire == WIRE_LEN:
                    is_replica = (<const char*>self.buf)[k.start:k.end] == REPLICA_KEY
                    is_instance = (<const char*>self.buf)[k.start:k.end] == INSTANCE_KEY
                elif k.number == 2 and k.wire == WIRE_LEN and (is_replica or is_instance):
                    vpos = k.start
                    while vpos < k.end:
                        self.next_field(&vpos, k.end, &v)
                        if v.number == 1 and v.wire == WIRE_LEN and v.end > v.start:
                            if is_replica:
                                self.rows(REPLICAS).add2(v.start, v.end - v.start)
                                width = v.end - v.start
                            else:
                                instance_end, instance_size = v.end, v.end - v.start
        if width and instance_size >= width:
            self.rows(REPLICAS).add2(instance_end - width, width)
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
            self.new_time_group(U64_MAX, 0, group)
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
        cdef Py_ssize_t group = -1, time_group
        cdef uint64_t anchor
        if has_ids:
            group = self.id_group(trace_id)
            self.add_ids(group, trace_off, span_off)
        if times.n:
            # Keyed to its trace: a keyed patch shifts it as its trace's spans
            # are shifted, once the load gives it the trace's bounds
            # (send/load/correlate.py).
            anchor = t_time if t_time else t_observed
            time_group = self.new_time_group(anchor, anchor, group)
            for i in range(times.n):
                self.rows(TIME_ADD).add2(times.data[i], time_group)
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
        """A cumulative exponential histogram in a series: zero count, sum and
        every bucket go on at the series' captured rate, and the count by what
        the zero count and buckets grew, when all its bucket counts are padded
        varints in the same layout; else as captured."""
        cdef int64_t* first = self.series_point(False)
        cdef int64_t* last = self.series_point(True)
        cdef int64_t* here = self.points.data + self.current_point * POINT_COLUMNS
        cdef Py_ssize_t k
        cdef int side
        for side in (P_BUCKETS_OFF, P_NEG_OFF):
            if here[side + 1] < 0 or first[side + 1] != here[side + 1] or last[side + 1] != here[side + 1]:
                return 0
        cdef Py_ssize_t parts = self.rows(SERIES_VALUES).n
        self.grow_by_series(here[P_ZERO_OFF], P_ZERO_OFF, GROW_UINT64)
        for side in (P_BUCKETS_OFF, P_NEG_OFF):
            for k in range(here[side + 1]):
                self.series_row(here[side] + 10 * k, first[side] + 10 * k, last[side] + 10 * k, GROW_VARINT10)
        self.grow_count(here[P_VALUE_OFF], parts)
        self.grow_by_series(here[P_SUM_OFF], P_SUM_OFF, GROW_DOUBLE)
        return 0

    cdef int grow_exponential(self) except -1:
        """A cumulative exponential histogram point alone (as the generator
        writes them): it grows as an explicit one does, bucket by bucket and
        its zero count, the count by what they grew to, when every bucket
        count is a padded varint (the only kind a patch can rewrite)."""
        cdef int64_t* here = self.points.data + self.current_point * POINT_COLUMNS
        if here[P_VALUE_OFF] < 0 or here[P_BUCKETS] < 0 or here[P_NEG] < 0:
            return 0
        cdef _Rows runs = self.rows(VARINT_RUNS)
        cdef Py_ssize_t first = runs.n
        cdef int side
        for side in (P_BUCKETS_OFF, P_NEG_OFF):
            if here[side] >= 0 and here[side + 1] > 0:
                runs.add2(here[side], here[side + 1])
        cdef int64_t* h = self.rows(EXP_HISTOGRAMS).row()
        h[0] = here[P_VALUE_OFF]
        h[1] = here[P_SUM_OFF]
        h[2] = here[P_ZERO_OFF]
        h[3] = first
        h[4] = runs.n
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
        if off < 0 or first < 0 or last < 0:
            return 0
        return self.series_row(off, first, last, how)

    cdef int grow_count(self, Py_ssize_t off, Py_ssize_t parts) except -1:
        """A histogram's count (at `off`) in a series: it grows by what its
        parts (the series_values rows from `parts` on: buckets, zero count)
        grew by in the same send, so it stays their sum however each part's
        growth is rounded; by its own increase when it has no parts."""
        cdef Py_ssize_t n = self.rows(SERIES_VALUES).n
        if n == parts:
            return self.grow_by_series(off, P_VALUE_OFF, GROW_UINT64)
        if off < 0:
            return 0
        return self.series_row(off, parts, n, GROW_COUNT)

    cdef int series_row(self, int64_t off, int64_t first, int64_t last, int how) except -1:
        """[value, first point's value, last point's value, kind, first
        point's time, last point's time]: the kernel grows the value by
        (last - first) / (last time - first time), the series' captured rate,
        times the time since its replay started. A series' points all have
        times, each later than the one before (find_series)."""
        cdef int64_t* r = self.rows(SERIES_VALUES).row()
        r[0] = off
        r[1] = first
        r[2] = last
        r[3] = how
        r[4] = self.series_point(False)[P_TIME_OFF]
        r[5] = self.series_point(True)[P_TIME_OFF]
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
        # A cumulative start goes as far before the replay's start as it was
        # before the last point (no later than the first point), so it
        # precedes every point of every send, and stays put.
        cdef Py_ssize_t last_time = self.series_point(True)[P_TIME_OFF] if self.last_point >= 0 else -1
        if time_off >= 0:
            if last_time >= 0:
                self.rows(TIME_SERIES).add2(time_off, last_time)
            else:
                self.rows(TIME_NOW).add1(time_off)
        if start_off >= 0:
            if cumulative and last_time >= 0:
                self.rows(SERIES_START).add3(start_off, self.series_point(False)[P_TIME_OFF], last_time)
            elif cumulative:
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
        """A cumulative histogram in a series: every bucket and the sum grow at
        the series' captured rate, the count by what its buckets grew (so it
        stays their sum); buckets only where the first and last points have
        as many as this one."""
        cdef int64_t* first = self.series_point(False)
        cdef int64_t* last = self.series_point(True)
        cdef int64_t* here = self.points.data + self.current_point * POINT_COLUMNS
        cdef Py_ssize_t k
        if here[P_BUCKETS] and (first[P_BUCKETS] != here[P_BUCKETS] or last[P_BUCKETS] != here[P_BUCKETS]):
            return 0  # the bucket layout changed within the series: left as captured
        cdef Py_ssize_t parts = self.rows(SERIES_VALUES).n
        for k in range(here[P_BUCKETS]):
            self.series_row(here[P_BUCKETS_OFF] + 8 * k, first[P_BUCKETS_OFF] + 8 * k, last[P_BUCKETS_OFF] + 8 * k,
                            GROW_UINT64)
        self.grow_count(count_off, parts)
        if sum_off >= 0:
            self.grow_by_series(sum_off, P_SUM_OFF, GROW_DOUBLE)
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
        elif exponential and cumulative:
            self.grow_exponential()
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

    cdef PatchPlan plan(self):
        return _new_plan(self.signal, self.size, self.events, len(self.id_groups), self.n_time_groups,
                         [(<_Rows>rows).array(dtype, columns == 0)
                          for rows, (dtype, columns) in zip(self.out, PLAN_ARRAYS.values())])
