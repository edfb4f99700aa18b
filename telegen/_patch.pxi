# The patch kernel: a copy of the template with every planned field rewritten
# in place, without the GIL. Included by _fastpath.pyx.

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


cdef inline uint64_t _grow(uint64_t v, uint64_t step) noexcept nogil:
    return v + step * ((v >> 10) + (1 if v > 0 else 0))


cdef inline uint64_t _growth(uint64_t increase, double x) noexcept nogil:
    """A series' captured `increase` (last - first, modulo 2**64: read signed)
    times `x`, truncated toward zero (within int64, and NaN, which only a
    damaged cache's zero span could give, as 0: no undefined cast)."""
    cdef double g = <double>(<int64_t>increase) * x
    if g >= 9.2e18:
        g = 9.2e18
    elif g <= -9.2e18:
        g = -9.2e18
    elif g != g:
        g = 0
    return <uint64_t>(<int64_t>g)


cdef extern from *:
    """
    /* The clock of a trace batch is written by whichever process sends it
       while others read it: read its send number before its time. */
    static inline int64_t telegen_load_acquire(const int64_t* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    """
    int64_t telegen_load_acquire(const int64_t* p) noexcept nogil


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


# Words per id group in a patch's scratch: the trace id's two keys, the span
# ids' key, the jitter draw and the `now` its times are shifted to.
DEF KEY_WORDS = 5
# Columns of a trace clock row (telegen/send/engine/clock.py); the kernel reads the first three.
DEF CLOCK_COLUMNS = 4


# What one send asks for, beyond the plan and the template.
cdef struct SendArgs:
    uint64_t now
    uint64_t jitter
    uint64_t backdate
    uint64_t run_start  # start of cumulative series; for series kept whole, when their replay began
    uint64_t step
    int64_t replica
    # Keyed ids (docs/design.md, "Correlation"): a group's keys are derived
    # from its template trace id and the key of the send that its trace went
    # out in; `keyed` false: random keys per send, as every send did before.
    bint keyed
    uint64_t id_key  # the run's, shard's and tenant's key
    int64_t send_number  # this batch's sends before this one
    const int64_t* clock  # per trace batch: [now of an even send, of an odd one, latest send number (-1: none), -]
    Py_ssize_t clock_rows
    const int64_t* slots  # per id group: the trace batch (row of `clock`) holding its trace, -1: none
    uint64_t attempt  # > 0 after an id came out all zero


cdef bint _patch_once(const PlanView* plan, const char* src, char* dst, Py_ssize_t n, Xoshiro* rng,
                      const SendArgs* send, uint64_t* keys, uint64_t* deltas) noexcept nogil:
    """One attempt; returns False when an id came out all-zero (the caller
    retries with fresh randomness, so such an id is never emitted)."""
    # Locals, not reads through `plan` and `send`: every store into `dst`
    # (a char*) could alias those, and would force them reloaded.
    cdef uint64_t now = send.now, jitter = send.jitter, step = send.step, run_start = send.run_start
    cdef PlanRows rows
    cdef const int64_t* row
    cdef const int64_t* runs = plan.arrays[BUCKET_RUNS].at
    cdef const uint64_t* group_min = <const uint64_t*>plan.arrays[GROUP_MIN].at
    cdef const uint64_t* group_max = <const uint64_t*>plan.arrays[GROUP_MAX].at
    cdef Py_ssize_t i, g, j, k, off, width
    cdef uint64_t a, b, v, count, new_count
    cdef double d, e, f, x
    # How long the series kept whole have been replayed (ns; 0 before run_start).
    cdef double elapsed = <double>(<int64_t>(now - run_start))
    cdef int64_t iv, r
    cdef bint ok = True
    if elapsed < 0:
        elapsed = 0
    memcpy(dst, src, n)
    cdef const int64_t* time_keys = plan.arrays[TIME_KEYS].at
    # The draw order (keys, jitter, gauge noise) is part of the contract with
    # the reference implementation.
    if send.keyed:
        _derive_keys(plan, send, keys)
    else:
        for g in range(plan.n_id_groups):
            while True:
                keys[KEY_WORDS * g] = _next(rng)
                keys[KEY_WORDS * g + 1] = _next(rng)
                if keys[KEY_WORDS * g] | keys[KEY_WORDS * g + 1]:
                    break
            while True:
                keys[KEY_WORDS * g + 2] = _next(rng)
                if keys[KEY_WORDS * g + 2]:
                    break
    for g in range(plan.n_time_groups):
        k = time_keys[g]
        if send.keyed and k >= 0:  # as its trace is shifted, wherever that was sent
            v = keys[KEY_WORDS * k + 3] % jitter if jitter else 0
            a = keys[KEY_WORDS * k + 4]
        else:
            v = _next(rng) % jitter if jitter else 0
            a = now
        deltas[g] = a - (group_max[g] - group_min[g]) - v - send.backdate - group_min[g]
    rows = plan.arrays[IDS16]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        g = row[1]
        a = _load64(src + off) ^ keys[KEY_WORDS * g]
        b = _load64(src + off + 8) ^ keys[KEY_WORDS * g + 1]
        _store64(dst + off, a)
        _store64(dst + off + 8, b)
        ok = ok and (a | b) != 0
    rows = plan.arrays[IDS8]
    for i in range(rows.n):
        row = rows.at + 2 * i
        off = row[0]
        a = _load64(src + off) ^ keys[KEY_WORDS * row[1] + 2]
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
        _store64(dst + rows.at[i], run_start)
    rows = plan.arrays[SERIES_START]  # [start offset, first point's time, last point's time]
    for i in range(rows.n):  # as far before run_start as before the last point, and no later than the first
        row = rows.at + 3 * i
        a = _load64(src + row[0])
        b = _load64(src + row[1])
        _store64(dst + row[0], run_start - (_load64(src + row[2]) - (a if a < b else b)))
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
    rows = plan.arrays[EXP_HISTOGRAMS]  # [count, sum (-1: none), zero count (-1: none), first varint run, end]
    runs = plan.arrays[VARINT_RUNS].at
    for i in range(rows.n):
        row = rows.at + 5 * i
        off = row[0]
        count = _load64(src + off)
        new_count = count  # + what its buckets and zero count grow by; by itself when it has neither
        for j in range(row[3], row[4]):
            for k in range(runs[2 * j + 1]):
                a = _load_varint10(src + runs[2 * j] + 10 * k)
                v = _grow(a, step)
                _store_varint10(dst + runs[2 * j] + 10 * k, v)
                new_count += v - a
        if row[2] >= 0:
            a = _load64(src + row[2])
            v = _grow(a, step)
            _store64(dst + row[2], v)
            new_count += v - a
        if row[3] == row[4] and row[2] < 0:
            new_count = _grow(count, step)
        _store64(dst + off, new_count)
        if row[1] >= 0 and count > 0:
            memcpy(&d, src + row[1], 8)
            d = d * (<double>new_count / <double>count)
            memcpy(dst + row[1], &d, 8)
    # [value offset, first point's, last point's, kind, first point's time offset, last point's]
    rows = plan.arrays[SERIES_VALUES]
    for i in range(rows.n):  # a series' value, on from the capture at its captured rate: + (last - first) * x
        row = rows.at + 6 * i
        off = row[0]
        x = elapsed / <double>(<int64_t>(_load64(src + row[5]) - _load64(src + row[4])))
        if row[3] == GROW_DOUBLE:
            memcpy(&d, src + off, 8)
            memcpy(&f, src + row[2], 8)
            memcpy(&e, src + row[1], 8)
            d = d + (f - e) * x
            memcpy(dst + off, &d, 8)
        elif row[3] == GROW_VARINT10:
            _store_varint10(dst + off, _load_varint10(src + off)
                            + _growth(_load_varint10(src + row[2]) - _load_varint10(src + row[1]), x))
        elif row[3] == GROW_COUNT:  # + what rows row[1]..row[2]-1 (its buckets, zero count) just grew by
            v = _load64(src + off)
            for j in range(row[1], row[2]):
                k = rows.at[6 * j]
                if rows.at[6 * j + 3] == GROW_VARINT10:
                    v += _load_varint10(dst + k) - _load_varint10(src + k)
                else:
                    v += _load64(dst + k) - _load64(src + k)
            _store64(dst + off, v)
        else:  # int64 and uint64 alike: the same bits, modulo 2**64
            _store64(dst + off, _load64(src + off) + _growth(_load64(src + row[2]) - _load64(src + row[1]), x))
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


cdef void _derive_keys(const PlanView* plan, const SendArgs* send, uint64_t* keys) noexcept nogil:
    """Each id group's keys from its template trace id and the key of the
    send its trace went out in: the latest send of the trace batch holding
    it (its clock row), else this one. So a log or an exemplar, patched
    anywhere, names what its span became when that was sent; the jitter and
    the `now` of its trace come with the keys, so its time moves as the
    span's did."""
    cdef const int64_t* ids = plan.arrays[GROUP_IDS].at
    cdef const int64_t* row
    cdef Py_ssize_t g
    cdef int64_t slot, number
    cdef uint64_t now, seed
    for g in range(plan.n_id_groups):
        number = send.send_number
        now = send.now
        slot = send.slots[g] if send.slots != NULL else -1
        if 0 <= slot < send.clock_rows:
            row = send.clock + CLOCK_COLUMNS * slot
            number = telegen_load_acquire(row + 2)
            if number >= 0:
                now = <uint64_t>row[number & 1]
            else:  # never sent: as if it went out with this send
                number = send.send_number
        seed = _mix64(send.id_key + <uint64_t>number * 0x9E3779B97F4A7C15ULL)
        seed = _mix64(seed ^ <uint64_t>ids[2 * g])
        seed = _mix64(seed ^ <uint64_t>ids[2 * g + 1] ^ send.attempt * 0xD6E8FEB86659FD93ULL)
        keys[KEY_WORDS * g] = _splitmix64(&seed)
        keys[KEY_WORDS * g + 1] = _splitmix64(&seed)
        keys[KEY_WORDS * g + 2] = _splitmix64(&seed)
        keys[KEY_WORDS * g + 3] = _splitmix64(&seed)
        keys[KEY_WORDS * g + 4] = now


# benchmarks/instructions.py counts the kernel's instructions inside this
# function's C symbol (KERNEL_SYMBOL): keep the C compiler from inlining it
# into patch(), now that it is small enough to be. A change to _patch's
# signature must be made here too (the compiler rejects a mismatch).
cdef extern from *:
    """
    struct __pyx_obj_7telegen_9_fastpath_PatchPlan;
    struct __pyx_t_7telegen_9_fastpath_SendArgs;
    static PyObject *__pyx_f_7telegen_9_fastpath__patch(
        struct __pyx_obj_7telegen_9_fastpath_PatchPlan *, char const *, Py_ssize_t, uint64_t, uint64_t,
        uint64_t, uint64_t, uint64_t, int64_t, PyObject *, struct __pyx_t_7telegen_9_fastpath_SendArgs *, PyObject *) __attribute__((noinline));
    """


cdef bytes _patch(PatchPlan plan, const char* src, Py_ssize_t n, uint64_t now, uint64_t jitter_ns,
                  uint64_t backdate_ns, uint64_t run_start, uint64_t step, int64_t replica, seed,
                  SendArgs* send, bytes head):
    """`send` comes with its keyed fields set (keyed, id_key, send_number,
    clock, clock_rows, slots); the rest is set here. The copy follows `head`."""
    if n != plan.size:
        raise ValueError(f"buffer is {n} bytes but the plan was scanned from {plan.size}")
    send.now = now
    send.jitter = jitter_ns
    send.backdate = backdate_ns
    send.run_start = run_start if run_start else now  # a zero start time would read as "unset"
    send.step = step
    send.replica = replica
    send.attempt = 0
    cdef Xoshiro rng
    if seed is None:
        _seed(&rng, _next(&_global_rng))
    else:
        _seed(&rng, <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF))
    cdef Py_ssize_t head_size = len(head)
    out = PyBytes_FromStringAndSize(NULL, head_size + n)
    cdef char* dst = PyBytes_AS_STRING(out)
    if head_size:
        memcpy(dst, PyBytes_AS_STRING(head), head_size)
        dst += head_size
    cdef uint64_t* keys = <uint64_t*>malloc((KEY_WORDS * plan.n_id_groups + 1) * sizeof(uint64_t))
    cdef uint64_t* deltas = <uint64_t*>malloc((plan.n_time_groups + 1) * sizeof(uint64_t))
    if keys == NULL or deltas == NULL:
        free(keys)
        free(deltas)
        raise MemoryError()
    try:
        with nogil:
            # An all-zero id (about one in 2**64) is redrawn: for a keyed send,
            # with keys no other send derives (that send's correlation is lost).
            while not _patch_once(&plan.view, src, dst, n, &rng, send, keys, deltas):
                send.attempt += 1
    finally:
        free(keys)
        free(deltas)
    return out
