"""Plain-Python twin of telegen/_gzip.pyx, for tests and for reading.

The same LZ77 over byte classes (hash, chain order, greedy choice), the same
Huffman construction (tie-breaks included) and the same bit layout, so both
make the same bytes from the same input; and the per-send patch written
literal by literal. compress takes the same steps under the same names as
the compiled one (_lz77, _code_lengths, _canonical_codes, _write_block_header,
_write_tokens), so the two read side by side. Slow (pure Python): meant for
small buffers.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

WINDOW = 32768
HASH_BITS = 15
MIN_MATCH = 3
MAX_MATCH = 258
TOO_FAR = 4096
LITERAL_BITS = 9
CHANGED = 256
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
DEFAULT_CHAIN = 32
LENGTH_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163,
               195, 227, 258)
LENGTH_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)
DIST_BASE = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
             4097, 6145, 8193, 12289, 16385, 24577)
DIST_EXTRA = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13)
CL_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
_M32 = 0xFFFFFFFF


def _code_index(bases: Sequence[int], value: int) -> int:
    i = len(bases) - 1
    while bases[i] > value:
        i -= 1
    return i


def _hash(c0: int, c1: int, c2: int) -> int:
    h = (c0 * 0x9E3779B1) & _M32
    h = ((h ^ c1) * 0x9E3779B1) & _M32
    h = ((h ^ c2) * 0x9E3779B1) & _M32
    return h >> (32 - HASH_BITS)


def _lz77(cls: Sequence[int], max_chain: int = DEFAULT_CHAIN,
         may_copy=lambda a, b: a == b) -> list[tuple[int, int]]:
    """Tokens: (0, 0) a literal, (length, distance) a match. `may_copy`
    compares two classes; the tests swap in one that breaks the match rule."""
    n = len(cls)
    head: dict[int, int] = {}
    prev = [0] * WINDOW
    tokens: list[tuple[int, int]] = []

    def insert(p: int) -> None:
        h = _hash(cls[p], cls[p + 1], cls[p + 2])
        prev[p & (WINDOW - 1)] = head.get(h, -1)
        head[h] = p

    i = 0
    while i < n:
        best_len, best_dist = MIN_MATCH - 1, 0
        if i + MIN_MATCH <= n:
            max_len = min(MAX_MATCH, n - i)
            cand = head.get(_hash(cls[i], cls[i + 1], cls[i + 2]), -1)
            chain = max_chain
            while cand >= 0 and cand >= i - WINDOW and chain > 0:
                if best_len >= max_len or may_copy(cls[cand + best_len], cls[i + best_len]):
                    length = 0
                    while length < max_len and may_copy(cls[cand + length], cls[i + length]):
                        length += 1
                    if length > best_len:
                        best_len, best_dist = length, i - cand
                        if length == max_len:
                            break
                cand = prev[cand & (WINDOW - 1)]
                chain -= 1
            if best_len == MIN_MATCH and best_dist > TOO_FAR:
                best_len = MIN_MATCH - 1
        if best_len >= MIN_MATCH:
            tokens.append((best_len, best_dist))
            for p in range(i, i + best_len):
                if p + MIN_MATCH <= n:
                    insert(p)
            i += best_len
        else:
            tokens.append((0, 0))
            if i + MIN_MATCH <= n:
                insert(i)
            i += 1
    return tokens


def _tree_lengths(freqs: Sequence[int]) -> list[int]:
    n = len(freqs)
    weight = list(freqs)
    parent = [-1] * n
    alive = [f > 0 for f in freqs]
    while sum(alive) > 1:
        a = b = -1
        for k in range(len(weight)):
            if not alive[k]:
                continue
            if a < 0 or weight[k] < weight[a]:
                a, b = k, a
            elif b < 0 or weight[k] < weight[b]:
                b = k
        weight.append(weight[a] + weight[b])
        parent.append(-1)
        alive.append(True)
        alive[a] = alive[b] = False
        parent[a] = parent[b] = len(weight) - 1
    lengths = [0] * n
    for i in range(n):
        if freqs[i] > 0:
            k, depth = i, 0
            while parent[k] >= 0:
                k, depth = parent[k], depth + 1
            lengths[i] = depth
    return lengths


def _huffman_lengths(freqs: Sequence[int], limit: int) -> list[int]:
    """Huffman code lengths of at most `limit` bits (frequencies flattened until they fit)."""
    f = list(freqs)
    while True:
        lengths = _tree_lengths(f)
        if max(lengths) <= limit:
            return lengths
        f = [(x >> 1) | 1 if x else 0 for x in f]


def _canonical_codes(lengths: Sequence[int]) -> list[int]:
    """Canonical codes (RFC 1951 3.2.2), bit-reversed for an LSB-first stream."""
    bl_count = [0] * 16
    for length in lengths:
        bl_count[length] += 1
    bl_count[0] = 0
    next_code = [0] * 16
    code = 0
    for bits in range(1, 16):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    codes = []
    for length in lengths:
        if length:
            codes.append(int(format(next_code[length], f"0{length}b")[::-1], 2))
            next_code[length] += 1
        else:
            codes.append(0)
    return codes


def _at_least_two(freqs: list[int]) -> list[int]:
    k = 0
    while sum(1 for f in freqs if f) < 2:
        if not freqs[k]:
            freqs[k] = 1
        k += 1
    return freqs


def _run_lengths(lengths: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i, total = 0, len(lengths)
    while i < total:
        value, run = lengths[i], 1
        while i + run < total and lengths[i + run] == value:
            run += 1
        i += run
        if value == 0:
            while run >= 11:
                r = min(run, 138)
                out.append((18, r - 11))
                run -= r
            if run >= 3:
                out.append((17, run - 3))
                run = 0
        else:
            out.append((value, 0))
            run -= 1
            while run >= 3:
                r = min(run, 6)
                out.append((16, r - 3))
                run -= r
        out.extend((value, 0) for _ in range(run))
    return out


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray(GZIP_HEADER)
        self.acc = 0
        self.filled = 0

    def put(self, value: int, bits: int) -> None:
        self.acc |= value << self.filled
        self.filled += bits
        while self.filled >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.filled -= 8

    @property
    def position(self) -> int:
        return 8 * len(self.out) + self.filled


def _frequencies(tokens: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """How often end-of-block (0) and each length code (1 + code) occur, and
    each distance code: what is not a literal."""
    ll_freq, d_freq = [0] * 30, [0] * 30
    ll_freq[0] = 1
    for length, dist in tokens:
        if length:
            ll_freq[1 + _code_index(LENGTH_BASE, length)] += 1
            d_freq[_code_index(DIST_BASE, dist)] += 1
    return ll_freq, d_freq


def _literal_length_lengths(ll_freq: list[int]) -> list[int]:
    """Every literal 9 bits; end-of-block and the length codes one bit longer
    than their own Huffman code."""
    ll_len = [LITERAL_BITS] * 256
    if sum(1 for f in ll_freq if f) == 1:
        return ll_len + [1] + [0] * 29
    return ll_len + [x + 1 if x else 0 for x in _huffman_lengths(ll_freq, 14)]


def _code_lengths(tokens: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """The literal/length code's lengths (286) and the distance code's (30)."""
    ll_freq, d_freq = _frequencies(tokens)
    return _literal_length_lengths(ll_freq), _huffman_lengths(_at_least_two(d_freq), 15)


def _write_block_header(w: _Bits, ll_len: list[int], d_len: list[int]) -> None:
    """A final dynamic-Huffman block's header: the code lengths of both
    codes, run-length coded under the code-length code."""
    hlit = max(i for i, x in enumerate(ll_len) if x) + 1
    hdist = max(i for i, x in enumerate(d_len) if x) + 1
    rle = _run_lengths(ll_len[:hlit] + d_len[:hdist])
    cl_freq = [0] * 19
    for symbol, _ in rle:
        cl_freq[symbol] += 1
    cl_len = _huffman_lengths(_at_least_two(cl_freq), 7)
    cl_code = _canonical_codes(cl_len)
    hclen = 19
    while hclen > 4 and cl_len[CL_ORDER[hclen - 1]] == 0:
        hclen -= 1
    w.put(1, 1)  # BFINAL
    w.put(2, 2)  # dynamic Huffman
    w.put(hlit - 257, 5)
    w.put(hdist - 1, 5)
    w.put(hclen - 4, 4)
    for i in range(hclen):
        w.put(cl_len[CL_ORDER[i]], 3)
    for symbol, extra in rle:
        w.put(cl_code[symbol], cl_len[symbol])
        if symbol >= 16:
            w.put(extra, {16: 2, 17: 3, 18: 7}[symbol])


def _write_tokens(w: _Bits, tokens: list[tuple[int, int]], cls: list[int], raw: bytes, start: int,
                  ll_len: list[int], ll_code: list[int], d_len: list[int], d_code: list[int]) -> list[list[int]]:
    """The block's data; the sites of the changed bytes' literals, rows
    [raw offset, bit offset, count]."""
    sites: list[list[int]] = []
    pos = 0
    for length, dist in tokens:
        if length:
            lc = _code_index(LENGTH_BASE, length)
            w.put(ll_code[257 + lc], ll_len[257 + lc])
            if LENGTH_EXTRA[lc]:
                w.put(length - LENGTH_BASE[lc], LENGTH_EXTRA[lc])
            dc = _code_index(DIST_BASE, dist)
            w.put(d_code[dc], d_len[dc])
            if DIST_EXTRA[dc]:
                w.put(dist - DIST_BASE[dc], DIST_EXTRA[dc])
            pos += length
            continue
        if cls[pos] >= CHANGED:
            bit = w.position
            run = sites[-1] if sites else None
            if run and run[0] + run[2] == start + pos and run[1] + LITERAL_BITS * run[2] == bit:
                run[2] += 1
            else:
                sites.append([start + pos, bit, 1])
        w.put(ll_code[raw[pos]], LITERAL_BITS)
        pos += 1
    return sites


def compress(data: bytes, classes: Sequence[int], start: int = 0, end: int = -1, max_chain: int = DEFAULT_CHAIN,
             may_copy=lambda a, b: a == b) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(gzip member, sites, codes) as telegen._gzip.compress makes them."""
    end = len(data) if end < 0 else end
    raw = data[start:end]
    cls = [int(c) for c in classes[start:end]]
    tokens = _lz77(cls, max_chain, may_copy)
    ll_len, d_len = _code_lengths(tokens)
    ll_code, d_code = _canonical_codes(ll_len), _canonical_codes(d_len)
    w = _Bits()
    _write_block_header(w, ll_len, d_len)
    sites = _write_tokens(w, tokens, cls, raw, start, ll_len, ll_code, d_len, d_code)
    w.put(ll_code[256], ll_len[256])  # end of block
    if w.filled:
        w.put(0, 8 - w.filled)
    trailer = zlib.crc32(raw).to_bytes(4, "little") + (len(raw) & 0xFFFFFFFF).to_bytes(4, "little")
    return (bytes(w.out) + trailer, np.array(sites, dtype=np.int64).reshape(-1, 3),
            np.array(ll_code[:256], dtype=np.uint16))


def patch(data: bytes, sites: np.ndarray, codes: np.ndarray, raw: bytes, start: int, end: int,
          head: bytes = b"") -> bytes:
    """The template with raw's changed bytes written in, one literal at a
    time, and the CRC32 of raw[start:end] in its trailer; after `head`."""
    out = bytearray(data)
    for offset, bit, count in sites.tolist():
        for k in range(count):
            code = int(codes[raw[offset + k]])
            for b in range(LITERAL_BITS):
                at, shift = divmod(bit + b, 8)
                out[at] = (out[at] & ~(1 << shift)) | (((code >> b) & 1) << shift)
            bit += LITERAL_BITS
    out[-8:-4] = zlib.crc32(raw[start:end]).to_bytes(4, "little")
    return head + bytes(out)
