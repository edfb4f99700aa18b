# The protobuf wire format, walked bounds-checked: what the scan, the regrouper
# and the splitter all read requests with. Included by _fastpath.pyx.

cdef struct Field:
    uint64_t number
    int wire
    Py_ssize_t start   # value start (after tag, and after length for LEN)
    Py_ssize_t end     # value end
    uint64_t value     # VARINT value; I64/I32 raw


cdef class _Wire:
    """A walk over one serialized request: fields one at a time, each checked
    against the bounds of the message holding it, so malformed input raises
    ValueError naming the byte offset. The caller keeps the buffer alive."""
    cdef const uint8_t* buf
    cdef Py_ssize_t size
    cdef int signal
    cdef Py_ssize_t events

    cdef int attach(self, str signal, const uint8_t[::1] view) except -1:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        self.buf = &view[0] if view.shape[0] else <const uint8_t*>b""
        self.size = view.shape[0]
        self.signal = SIGNALS.index(signal)
        return 0

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
