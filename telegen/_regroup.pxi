# Load-time assembly: requests regrouped at the wire level. Included by
# _fastpath.pyx.
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


cdef tuple _read_varint(bytes data, Py_ssize_t pos):
    cdef uint64_t value = 0
    cdef int shift = 0
    cdef uint8_t byte
    while True:
        if pos >= len(data):
            raise ValueError("a resource ends inside a varint")
        byte = data[pos]
        pos += 1
        value |= <uint64_t>(byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


cdef bytes _varint_bytes(uint64_t value):
    cdef char buf[10]
    return buf[:_put_varint(buf, value)]


cdef bytes _len_bytes(uint8_t tag, bytes payload):
    return bytes([tag]) + _varint_bytes(len(payload)) + payload


cdef object _string_value(bytes key_value, bytes key):
    """The string value of a serialized KeyValue when its key is `key`, else None."""
    cdef Py_ssize_t pos = 0, end
    cdef uint64_t tag, length
    found_key = None
    value = None
    while pos < len(key_value):
        tag, pos = _read_varint(key_value, pos)
        if tag & 7 != WIRE_LEN:
            return None
        length, pos = _read_varint(key_value, pos)
        end = pos + <Py_ssize_t>length
        if tag == 0x0a:
            found_key = key_value[pos:end]
        elif tag == 0x12:
            inner = key_value[pos:end]
            value = None
            ipos = 0
            while ipos < len(inner):
                itag, ipos = _read_varint(inner, ipos)
                if itag & 7 != WIRE_LEN:
                    break
                ilength, ipos = _read_varint(inner, ipos)
                if itag == 0x0a:
                    value = inner[ipos:ipos + ilength]
                ipos += ilength
        pos = end
    return value if found_key == key else None


cdef bytes _numbered_resource(bytes resource, Py_ssize_t width):
    """The resource of a numbered copy: `service.instance.id` ends in `width`
    zeros after a dash (or is "telegen-" and the zeros when the resource had
    none), and a `telegen.replica` attribute of `width` zeros follows. The
    patch writes the copy's number over both. The number must be in the
    instance id, not only in an attribute of its own: Prometheus-style
    stores keep `service.instance.id` (as `instance`) and drop other resource
    attributes, so copies told apart only by `telegen.replica` would write
    the same series."""
    if width <= 0:
        return resource
    cdef Py_ssize_t pos = 0, start, end
    cdef uint64_t tag, length
    cdef list out = []
    cdef bint numbered = False
    zeros = b"0" * width
    while pos < len(resource):
        start = pos
        tag, pos = _read_varint(resource, pos)
        if tag & 7 == WIRE_LEN:
            length, pos = _read_varint(resource, pos)
            end = pos + <Py_ssize_t>length
        elif tag & 7 == 0:
            end = _read_varint(resource, pos)[1]
        else:
            end = pos + (8 if tag & 7 == 1 else 4)
        if end > len(resource):
            raise ValueError("a resource field runs past its end")
        if tag == 0x0a and not numbered:
            instance = _string_value(resource[pos:end], INSTANCE_KEY)
            if instance is not None:
                out.append(_string_attribute(INSTANCE_KEY, instance + b"-" + zeros))
                numbered = True
                pos = end
                continue
        out.append(resource[start:end])
        pos = end
    if not numbered:
        out.append(_string_attribute(INSTANCE_KEY, b"telegen-" + zeros))
    out.append(_replica_attribute(width))
    return b"".join(out)


cdef bytes _string_attribute(bytes key, bytes value):
    """A serialized Resource.attributes entry (tag included): KeyValue{key, {string_value: value}}."""
    return _len_bytes(0x0a, _len_bytes(0x0a, key) + _len_bytes(0x12, _len_bytes(0x0a, value)))


cdef tuple _resource_parts(_Wire walk, Py_ssize_t start, Py_ssize_t end):
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


cdef tuple _scope_header(_Wire walk, Py_ssize_t start, Py_ssize_t end):
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
    ScopeX, in first-seen order. `replica_width` > 0 makes every resource a
    numbered copy's (_numbered_resource), for the patch to number."""
    cdef int signal
    cdef Py_ssize_t replica_width
    cdef dict resource_index, scope_index
    cdef list resources
    cdef list owners  # the input buffers the runs point into, kept alive until build
    cdef readonly Py_ssize_t items

    def __init__(self, str signal, Py_ssize_t replica_width=0):
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        self.signal = SIGNALS.index(signal)
        self.replica_width = replica_width
        self.resource_index = {}
        self.scope_index = {}
        self.resources = []
        self.owners = []
        self.items = 0

    cdef _Group scope_group(self, bytes resource, bytes resource_schema, bytes scope, bytes scope_schema):
        rkey = resource + b"\0" + resource_schema
        cdef _Group rgroup = self.resource_index.get(rkey)
        if rgroup is None:
            rgroup = _Group(_numbered_resource(resource, self.replica_width), resource_schema)
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
        cdef _Wire walk = _Wire()
        walk.attach(SIGNALS[self.signal], view)
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

    cdef int add_resource_items(self, _Wire walk, Py_ssize_t start, Py_ssize_t end) except -1:
        """One ResourceX: its scopes' items gathered under their groups."""
        resource, schema, scopes = _resource_parts(walk, start, end)
        for scope_start, scope_end in scopes:
            self.add_scope_items(walk, scope_start, scope_end, resource, schema)
        return 0

    cdef int add_scope_items(self, _Wire walk, Py_ssize_t start, Py_ssize_t end, bytes resource,
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

    cdef int resource_items(self, _Wire walk, Py_ssize_t start, Py_ssize_t end) except -1:
        resource, schema, scopes = _resource_parts(walk, start, end)
        for scope_start, scope_end in scopes:
            self.scope_items(walk, scope_start, scope_end, resource, schema)
        return 0

    cdef int scope_items(self, _Wire walk, Py_ssize_t start, Py_ssize_t end, bytes resource,
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
