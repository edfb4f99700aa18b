"""Plain-Python twin of telegen/_zstd.pyx, for tests and for reading.

The same predefined FSE tables (built by the format's rule), the same
greedy matching over byte classes (hash, chain order, repeat offsets and
the choice between them), and the same frame layout, so both make the same
bytes from the same input; and the per-send patch, run by run. compress
takes the same steps under the same names as the compiled one (_build_table,
_parse_block, _write_literals, _write_sequences), so the two read side by
side. Slow (pure Python): meant for small buffers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_MAX = 1 << 17
HASH_BITS = 16
MIN_MATCH = 4
MAX_MATCH = 131074
CHANGED = 256
SEQUENCE_BITS = 16
MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_CHAIN = 16
DEFAULT_WINDOW_LOG = 20
LL_MAX_LOG, ML_MAX_LOG, OF_MAX_LOG = 9, 9, 8
LL_NORM = (4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
           -1, -1, -1, -1)
ML_NORM = (1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
           1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1)
OF_NORM = (1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1)
LL_BASE = (*range(16), 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
           65536)
LL_EXTRA = (0,) * 16 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
ML_BASE = (*range(3, 35), 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387,
           32771, 65539)
ML_EXTRA = (0,) * 32 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
_M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class FseTable:
    log: int
    symbol: tuple[int, ...]
    bits: tuple[int, ...]
    baseline: tuple[int, ...]
    first: dict[int, int]  # symbol -> the lowest state decoding it
    encode: dict[tuple[int, int], int]  # (symbol, next state) -> the state that decodes it and leads there


def _build_table(norm: tuple[int, ...], log: int) -> FseTable:
    """The decoding table of a normalized distribution (RFC 8878, 4.1.1), and the encoder's tables from it."""
    size = 1 << log
    symbol = [0] * size
    high = size - 1
    next_state = {}
    for s, p in enumerate(norm):
        if p == -1:
            symbol[high] = s
            high -= 1
            next_state[s] = 1
        else:
            next_state[s] = p
    position, step = 0, (size >> 1) + (size >> 3) + 3
    for s, p in enumerate(norm):
        for _ in range(max(p, 0)):
            symbol[position] = s
            position = (position + step) & (size - 1)
            while position > high:
                position = (position + step) & (size - 1)
    bits, baseline = [0] * size, [0] * size
    for u in range(size):
        state = next_state[symbol[u]]
        next_state[symbol[u]] += 1
        bits[u] = log - (state.bit_length() - 1)
        baseline[u] = (state << bits[u]) - size
    first: dict[int, int] = {}
    encode: dict[tuple[int, int], int] = {}
    for u in range(size):
        first.setdefault(symbol[u], u)
        for t in range(baseline[u], baseline[u] + (1 << bits[u])):
            encode[symbol[u], t] = u
    return FseTable(log, tuple(symbol), tuple(bits), tuple(baseline), first, encode)


LL_TABLE = _build_table(LL_NORM, 6)
ML_TABLE = _build_table(ML_NORM, 6)
OF_TABLE = _build_table(OF_NORM, 5)


def _code(bases: tuple[int, ...], value: int) -> int:
    c = len(bases) - 1
    while bases[c] > value:
        c -= 1
    return c


# -- matches -------------------------------------------------------------------------

def _hash(cls: np.ndarray, p: int) -> int:
    h = (int(cls[p]) * 0x9E3779B1) & _M32
    for k in (1, 2, 3):
        h = ((h ^ int(cls[p + k])) * 0x9E3779B1) & _M32
    return h >> (32 - HASH_BITS)


def _repeat_distance(reps: list[int], code: int, literals: int) -> int:
    if literals > 0:
        return reps[code - 1]
    return reps[code] if code < 3 else reps[0] - 1


def _offset_value(reps: list[int], distance: int, literals: int) -> int:
    for code in (1, 2, 3):
        if _repeat_distance(reps, code, literals) == distance:
            return code
    return distance + 3


def _update_repeats(reps: list[int], offset: int, literals: int) -> None:
    if offset > 3:
        reps[:] = [offset - 3, reps[0], reps[1]]
        return
    index = offset - 1 + (literals == 0)
    if index == 1:
        reps[:] = [reps[1], reps[0], reps[2]]
    elif index == 2:
        reps[:] = [reps[2], reps[0], reps[1]]
    elif index == 3:
        reps[:] = [reps[0] - 1, reps[0], reps[1]]


def _score(length: int, offset: int) -> int:
    return 8 * length - SEQUENCE_BITS - (offset.bit_length() - 1)


def _match_length(cls: np.ndarray, at: int, source: int, max_len: int) -> int:
    length = 0
    while length < max_len and cls[source + length] == cls[at + length]:
        length += 1
    return length


class _Chains:
    """Hash chains over positions, newest first, as the compiled head/prev arrays."""

    def __init__(self, cls: np.ndarray, n: int, window: int) -> None:
        self.cls, self.n, self.window = cls, n, window
        self.head: dict[int, int] = {}
        self.prev: dict[int, int] = {}

    def insert(self, p: int) -> None:
        if p + MIN_MATCH <= self.n:
            h = _hash(self.cls, p)
            self.prev[p & (self.window - 1)] = self.head.get(h, -1)
            self.head[h] = p


def _parse_block(cls: np.ndarray, n: int, begin: int, end: int, max_chain: int, chains: _Chains,
                 reps: list[int]) -> list[tuple[int, int, int]]:
    """Sequences (literals, match length, offset value) for [begin, end)."""
    window = chains.window
    seqs = []
    i = literal_start = begin
    while i < end:
        best_len = best_score = best_offset = 0
        max_len = min(end - i, MAX_MATCH)
        if max_len >= MIN_MATCH:
            for code in (1, 2, 3):
                distance = _repeat_distance(reps, code, i - literal_start)
                if distance < 1 or distance > i:
                    continue
                length = _match_length(cls, i, i - distance, max_len)
                if length >= MIN_MATCH and _score(length, code) > best_score:
                    best_score, best_len, best_offset = _score(length, code), length, code
            chain_len, chain_distance = MIN_MATCH - 1, 0
            if i + MIN_MATCH <= n:
                cand, chain = chains.head.get(_hash(cls, i), -1), max_chain
                while cand >= 0 and cand > i - window and chain > 0:
                    if chain_len >= max_len or cls[cand + chain_len] == cls[i + chain_len]:
                        length = _match_length(cls, i, cand, max_len)
                        if length > chain_len:
                            chain_len, chain_distance = length, i - cand
                            if length == max_len:
                                break
                    cand = chains.prev[cand & (window - 1)]
                    chain -= 1
            if chain_distance:
                offset = _offset_value(reps, chain_distance, i - literal_start)
                if _score(chain_len, offset) > best_score:
                    best_score, best_len, best_offset = _score(chain_len, offset), chain_len, offset
        if best_score > 0:
            seqs.append((i - literal_start, best_len, best_offset))
            _update_repeats(reps, best_offset, i - literal_start)
            for p in range(i, i + best_len):
                chains.insert(p)
            i += best_len
            literal_start = i
        else:
            chains.insert(i)
            i += 1
    return seqs


# -- writing a block -----------------------------------------------------------------

def _verbatim(cls: np.ndarray, begin: int, end: int, raw_base: int, at: int, runs: list[list[int]]) -> None:
    """The runs of changed bytes in cls[begin:end], stored from frame offset `at` on."""
    p = begin
    while p < end:
        if cls[p] < CHANGED:
            p += 1
            continue
        q = p
        while q < end and cls[q] >= CHANGED:
            q += 1
        raw, where = raw_base + p, at + (p - begin)
        if runs and runs[-1][0] + runs[-1][2] == raw and runs[-1][1] + runs[-1][2] == where:
            runs[-1][2] += q - p
        else:
            runs.append([raw, where, q - p])
        p = q


def _write_literals(buf: bytes, cls: np.ndarray, begin: int, end: int, seqs: list[tuple[int, int, int]],
                    raw_base: int, runs: list[list[int]]) -> bytes:
    """The raw literals section; runs at frame offsets relative to its start."""
    size = end - begin - sum(length for _, length, _ in seqs)
    if size < 32:
        out = bytearray([size << 3])
    elif size < 4096:
        out = bytearray([0x4 | ((size & 0xF) << 4), size >> 4])
    else:
        out = bytearray([0xC | ((size & 0xF) << 4), (size >> 4) & 0xFF, size >> 12])
    p = begin
    for k in range(len(seqs) + 1):
        count = seqs[k][0] if k < len(seqs) else end - p
        _verbatim(cls, p, p + count, raw_base, len(out), runs)
        out += buf[p:p + count]
        p += count + (seqs[k][1] if k < len(seqs) else 0)
    return bytes(out)


class _Bits:
    """A forward little-endian bit writer."""

    def __init__(self) -> None:
        self.value = 0
        self.count = 0

    def put(self, value: int, count: int) -> None:
        self.value |= value << self.count
        self.count += count

    def encode_symbol(self, table: FseTable, state: int, symbol: int) -> int:
        previous = table.encode[symbol, state]
        self.put(state - table.baseline[previous], table.bits[previous])
        return previous

    def close(self) -> bytes:
        self.put(1, 1)
        return self.value.to_bytes((self.count + 7) // 8, "little")


def _log2_fixed(v: int) -> int:
    """log2(v) in 1/256 bits, the mantissa linear (as the compiled one)."""
    h = v.bit_length() - 1
    return (h << 8) + (((v << 8) >> h) - 256)


def _cost(counts: list[int], norm: tuple[int, ...] | list[int], log: int) -> int:
    return sum(c * ((log << 8) - _log2_fixed(max(norm[s], 1))) for s, c in enumerate(counts) if c)


def _normalize(counts: list[int], total: int, max_log: int) -> tuple[list[int], int]:
    log = min(max(total.bit_length(), 5), max_log)
    size = 1 << log
    norm = [max(1, c * size // total) if c else 0 for c in counts]
    largest = max(range(len(counts)), key=lambda s: (counts[s], -s))
    left = size - sum(norm)
    if left >= 0:
        norm[largest] += left
        return norm, log
    while left < 0:
        largest = max(range(len(norm)), key=lambda s: (norm[s], -s))
        cut = min(norm[largest] - 1, -left)
        norm[largest] -= cut
        left += cut
    return norm, log


def _write_table(norm: list[int], log: int) -> bytes:
    """The FSE table description (RFC 8878, 4.1.1)."""
    w = _Bits()
    last = max(s for s, p in enumerate(norm) if p)
    remaining, threshold, nb = (1 << log) + 1, 1 << log, log + 1
    w.put(log - 5, 4)
    s, previous0 = 0, False
    while s <= last and remaining > 1:
        if previous0:
            start = s
            while norm[s] == 0:
                s += 1
            while s >= start + 24:
                start += 24
                w.put(0xFFFF, 16)
            while s >= start + 3:
                start += 3
                w.put(3, 2)
            w.put(s - start, 2)
        most = (2 * threshold - 1) - remaining
        remaining -= abs(norm[s])
        value = norm[s] + 1
        if value >= threshold:
            value += most
        w.put(value, nb - (value < most))
        previous0 = value == 1
        s += 1
        while remaining < threshold:
            nb -= 1
            threshold >>= 1
    return w.value.to_bytes((w.count + 7) // 8, "little")


def _choose_table(counts: list[int], max_log: int, predefined: FseTable,
                  predefined_norm: tuple[int, ...]) -> tuple[FseTable, bytes, int]:
    """(table, its description, mode): the block's own where cheaper, table included."""
    if sum(1 for c in counts if c) < 2:
        return predefined, b"", 0
    norm, log = _normalize(counts, sum(counts), max_log)
    description = _write_table(norm, log)
    if _cost(counts, norm, log) + (len(description) << 11) >= _cost(counts, predefined_norm, predefined.log):
        return predefined, b"", 0
    return _build_table(tuple(norm), log), description, 2


def _write_sequences(seqs: list[tuple[int, int, int]]) -> bytes:
    """The sequences section: count, each code's table, the FSE bitstream."""
    count = len(seqs)
    if count < 128:
        out = bytearray([count])
    elif count < 0x7F00:
        out = bytearray([(count >> 8) + 128, count & 0xFF])
    else:
        out = bytearray([255, (count - 0x7F00) & 0xFF, (count - 0x7F00) >> 8])
    if not count:
        return bytes(out)

    def codes(k: int) -> tuple[int, int, int]:
        literals, length, offset = seqs[k]
        return _code(LL_BASE, literals), _code(ML_BASE, length), offset.bit_length() - 1

    ll_counts, ml_counts, of_counts = [0] * len(LL_NORM), [0] * len(ML_NORM), [0] * len(OF_NORM)
    for k in range(count):
        ll, ml, of = codes(k)
        ll_counts[ll] += 1
        ml_counts[ml] += 1
        of_counts[of] += 1
    ll_table, ll_text, ll_mode = _choose_table(ll_counts, LL_MAX_LOG, LL_TABLE, LL_NORM)
    of_table, of_text, of_mode = _choose_table(of_counts, OF_MAX_LOG, OF_TABLE, OF_NORM)
    ml_table, ml_text, ml_mode = _choose_table(ml_counts, ML_MAX_LOG, ML_TABLE, ML_NORM)
    out += bytes([ll_mode << 6 | of_mode << 4 | ml_mode << 2]) + ll_text + of_text + ml_text
    w = _Bits()

    def extras(k: int) -> None:
        literals, length, offset = seqs[k]
        ll, ml, of = codes(k)
        w.put(literals - LL_BASE[ll], LL_EXTRA[ll])
        w.put(length - ML_BASE[ml], ML_EXTRA[ml])
        w.put(offset - (1 << of), of)

    ll, ml, of = codes(count - 1)
    ll_state, ml_state, of_state = ll_table.first[ll], ml_table.first[ml], of_table.first[of]
    extras(count - 1)
    for k in range(count - 2, -1, -1):
        ll, ml, of = codes(k)
        of_state = w.encode_symbol(of_table, of_state, of)
        ml_state = w.encode_symbol(ml_table, ml_state, ml)
        ll_state = w.encode_symbol(ll_table, ll_state, ll)
        extras(k)
    w.put(ml_state, ml_table.log)
    w.put(of_state, of_table.log)
    w.put(ll_state, ll_table.log)
    return bytes(out) + w.close()


def _block_header(last: bool, kind: int, size: int) -> bytes:
    return (int(last) | kind << 1 | size << 3).to_bytes(3, "little")


def _frame_header(size: int) -> bytes:
    if size < 256:
        flag, width, value = 0, 1, size
    elif size < 65536 + 256:
        flag, width, value = 1, 2, size - 256
    elif size <= _M32:
        flag, width, value = 2, 4, size
    else:
        flag, width, value = 3, 8, size
    return MAGIC + bytes([flag << 6 | 0x20]) + value.to_bytes(width, "little")


def compress(data: bytes, classes: np.ndarray, start: int = 0, end: int = -1, max_chain: int = DEFAULT_CHAIN,
             window_log: int = DEFAULT_WINDOW_LOG) -> tuple[bytes, np.ndarray]:
    """(the patchable zstd frame of data[start:end], its runs [raw offset, frame offset, length])."""
    end = len(data) if end < 0 else end
    buf, cls = bytes(data[start:end]), np.asarray(classes, dtype=np.uint32)[start:end]
    n = end - start
    chains = _Chains(cls, n, 1 << window_log)
    reps = [1, 4, 8]
    runs: list[list[int]] = []
    out = bytearray(_frame_header(n))
    begin = 0
    while True:
        stop = min(begin + BLOCK_MAX, n)
        saved, first_run = list(reps), len(runs)
        seqs = _parse_block(cls, n, begin, stop, max_chain, chains, reps)
        literals = _write_literals(buf, cls, begin, stop, seqs, start, runs)
        block = literals + _write_sequences(seqs)
        if len(block) < stop - begin:
            for run in runs[first_run:]:
                run[1] += len(out) + 3
            out += _block_header(stop == n, 2, len(block)) + block
        else:  # a raw block, which leaves the repeat offsets alone
            reps[:] = saved
            del runs[first_run:]
            _verbatim(cls, begin, stop, start, len(out) + 3, runs)
            out += _block_header(stop == n, 0, stop - begin) + buf[begin:stop]
        begin = stop
        if begin >= n:
            break
    return bytes(out), np.array(runs, dtype=np.int64).reshape(-1, 3)


def patch(frame: bytes, runs: np.ndarray, raw: bytes, head: bytes = b"") -> bytes:
    """The frame with each run of changed bytes copied in from `raw`; after `head`."""
    out = bytearray(frame)
    for source, at, length in runs.tolist():
        out[at:at + length] = raw[source:source + length]
    return head + bytes(out)
