# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Patchable gzip: compress a batch once at load time into a gzip stream in
which every byte the send path changes can still be overwritten in place.

compress(data, classes, start, end) runs telegen's own LZ77 over byte
*classes* (a constant byte's class is its value; a byte the patch kernel
writes gets a class >= 256 that names the value it will get, see
byte_classes in telegen/send/compression.py) and writes one dynamic-Huffman
deflate block whose literal/length code gives all 256 byte values the same
9-bit code.
A match copies only equal classes, so it can never copy a stale byte, and
every changed byte that is not inside such a match is a literal: a 9-bit
field at a known bit offset. Those fields are the template's `sites`.

patch(template, raw, crc) copies the compressed template, writes the 9-bit
code of each changed byte's new value (read from `raw`, the uncompressed
patch kernel's output) at its bit offset, and sets the gzip trailer's CRC32;
ISIZE does not change. Nothing shifts, nothing is compressed per send.

The plain-Python twin in telegen/reference/gzip.py makes the same bytes
from the same input, step by step: compress is _lz77, then _code_lengths
(_frequencies, _literal_length_lengths, _huffman_lengths), _canonical_codes,
_write_block_header (_run_lengths) and _write_tokens in both, so they read
side by side; the tests hold the two together.
"""
import zlib

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

cdef enum:
    WINDOW = 32768
    HASH_BITS = 15
    HASH_SIZE = 1 << HASH_BITS
    MIN_MATCH = 3
    MAX_MATCH = 258
    # A 3-byte match further back than this costs more bits than 3 literals.
    TOO_FAR = 4096
    LITERAL_BITS = 9
    MATCH_FLAG = 0x80000000
    CHANGED = 256  # classes from here up are bytes the kernel writes

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
DEFAULT_CHAIN = 32

cdef int LENGTH_BASE[29]
cdef int LENGTH_EXTRA[29]
cdef int DIST_BASE[30]
cdef int DIST_EXTRA[30]
LENGTH_BASE[:] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
                  163, 195, 227, 258]
LENGTH_EXTRA[:] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
DIST_BASE[:] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049,
                3073, 4097, 6145, 8193, 12289, 16385, 24577]
DIST_EXTRA[:] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
# The order in which the code-length code's lengths are sent (RFC 1951 3.2.7).
cdef int CL_ORDER[19]
CL_ORDER[:] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


cdef inline int _length_code(int length) noexcept nogil:
    cdef int i = 28
    while LENGTH_BASE[i] > length:
        i -= 1
    return i


cdef inline int _dist_code(int dist) noexcept nogil:
    cdef int i = 29
    while DIST_BASE[i] > dist:
        i -= 1
    return i


cdef inline uint32_t _hash(const uint32_t* c) noexcept nogil:
    cdef uint32_t h = c[0] * 0x9E3779B1u
    h = (h ^ c[1]) * 0x9E3779B1u
    h = (h ^ c[2]) * 0x9E3779B1u
    return h >> (32 - HASH_BITS)


cdef inline uint32_t _reverse(uint32_t code, int length) noexcept nogil:
    cdef uint32_t out = 0
    cdef int i
    for i in range(length):
        out = (out << 1) | (code & 1)
        code >>= 1
    return out


# -- LZ77 over classes ---------------------------------------------------------

cdef Py_ssize_t _lz77(const uint32_t* cls, Py_ssize_t n, int max_chain, int32_t* head, int32_t* prev,
                      uint32_t* tokens) noexcept nogil:
    """Greedy matching, newest candidate first; a token is a literal (0) or
    MATCH_FLAG | length << 16 | (distance - 1). Returns the token count."""
    cdef Py_ssize_t i = 0, count = 0, cand, p, limit
    cdef int best_len, best_dist, length, max_len, chain
    cdef uint32_t h
    for p in range(HASH_SIZE):
        head[p] = -1
    while i < n:
        best_len = MIN_MATCH - 1
        best_dist = 0
        if i + MIN_MATCH <= n:
            max_len = MAX_MATCH if n - i > MAX_MATCH else <int>(n - i)
            h = _hash(cls + i)
            cand = head[h]
            chain = max_chain
            limit = i - WINDOW
            while cand >= 0 and cand >= limit and chain > 0:
                if cls[cand + best_len] == cls[i + best_len] if best_len < max_len else True:
                    length = 0
                    while length < max_len and cls[cand + length] == cls[i + length]:
                        length += 1
                    if length > best_len:
                        best_len = length
                        best_dist = <int>(i - cand)
                        if length == max_len:
                            break
                cand = prev[cand & (WINDOW - 1)]
                chain -= 1
            if best_len == MIN_MATCH and best_dist > TOO_FAR:
                best_len = MIN_MATCH - 1
        if best_len >= MIN_MATCH:
            tokens[count] = MATCH_FLAG | (<uint32_t>best_len << 16) | <uint32_t>(best_dist - 1)
            for p in range(i, i + best_len):
                if p + MIN_MATCH <= n:
                    h = _hash(cls + p)
                    prev[p & (WINDOW - 1)] = head[h]
                    head[h] = <int32_t>p
            i += best_len
        else:
            tokens[count] = 0
            if i + MIN_MATCH <= n:
                h = _hash(cls + i)
                prev[i & (WINDOW - 1)] = head[h]
                head[h] = <int32_t>i
            i += 1
        count += 1
    return count


# -- Huffman code lengths --------------------------------------------------------

cdef int _tree_lengths(const uint64_t* freqs, int n, int* lengths) noexcept nogil:
    """Huffman code lengths for the symbols with a non-zero frequency (at
    least two); ties go to the lower (frequency, node number), leaves being
    numbered by symbol and inner nodes after them in the order made."""
    cdef uint64_t weight[64]
    cdef int parent[64]
    cdef bint alive[64]
    cdef int nodes = n, i, a, b, k, depth, active = 0
    for i in range(n):
        weight[i] = freqs[i]
        parent[i] = -1
        alive[i] = freqs[i] > 0
        active += alive[i]
        lengths[i] = 0
    while active > 1:
        a = -1
        b = -1
        for k in range(nodes):
            if not alive[k]:
                continue
            if a < 0 or weight[k] < weight[a]:
                b = a
                a = k
            elif b < 0 or weight[k] < weight[b]:
                b = k
        weight[nodes] = weight[a] + weight[b]
        parent[nodes] = -1
        alive[nodes] = True
        alive[a] = False
        alive[b] = False
        parent[a] = nodes
        parent[b] = nodes
        nodes += 1
        active -= 1
    cdef int longest = 0
    for i in range(n):
        if freqs[i] > 0:
            depth = 0
            k = i
            while parent[k] >= 0:
                k = parent[k]
                depth += 1
            lengths[i] = depth
            if depth > longest:
                longest = depth
    return longest


cdef void _huffman_lengths(const uint64_t* freqs, int n, int limit, int* lengths) noexcept nogil:
    """Huffman lengths of at most `limit` bits: frequencies are flattened
    (halved, kept non-zero) until the tree is shallow enough."""
    cdef uint64_t f[32]
    cdef int i
    for i in range(n):
        f[i] = freqs[i]
    while _tree_lengths(f, n, lengths) > limit:
        for i in range(n):
            if f[i]:
                f[i] = (f[i] >> 1) | 1


cdef void _at_least_two(uint64_t* freqs, int n) noexcept nogil:
    """Give the first unused symbols a count until two are in use: a code
    of two or more symbols is complete, which every decoder accepts."""
    cdef int i, used = 0
    for i in range(n):
        used += freqs[i] > 0
    i = 0
    while used < 2:
        if freqs[i] == 0:
            freqs[i] = 1
            used += 1
        i += 1


cdef void _canonical_codes(const int* lengths, int n, uint32_t* codes) noexcept nogil:
    """Canonical codes (RFC 1951 3.2.2), bit-reversed for an LSB-first stream."""
    cdef int bl_count[16]
    cdef uint32_t next_code[16]
    cdef uint32_t code = 0
    cdef int i, bits
    memset(bl_count, 0, sizeof(bl_count))
    for i in range(n):
        bl_count[lengths[i]] += 1
    bl_count[0] = 0
    for bits in range(1, 16):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    for i in range(n):
        if lengths[i]:
            codes[i] = _reverse(next_code[lengths[i]], lengths[i])
            next_code[lengths[i]] += 1
        else:
            codes[i] = 0


# -- the bit writer ----------------------------------------------------------------

cdef struct Bits:
    uint8_t* out
    Py_ssize_t cap
    Py_ssize_t n  # bytes written
    uint64_t acc
    int filled


cdef inline int _put(Bits* w, uint32_t value, int bits) except -1 nogil:
    w.acc |= <uint64_t>value << w.filled
    w.filled += bits
    while w.filled >= 8:
        if w.n == w.cap:
            w.cap *= 2
            w.out = <uint8_t*>realloc(w.out, w.cap)
            if w.out == NULL:
                with gil:
                    raise MemoryError()
        w.out[w.n] = <uint8_t>(w.acc & 0xFF)
        w.n += 1
        w.acc >>= 8
        w.filled -= 8
    return 0


cdef inline Py_ssize_t _bit_position(Bits* w) noexcept nogil:
    return 8 * w.n + w.filled


# -- the compressed template --------------------------------------------------------

cdef class GzipTemplate:
    """One request compressed once: `data` (a whole gzip member), the raw
    byte range [start, end) of the batch buffer it holds, `sites` (int64
    rows [raw offset, bit offset, count]: runs of changed bytes sent as
    consecutive 9-bit literals) and `codes` (uint16, each byte value's
    literal code, bit-reversed as it is written)."""

    def __repr__(self) -> str:
        return (f"<GzipTemplate {self.end - self.start} raw bytes in {PyBytes_GET_SIZE(self.data)}, "
                f"{len(self.sites)} literal runs>")

    @property
    def literals(self) -> int:
        """Changed bytes written per send (the rest come out of matches)."""
        return int(self.sites[:, 2].sum()) if len(self.sites) else 0


def template_from_parts(bytes data, Py_ssize_t start, Py_ssize_t end, sites, codes) -> GzipTemplate:
    """A template from saved parts, checked so that a damaged one cannot write
    outside its buffers."""
    cdef GzipTemplate t = GzipTemplate.__new__(GzipTemplate)
    sites = np.ascontiguousarray(sites, dtype=np.int64).reshape(-1, 3)
    codes = np.ascontiguousarray(codes, dtype=np.uint16)
    if codes.shape != (256,) or (codes >= 512).any():
        raise ValueError("literal codes must be 256 values of 9 bits")
    if len(data) < 18 or data[:3] != GZIP_HEADER[:3] or not 0 <= start <= end:
        raise ValueError("not a gzip template")
    if len(sites):
        if (sites[:, 2] < 1).any() or sites[:, 0].min() < start or (sites[:, 0] + sites[:, 2]).max() > end:
            raise ValueError("literal sites outside the raw range")
        if (sites[1:, 1] < sites[:-1, 1] + LITERAL_BITS * sites[:-1, 2]).any():
            raise ValueError("literal sites out of order or overlapping")
        if sites[:, 1].min() < 8 * len(GZIP_HEADER) or \
                (sites[:, 1] + LITERAL_BITS * sites[:, 2]).max() > 8 * (len(data) - 8):
            raise ValueError("literal sites outside the compressed stream")
    t.data = data
    t.start = start
    t.end = end
    t.sites = sites
    t.codes = codes
    return t


# -- the steps of compress, as in the twin ------------------------------------------

cdef void _frequencies(const uint32_t* tokens, Py_ssize_t n_tokens, uint64_t* ll_freq,
                       uint64_t* d_freq) noexcept nogil:
    """How often end-of-block (0) and each length code (1 + code) occur, and
    each distance code: what is not a literal."""
    cdef Py_ssize_t t
    cdef uint32_t token
    memset(ll_freq, 0, 30 * sizeof(uint64_t))
    memset(d_freq, 0, 30 * sizeof(uint64_t))
    ll_freq[0] = 1
    for t in range(n_tokens):
        token = tokens[t]
        if token & MATCH_FLAG:
            ll_freq[1 + _length_code((token >> 16) & 0x1FF)] += 1
            d_freq[_dist_code((token & 0xFFFF) + 1)] += 1


cdef void _literal_length_lengths(const uint64_t* ll_freq, int* ll_len) noexcept nogil:
    """Literals fill half the code space at 9 bits each; end-of-block and the
    length codes share the other half, one bit longer than their own Huffman
    code (a complete code, as decoders require)."""
    cdef int sub[30]
    cdef int i, used = 0
    for i in range(30):
        used += ll_freq[i] > 0
    for i in range(256):
        ll_len[i] = LITERAL_BITS
    if used == 1:
        ll_len[256] = 1
        for i in range(1, 30):
            ll_len[256 + i] = 0
    else:
        _huffman_lengths(ll_freq, 30, 14, sub)
        for i in range(30):
            ll_len[256 + i] = sub[i] + 1 if sub[i] else 0


cdef void _code_lengths(const uint32_t* tokens, Py_ssize_t n_tokens, int* ll_len, int* d_len) noexcept nogil:
    """The literal/length code's lengths (286) and the distance code's (30)."""
    cdef uint64_t ll_freq[30]  # end-of-block and the 29 length codes
    cdef uint64_t d_freq[30]
    _frequencies(tokens, n_tokens, ll_freq, d_freq)
    _literal_length_lengths(ll_freq, ll_len)
    # Two distance codes at least, so the code is complete even with no
    # match or one distance in use.
    _at_least_two(d_freq, 30)
    _huffman_lengths(d_freq, 30, 15, d_len)


cdef int _run_lengths(const int* lengths, int total, uint8_t* symbols, uint8_t* extras) noexcept nogil:
    """The code lengths run-length coded (RFC 1951 3.2.7): code-length
    symbols and their extra bits; returns how many."""
    cdef int i = 0, n = 0, value, run, r
    while i < total:
        value = lengths[i]
        run = 1
        while i + run < total and lengths[i + run] == value:
            run += 1
        i += run
        if value == 0:
            while run >= 11:
                r = run if run < 138 else 138
                symbols[n] = 18
                extras[n] = r - 11
                n += 1
                run -= r
            if run >= 3:
                symbols[n] = 17
                extras[n] = run - 3
                n += 1
                run = 0
        else:
            symbols[n] = value
            n += 1
            run -= 1
            while run >= 3:
                r = run if run < 6 else 6
                symbols[n] = 16
                extras[n] = r - 3
                n += 1
                run -= r
        while run > 0:
            symbols[n] = value
            n += 1
            run -= 1
    return n


cdef int _write_block_header(Bits* w, const int* ll_len, const int* d_len) except -1 nogil:
    """A final dynamic-Huffman block's header: the code lengths of both
    codes, run-length coded under the code-length code."""
    cdef int all_len[316]
    cdef uint8_t rle_sym[316]
    cdef uint8_t rle_extra[316]
    cdef uint64_t cl_freq[19]
    cdef int cl_len[19]
    cdef uint32_t cl_code[19]
    cdef int hlit = 286, hdist = 30, hclen = 19, n_rle, i
    while ll_len[hlit - 1] == 0:
        hlit -= 1
    while d_len[hdist - 1] == 0:
        hdist -= 1
    for i in range(hlit):
        all_len[i] = ll_len[i]
    for i in range(hdist):
        all_len[hlit + i] = d_len[i]
    n_rle = _run_lengths(all_len, hlit + hdist, rle_sym, rle_extra)
    memset(cl_freq, 0, sizeof(cl_freq))
    for i in range(n_rle):
        cl_freq[rle_sym[i]] += 1
    _at_least_two(cl_freq, 19)
    _huffman_lengths(cl_freq, 19, 7, cl_len)
    _canonical_codes(cl_len, 19, cl_code)
    while hclen > 4 and cl_len[CL_ORDER[hclen - 1]] == 0:
        hclen -= 1
    _put(w, 1, 1)  # BFINAL
    _put(w, 2, 2)  # dynamic Huffman
    _put(w, hlit - 257, 5)
    _put(w, hdist - 1, 5)
    _put(w, hclen - 4, 4)
    for i in range(hclen):
        _put(w, cl_len[CL_ORDER[i]], 3)
    for i in range(n_rle):
        _put(w, cl_code[rle_sym[i]], cl_len[rle_sym[i]])
        if rle_sym[i] == 16:
            _put(w, rle_extra[i], 2)
        elif rle_sym[i] == 17:
            _put(w, rle_extra[i], 3)
        elif rle_sym[i] == 18:
            _put(w, rle_extra[i], 7)
    return 0


cdef Py_ssize_t _write_tokens(Bits* w, const uint32_t* tokens, Py_ssize_t n_tokens, const uint32_t* cls,
                              const uint8_t* buf, Py_ssize_t start, const int* ll_len, const uint32_t* ll_code,
                              const int* d_len, const uint32_t* d_code, int64_t* sites) except -1 nogil:
    """The block's data: each match as its length and distance codes, each
    literal as its 9-bit code. Every literal of a changed byte is a site:
    rows [raw offset, bit offset, count], consecutive ones in one row.
    Returns the number of rows."""
    cdef Py_ssize_t t, pos = 0, bit, n_sites = 0
    cdef uint32_t token
    cdef int length, dist, lc, dc
    for t in range(n_tokens):
        token = tokens[t]
        if token & MATCH_FLAG:
            length = (token >> 16) & 0x1FF
            dist = (token & 0xFFFF) + 1
            lc = _length_code(length)
            _put(w, ll_code[257 + lc], ll_len[257 + lc])
            if LENGTH_EXTRA[lc]:
                _put(w, length - LENGTH_BASE[lc], LENGTH_EXTRA[lc])
            dc = _dist_code(dist)
            _put(w, d_code[dc], d_len[dc])
            if DIST_EXTRA[dc]:
                _put(w, dist - DIST_BASE[dc], DIST_EXTRA[dc])
            pos += length
            continue
        if cls[pos] >= CHANGED:
            bit = _bit_position(w)
            if n_sites and sites[3 * n_sites - 3] + sites[3 * n_sites - 1] == start + pos \
                    and sites[3 * n_sites - 2] + LITERAL_BITS * sites[3 * n_sites - 1] == bit:
                sites[3 * n_sites - 1] += 1
            else:
                sites[3 * n_sites] = start + pos
                sites[3 * n_sites + 1] = bit
                sites[3 * n_sites + 2] = 1
                n_sites += 1
        _put(w, ll_code[buf[pos]], LITERAL_BITS)
        pos += 1
    return n_sites


def compress(data, classes, Py_ssize_t start=0, Py_ssize_t end=-1, int max_chain=DEFAULT_CHAIN) -> GzipTemplate:
    """The patchable gzip member of data[start:end]. `classes` (uint32, one
    per byte of `data`): byte values for constant bytes, >= 256 for bytes
    the patch kernel writes, equal only where they always get equal values."""
    cdef const uint8_t[::1] raw = data
    cdef const uint32_t[::1] cls_view = classes
    if end < 0:
        end = raw.shape[0]
    if cls_view.shape[0] != raw.shape[0]:
        raise ValueError(f"{cls_view.shape[0]} classes for {raw.shape[0]} bytes")
    if not 0 <= start <= end <= raw.shape[0]:
        raise ValueError(f"range [{start}, {end}) outside the {raw.shape[0]}-byte buffer")
    if max_chain < 1:
        raise ValueError("max_chain must be at least 1")
    cdef Py_ssize_t n = end - start
    cdef const uint32_t* cls = &cls_view[0] + start if n else NULL
    cdef const uint8_t* buf = &raw[0] + start if n else NULL
    cdef uint32_t* tokens = <uint32_t*>malloc((n + 1) * sizeof(uint32_t))
    cdef int32_t* head = <int32_t*>malloc(HASH_SIZE * sizeof(int32_t))
    cdef int32_t* prev = <int32_t*>malloc(WINDOW * sizeof(int32_t))
    cdef Bits w
    w.cap = n // 4 + 1024
    w.out = <uint8_t*>malloc(w.cap)
    w.n = 0
    w.acc = 0
    w.filled = 0
    cdef int64_t* site_rows = <int64_t*>malloc(3 * (n + 1) * sizeof(int64_t))
    cdef bytes header_bytes = GZIP_HEADER
    if tokens == NULL or head == NULL or prev == NULL or w.out == NULL or site_rows == NULL:
        free(tokens); free(head); free(prev); free(w.out); free(site_rows)
        raise MemoryError()
    cdef Py_ssize_t n_tokens, n_sites = 0
    cdef int ll_len[286]
    cdef int d_len[30]
    cdef uint32_t ll_code[286]
    cdef uint32_t d_code[30]
    cdef int i
    memcpy(w.out, <const char*>header_bytes, 10)
    w.n = 10
    codes = np.zeros(256, dtype=np.uint16)
    cdef int64_t[:, ::1] sites_view
    cdef uint16_t[::1] codes_view = codes
    try:
        with nogil:
            n_tokens = _lz77(cls, n, max_chain, head, prev, tokens)
            _code_lengths(tokens, n_tokens, ll_len, d_len)
            _canonical_codes(ll_len, 286, ll_code)
            _canonical_codes(d_len, 30, d_code)
            _write_block_header(&w, ll_len, d_len)
            n_sites = _write_tokens(&w, tokens, n_tokens, cls, buf, start, ll_len, ll_code, d_len, d_code, site_rows)
            _put(&w, ll_code[256], ll_len[256])  # end of block
            if w.filled:
                _put(&w, 0, 8 - w.filled)
            for i in range(256):
                codes_view[i] = <uint16_t>ll_code[i]
        body = PyBytes_FromStringAndSize(<char*>w.out, w.n)
        sites = np.empty((n_sites, 3), dtype=np.int64)
        if n_sites:
            sites_view = sites
            memcpy(&sites_view[0, 0], site_rows, 3 * n_sites * sizeof(int64_t))
    finally:
        free(tokens); free(head); free(prev); free(w.out); free(site_rows)
    crc = zlib.crc32(memoryview(raw)[start:end]) if n else 0
    trailer = (crc & 0xFFFFFFFF).to_bytes(4, "little") + (n & 0xFFFFFFFF).to_bytes(4, "little")
    return template_from_parts(body + trailer, start, end, sites, codes)


# -- per send ------------------------------------------------------------------------

cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline void _store64(uint8_t* p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)


def patch(GzipTemplate template, raw, uint32_t crc, bytes head=b"") -> bytes:
    """The template with the changed bytes of `raw` (the patched batch
    buffer; the template's range of it) written in, and `crc` (the CRC32 of
    raw[start:end]) in its trailer; after `head` (a gRPC message prefix), in
    one allocation."""
    cdef const uint8_t[::1] source = raw
    if source.shape[0] < template.end:
        raise ValueError(f"raw buffer is {source.shape[0]} bytes; the template reads up to {template.end}")
    cdef bytes data = template.data
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t head_size = len(head)
    out = PyBytes_FromStringAndSize(NULL, head_size + size)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    if head_size:
        memcpy(dst, PyBytes_AS_STRING(head), head_size)
        dst += head_size
    cdef const int64_t[:, ::1] sites = template.sites
    cdef const uint16_t[::1] codes = template.codes
    cdef const uint8_t* src = &source[0] if source.shape[0] else NULL
    cdef Py_ssize_t i, k, off, bit, count, at
    cdef uint64_t acc, mask
    cdef int filled
    cdef const uint8_t* template_bytes = <const uint8_t*>PyBytes_AS_STRING(data)
    with nogil:
        memcpy(dst, template_bytes, size)
        for i in range(sites.shape[0]):
            off = sites[i, 0]
            bit = sites[i, 1]
            count = sites[i, 2]
            # Gather the run's codes in a register and store 6 bytes at a
            # time; the bits above the run are the template's (a later run
            # rewrites its own), the bits below it in its first byte are
            # what is already there (an earlier run may end in that byte).
            at = bit >> 3
            filled = bit & 7
            acc = dst[at] & ((1u << filled) - 1)
            for k in range(count):
                acc |= <uint64_t>codes[src[off + k]] << filled
                filled += LITERAL_BITS
                if filled >= 48:
                    mask = (<uint64_t>1 << filled) - 1
                    _store64(dst + at, (acc & mask) | (_load64(template_bytes + at) & ~mask))
                    acc >>= 48
                    filled -= 48
                    at += 6
            mask = (<uint64_t>1 << filled) - 1
            _store64(dst + at, (acc & mask) | (_load64(template_bytes + at) & ~mask))
        dst[size - 8] = crc & 0xFF
        dst[size - 7] = (crc >> 8) & 0xFF
        dst[size - 6] = (crc >> 16) & 0xFF
        dst[size - 5] = (crc >> 24) & 0xFF
    return out
