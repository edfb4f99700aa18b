# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Patchable zstd: compress a request once at load time into a zstd frame in
which every byte the send path changes sits verbatim at a known offset.

A zstd frame may omit its checksum, and a compressed block may store its
literals raw. compress(data, classes, start, end) matches over byte *classes*
(byte_classes in telegen/send/load/compression.py: a constant byte's class is
its value, a byte the patch kernel writes has a class >= 256 naming the value
it will get), so a match never copies a byte that a send would change
differently. Every changed byte outside such a match is a raw literal, copied
into the frame as it is: its offset in the frame is known, and `runs` lists
them. The sequences (literal lengths, match lengths, offsets) never change, so
they are coded once with the format's predefined FSE tables.

patch(template, raw) copies the frame and copies each run of changed bytes in
from `raw` (the patch kernel's output): a memcpy per run, no checksum, no
entropy coding per send.

The plain-Python twin in telegen/reference/zstd.py makes the same bytes from
the same input, step by step: _build_table, _parse_block (matches, with the
repeat offsets), _write_literals, _write_sequences and compress read side by
side in both; the tests hold the two together and decode every frame with the
reference decoder (the zstandard package).
"""
import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

cdef enum:
    BLOCK_MAX = 1 << 17  # the format's largest block (decompressed)
    HASH_BITS = 16
    HASH_SIZE = 1 << HASH_BITS
    MIN_MATCH = 4
    MAX_MATCH = 131074  # the longest match length the codes can say
    CHANGED = 256  # classes from here up are bytes the kernel writes
    # What a sequence costs besides its offset's extra bits, in bits, roughly:
    # the three FSE states' share. A match is taken when its bytes are worth more.
    SEQUENCE_BITS = 16
    LL_LOG = 6
    ML_LOG = 6
    OF_LOG = 5
    # The largest table logs the format allows a block's own tables.
    LL_MAX_LOG = 9
    ML_MAX_LOG = 9
    OF_MAX_LOG = 8
    N_LL = 36
    N_ML = 53
    N_OF = 29

MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_CHAIN = 16
DEFAULT_WINDOW_LOG = 20  # 1 MiB: a trace batch finds its resources and spans again (measured: 1.26x -> 1.14x zstd-1 bytes on traces over 128 KiB)
MAX_WINDOW_LOG = 24

# The predefined distributions (RFC 8878, 3.1.1.3.2.2).
cdef int16_t LL_NORM[36]
cdef int16_t ML_NORM[53]
cdef int16_t OF_NORM[29]
LL_NORM[:] = [4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
              -1, -1, -1, -1]
ML_NORM[:] = [1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
              1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1]
OF_NORM[:] = [1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1]
# Literal and match length codes: baseline and extra bits (RFC 8878, 3.1.1.3.2.1.1).
cdef uint32_t LL_BASE[36]
cdef uint8_t LL_EXTRA[36]
cdef uint32_t ML_BASE[53]
cdef uint8_t ML_EXTRA[53]
LL_BASE[:] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128,
              256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
LL_EXTRA[:] = [0] * 16 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
ML_BASE[:] = list(range(3, 35)) + [35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099,
                                   8195, 16387, 32771, 65539]
ML_EXTRA[:] = [0] * 32 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]


cdef struct FseTable:
    # The decoding table (state -> symbol, bits to read, baseline) and, from
    # it, the encoder's: for a symbol and the state the decoder goes to next,
    # the state that decodes the symbol and reaches it.
    int log
    uint16_t symbol[512]
    uint8_t bits[512]
    uint16_t baseline[512]
    uint16_t first[64]  # per symbol: a state that decodes it (the lowest)
    uint16_t encode[64 * 512]  # [symbol << log | next state]


cdef inline int _highbit(uint32_t v) noexcept nogil:
    cdef int r = 0
    while v > 1:
        v >>= 1
        r += 1
    return r


cdef void _build_table(const int16_t* norm, int n_symbols, int log, FseTable* t) noexcept nogil:
    """The decoding table of a normalized distribution (RFC 8878, 4.1.1), and the encoder's tables from it."""
    cdef int size = 1 << log, high = size - 1, position = 0, step = (size >> 1) + (size >> 3) + 3
    cdef int s, i, u, state, nb
    cdef uint16_t next_state[64]
    t.log = log
    for s in range(n_symbols):
        if norm[s] == -1:  # "less than 1": one cell at the end, a full reset
            t.symbol[high] = <uint16_t>s
            high -= 1
            next_state[s] = 1
        else:
            next_state[s] = <uint16_t>norm[s]
    for s in range(n_symbols):
        for i in range(norm[s]):
            t.symbol[position] = <uint16_t>s
            position = (position + step) & (size - 1)
            while position > high:
                position = (position + step) & (size - 1)
    for u in range(size):
        s = t.symbol[u]
        state = next_state[s]
        next_state[s] += 1
        nb = log - _highbit(state)
        t.bits[u] = <uint8_t>nb
        t.baseline[u] = <uint16_t>((state << nb) - size)
    for s in range(64):
        t.first[s] = 0xFFFF
    for u in range(size):
        s = t.symbol[u]
        if t.first[s] == 0xFFFF:
            t.first[s] = <uint16_t>u
        for i in range(t.baseline[u], t.baseline[u] + (1 << t.bits[u])):
            t.encode[(s << log) + i] = <uint16_t>u


cdef FseTable LL_TABLE, ML_TABLE, OF_TABLE
_build_table(LL_NORM, N_LL, LL_LOG, &LL_TABLE)
_build_table(ML_NORM, N_ML, ML_LOG, &ML_TABLE)
_build_table(OF_NORM, N_OF, OF_LOG, &OF_TABLE)


cdef struct Bits:
    uint8_t* out
    Py_ssize_t n
    uint64_t acc
    int filled


cdef inline void _put(Bits* w, uint64_t value, int count) noexcept nogil:
    w.acc |= value << w.filled
    w.filled += count
    while w.filled >= 8:
        w.out[w.n] = <uint8_t>(w.acc & 0xFF)
        w.n += 1
        w.acc >>= 8
        w.filled -= 8


# -- a block's own tables ----------------------------------------------------------

cdef inline uint32_t _log2_fixed(uint32_t v) noexcept nogil:
    """log2(v) in 1/256 bits, the mantissa linear: integer, so the twin gets the same."""
    cdef int h = _highbit(v)
    return (<uint32_t>h << 8) + (((v << 8) >> h) - 256)


cdef uint64_t _cost(const uint32_t* counts, const int16_t* norm, int n_symbols, int log) noexcept nogil:
    """About what coding `counts` with `norm` costs, in 1/256 bits: each
    symbol log2(size / its share) (a "less than 1" share counts as 1)."""
    cdef uint64_t total = 0
    cdef int s
    cdef uint32_t share
    for s in range(n_symbols):
        if counts[s]:
            share = 1 if norm[s] < 1 else <uint32_t>norm[s]
            total += <uint64_t>counts[s] * ((<uint32_t>log << 8) - _log2_fixed(share))
    return total


cdef int _normalize(const uint32_t* counts, int n_symbols, uint32_t total, int max_log, int16_t* norm) noexcept nogil:
    """A distribution of `counts` over 2^log cells (every used symbol at
    least 1; the rounding's excess or shortfall taken from or given to the
    largest), log from the count, at most max_log. Returns log."""
    cdef int log = _highbit(total) + 1, s, largest = 0
    cdef int64_t size, left, cut
    if log > max_log:
        log = max_log
    if log < 5:
        log = 5
    size = 1 << log
    left = size
    for s in range(n_symbols):
        norm[s] = 0
        if counts[s]:
            norm[s] = <int16_t>((<int64_t>counts[s] * size) // total)
            if norm[s] < 1:
                norm[s] = 1
            left -= norm[s]
            if counts[s] > counts[largest]:
                largest = s
    if left >= 0:
        norm[largest] += <int16_t>left
        return log
    while left < 0:  # too many cells: take them from the largest shares
        largest = 0
        for s in range(n_symbols):
            if norm[s] > norm[largest]:
                largest = s
        cut = norm[largest] - 1
        if cut > -left:
            cut = -left
        norm[largest] -= <int16_t>cut
        left += cut
    return log


cdef Py_ssize_t _write_table(const int16_t* norm, int n_symbols, int log, uint8_t* out) noexcept nogil:
    """The FSE table description (RFC 8878, 4.1.1) of `norm`. Returns its size."""
    cdef int64_t remaining = (1 << log) + 1, threshold = 1 << log, value, most
    cdef int nb = log + 1, s = 0, last = n_symbols - 1, start
    cdef bint previous0 = False
    cdef Bits w
    w.out = out
    w.n = 0
    w.acc = 0
    w.filled = 0
    while last > 0 and norm[last] == 0:
        last -= 1
    _put(&w, <uint64_t>(log - 5), 4)
    while s <= last and remaining > 1:
        if previous0:
            start = s
            while norm[s] == 0:
                s += 1
            while s >= start + 24:
                start += 24
                _put(&w, 0xFFFF, 16)
            while s >= start + 3:
                start += 3
                _put(&w, 3, 2)
            _put(&w, <uint64_t>(s - start), 2)
        most = (2 * threshold - 1) - remaining
        remaining -= -norm[s] if norm[s] < 0 else norm[s]
        value = norm[s] + 1
        if value >= threshold:
            value += most
        _put(&w, <uint64_t>value, nb - (1 if value < most else 0))
        previous0 = value == 1
        s += 1
        while remaining < threshold:
            nb -= 1
            threshold >>= 1
    if w.filled:
        _put(&w, 0, 8 - w.filled)
    return w.n


cdef inline int _ll_code(uint32_t ll) noexcept nogil:
    cdef int c = N_LL - 1
    while LL_BASE[c] > ll:
        c -= 1
    return c


cdef inline int _ml_code(uint32_t ml) noexcept nogil:
    cdef int c = N_ML - 1
    while ML_BASE[c] > ml:
        c -= 1
    return c


# -- matches ---------------------------------------------------------------------

cdef struct Sequence:
    uint32_t literals  # literal bytes before the match
    uint32_t length    # match length
    uint32_t offset    # the offset value as coded: 1-3 a repeat offset, else distance + 3


cdef inline uint32_t _hash(const uint32_t* c) noexcept nogil:
    cdef uint32_t h = c[0] * 0x9E3779B1u
    h = (h ^ c[1]) * 0x9E3779B1u
    h = (h ^ c[2]) * 0x9E3779B1u
    h = (h ^ c[3]) * 0x9E3779B1u
    return h >> (32 - HASH_BITS)


cdef inline Py_ssize_t _repeat_distance(const int64_t* reps, int code, Py_ssize_t literals) noexcept nogil:
    """The distance that offset value `code` (1-3) means after `literals` literals."""
    if literals > 0:
        return reps[code - 1]
    if code < 3:
        return reps[code]
    return reps[0] - 1


cdef inline uint32_t _offset_value(const int64_t* reps, Py_ssize_t distance, Py_ssize_t literals) noexcept nogil:
    """How a match at `distance` is coded: a repeat offset where one means it, else distance + 3."""
    cdef int code
    for code in range(1, 4):
        if _repeat_distance(reps, code, literals) == distance:
            return code
    return <uint32_t>(distance + 3)


cdef inline void _update_repeats(int64_t* reps, uint32_t offset, Py_ssize_t literals) noexcept nogil:
    """The repeat offsets after a sequence (RFC 8878, 3.2.5.1)."""
    cdef int64_t used
    cdef int index
    if offset > 3:
        reps[2] = reps[1]
        reps[1] = reps[0]
        reps[0] = offset - 3
        return
    index = <int>offset - 1 + (1 if literals == 0 else 0)
    if index == 0:
        return
    if index == 3:  # repeat 1 less 1 byte: a new offset
        used = reps[0] - 1
        reps[2] = reps[1]
        reps[1] = reps[0]
        reps[0] = used
    elif index == 1:
        used = reps[1]
        reps[1] = reps[0]
        reps[0] = used
    else:
        used = reps[2]
        reps[2] = reps[1]
        reps[1] = reps[0]
        reps[0] = used


cdef inline int _score(Py_ssize_t length, uint32_t offset) noexcept nogil:
    """What a match saves, in bits: its bytes as literals, less its sequence."""
    return <int>(8 * length) - SEQUENCE_BITS - _highbit(offset)


cdef inline Py_ssize_t _match_length(const uint32_t* cls, Py_ssize_t at, Py_ssize_t source,
                                     Py_ssize_t max_len) noexcept nogil:
    cdef Py_ssize_t length = 0
    while length < max_len and cls[source + length] == cls[at + length]:
        length += 1
    return length


cdef inline void _insert(const uint32_t* cls, Py_ssize_t p, Py_ssize_t n, int32_t* head, int32_t* prev,
                         Py_ssize_t window_mask) noexcept nogil:
    cdef uint32_t h
    if p + MIN_MATCH <= n:
        h = _hash(cls + p)
        prev[p & window_mask] = head[h]
        head[h] = <int32_t>p


cdef Py_ssize_t _parse_block(const uint32_t* cls, Py_ssize_t n, Py_ssize_t begin, Py_ssize_t end, int max_chain,
                             Py_ssize_t window, int32_t* head, int32_t* prev, int64_t* reps,
                             Sequence* out) noexcept nogil:
    """Greedy matching over classes in [begin, end) (matches may reach back
    `window` bytes before it, never past `end`); at each position the longest
    hash-chain match (the nearest of equal length) and each repeat offset
    compete on what they save. Returns the sequence count; `reps` is left as
    the block ends."""
    cdef Py_ssize_t i = begin, literal_start = begin, max_len, cand, limit, length, best_len, distance
    cdef Py_ssize_t chain_len, chain_distance
    cdef Py_ssize_t window_mask = window - 1
    cdef Py_ssize_t count = 0
    cdef int chain, code, best_score, score
    cdef uint32_t best_offset, offset
    while i < end:
        best_len = 0
        best_score = 0
        best_offset = 0
        max_len = end - i
        if max_len > MAX_MATCH:
            max_len = MAX_MATCH
        if max_len >= MIN_MATCH:
            for code in range(1, 4):
                distance = _repeat_distance(reps, code, i - literal_start)
                if distance < 1 or distance > i:
                    continue
                length = _match_length(cls, i, i - distance, max_len)
                if length >= MIN_MATCH:
                    score = _score(length, code)
                    if score > best_score:
                        best_score = score
                        best_len = length
                        best_offset = code
            chain_len = MIN_MATCH - 1
            chain_distance = 0
            if i + MIN_MATCH <= n:
                cand = head[_hash(cls + i)]
                chain = max_chain
                limit = i - window
                while cand >= 0 and cand > limit and chain > 0:
                    if chain_len >= max_len or cls[cand + chain_len] == cls[i + chain_len]:
                        length = _match_length(cls, i, cand, max_len)
                        if length > chain_len:
                            chain_len = length
                            chain_distance = i - cand
                            if length == max_len:
                                break
                    cand = prev[cand & window_mask]
                    chain -= 1
            if chain_distance:
                offset = _offset_value(reps, chain_distance, i - literal_start)
                score = _score(chain_len, offset)
                if score > best_score:
                    best_score = score
                    best_len = chain_len
                    best_offset = offset
        if best_score > 0:
            out[count].literals = <uint32_t>(i - literal_start)
            out[count].length = <uint32_t>best_len
            out[count].offset = best_offset
            _update_repeats(reps, best_offset, i - literal_start)
            count += 1
            for cand in range(i, i + best_len):
                _insert(cls, cand, n, head, prev, window_mask)
            i += best_len
            literal_start = i
        else:
            _insert(cls, i, n, head, prev, window_mask)
            i += 1
    return count


# -- writing a block -------------------------------------------------------------

cdef struct Runs:
    # Rows [raw offset, frame offset, length]: runs of changed bytes stored verbatim.
    int64_t* rows
    Py_ssize_t n, cap


cdef int _add_run(Runs* runs, int64_t raw, int64_t at, int64_t length) noexcept nogil:
    """Adds a run, or extends the last one where this one continues it. 0, or -1 out of memory."""
    cdef int64_t* grown
    cdef Py_ssize_t last = runs.n - 1
    if last >= 0 and runs.rows[3 * last] + runs.rows[3 * last + 2] == raw \
            and runs.rows[3 * last + 1] + runs.rows[3 * last + 2] == at:
        runs.rows[3 * last + 2] += length
        return 0
    if runs.n == runs.cap:
        grown = <int64_t*>realloc(runs.rows, 2 * runs.cap * 3 * sizeof(int64_t))
        if grown == NULL:
            return -1
        runs.rows = grown
        runs.cap *= 2
    runs.rows[3 * runs.n] = raw
    runs.rows[3 * runs.n + 1] = at
    runs.rows[3 * runs.n + 2] = length
    runs.n += 1
    return 0


cdef int _verbatim(const uint32_t* cls, Py_ssize_t begin, Py_ssize_t end, int64_t raw_base, int64_t at,
                   Runs* runs) noexcept nogil:
    """The runs of changed bytes in cls[begin:end], stored from frame offset `at` on."""
    cdef Py_ssize_t p = begin, q
    while p < end:
        if cls[p] < CHANGED:
            p += 1
            continue
        q = p
        while q < end and cls[q] >= CHANGED:
            q += 1
        if _add_run(runs, raw_base + p, at + (p - begin), q - p) < 0:
            return -1
        p = q
    return 0


cdef Py_ssize_t _write_literals(const uint8_t* buf, const uint32_t* cls, Py_ssize_t begin, Py_ssize_t end,
                                const Sequence* seqs, Py_ssize_t count, uint8_t* out, int64_t raw_base,
                                Runs* runs) noexcept nogil:
    """The literals section, raw (Raw_Literals_Block), at `out`; runs at
    frame offsets relative to `out`. Returns its size, or -1 out of memory."""
    cdef Py_ssize_t size = end - begin, k, p = begin, header, at
    for k in range(count):
        size -= seqs[k].length
    if size < 32:
        out[0] = <uint8_t>(size << 3)
        header = 1
    elif size < 4096:
        out[0] = <uint8_t>(0x4 | ((size & 0xF) << 4))
        out[1] = <uint8_t>(size >> 4)
        header = 2
    else:
        out[0] = <uint8_t>(0xC | ((size & 0xF) << 4))
        out[1] = <uint8_t>((size >> 4) & 0xFF)
        out[2] = <uint8_t>(size >> 12)
        header = 3
    at = header
    for k in range(count + 1):
        size = seqs[k].literals if k < count else end - p
        memcpy(out + at, buf + p, size)
        if _verbatim(cls, p, p + size, raw_base, at, runs) < 0:
            return -1
        at += size
        p += size
        if k < count:
            p += seqs[k].length
    return at


cdef inline void _encode_symbol(Bits* w, const FseTable* t, int* state, int symbol) noexcept nogil:
    """Moves the encoder to the state that decodes `symbol` and leads to the
    current one, writing the bits the decoder reads to get there."""
    cdef int previous = t.encode[(symbol << t.log) + state[0]]
    _put(w, <uint64_t>(state[0] - t.baseline[previous]), t.bits[previous])
    state[0] = previous


cdef const FseTable* _choose_table(const uint32_t* counts, int n_symbols, uint32_t total, int max_log,
                                    const FseTable* predefined, const int16_t* predefined_norm, FseTable* own,
                                    uint8_t* out, Py_ssize_t* written, int* mode) noexcept nogil:
    """The block's table for one kind of code: its own (FSE_Compressed_Mode,
    the description written at `out`) where that costs fewer bits, table
    included, than the predefined one; else the predefined."""
    cdef int16_t norm[64]
    cdef int s, used = 0, log
    cdef Py_ssize_t size
    written[0] = 0
    mode[0] = 0
    for s in range(n_symbols):
        used += counts[s] > 0
    if used < 2:  # a description needs two symbols or more
        return predefined
    log = _normalize(counts, n_symbols, total, max_log, norm)
    size = _write_table(norm, n_symbols, log, out)
    if _cost(counts, norm, n_symbols, log) + (<uint64_t>size << 11) >= \
            _cost(counts, predefined_norm, n_symbols, predefined.log):
        return predefined
    _build_table(norm, n_symbols, log, own)
    written[0] = size
    mode[0] = 2
    return own


cdef Py_ssize_t _write_sequences(const Sequence* seqs, Py_ssize_t count, uint8_t* out, FseTable* own) noexcept nogil:
    """The sequences section at `out`: their count, each kind of code's
    table (the predefined one, or the block's own, described), and the FSE
    bitstream (written from the last sequence to the first, read back in
    reverse). `own`: room for three tables. Returns its size."""
    cdef Py_ssize_t at, k, written
    cdef int ll_mode, of_mode, ml_mode
    cdef uint32_t ll_counts[N_LL]
    cdef uint32_t ml_counts[N_ML]
    cdef uint32_t of_counts[N_OF]  # offsets under 2^24 (MAX_WINDOW_LOG): codes up to 24
    if count < 128:
        out[0] = <uint8_t>count
        at = 1
    elif count < 0x7F00:
        out[0] = <uint8_t>((count >> 8) + 128)
        out[1] = <uint8_t>(count & 0xFF)
        at = 2
    else:
        out[0] = 255
        out[1] = <uint8_t>((count - 0x7F00) & 0xFF)
        out[2] = <uint8_t>((count - 0x7F00) >> 8)
        at = 3
    if count == 0:
        return at
    memset(ll_counts, 0, sizeof(ll_counts))
    memset(ml_counts, 0, sizeof(ml_counts))
    memset(of_counts, 0, sizeof(of_counts))
    for k in range(count):
        ll_counts[_ll_code(seqs[k].literals)] += 1
        ml_counts[_ml_code(seqs[k].length)] += 1
        of_counts[_highbit(seqs[k].offset)] += 1
    cdef Py_ssize_t modes_at = at
    at += 1
    # The tables' descriptions follow the modes in this order: literal lengths, offsets, match lengths.
    cdef const FseTable* ll_table = _choose_table(ll_counts, N_LL, <uint32_t>count, LL_MAX_LOG, &LL_TABLE, LL_NORM,
                                                  own, out + at, &written, &ll_mode)
    at += written
    cdef const FseTable* of_table = _choose_table(of_counts, N_OF, <uint32_t>count, OF_MAX_LOG, &OF_TABLE, OF_NORM, own + 1,
                                                  out + at, &written, &of_mode)
    at += written
    cdef const FseTable* ml_table = _choose_table(ml_counts, N_ML, <uint32_t>count, ML_MAX_LOG, &ML_TABLE, ML_NORM,
                                                  own + 2, out + at, &written, &ml_mode)
    at += written
    out[modes_at] = <uint8_t>((ll_mode << 6) | (of_mode << 4) | (ml_mode << 2))
    cdef Bits w
    w.out = out + at
    w.n = 0
    w.acc = 0
    w.filled = 0
    k = count - 1
    cdef int ll_code = _ll_code(seqs[k].literals), ml_code = _ml_code(seqs[k].length)
    cdef int of_code = _highbit(seqs[k].offset)
    cdef int ll_state = ll_table.first[ll_code], ml_state = ml_table.first[ml_code]
    cdef int of_state = of_table.first[of_code]
    _put(&w, seqs[k].literals - LL_BASE[ll_code], LL_EXTRA[ll_code])
    _put(&w, seqs[k].length - ML_BASE[ml_code], ML_EXTRA[ml_code])
    _put(&w, seqs[k].offset - (1u << of_code), of_code)
    while k > 0:
        k -= 1
        ll_code = _ll_code(seqs[k].literals)
        ml_code = _ml_code(seqs[k].length)
        of_code = _highbit(seqs[k].offset)
        _encode_symbol(&w, of_table, &of_state, of_code)
        _encode_symbol(&w, ml_table, &ml_state, ml_code)
        _encode_symbol(&w, ll_table, &ll_state, ll_code)
        _put(&w, seqs[k].literals - LL_BASE[ll_code], LL_EXTRA[ll_code])
        _put(&w, seqs[k].length - ML_BASE[ml_code], ML_EXTRA[ml_code])
        _put(&w, seqs[k].offset - (1u << of_code), of_code)
    # The decoder reads the first states first: literal lengths', offsets', match lengths'.
    _put(&w, ml_state, ml_table.log)
    _put(&w, of_state, of_table.log)
    _put(&w, ll_state, ll_table.log)
    _put(&w, 1, 1)  # the end mark
    if w.filled:
        _put(&w, 0, 8 - w.filled)
    return at + w.n


cdef inline void _block_header(uint8_t* out, bint last, int kind, Py_ssize_t size) noexcept nogil:
    cdef uint32_t v = (1 if last else 0) | (kind << 1) | (<uint32_t>size << 3)
    out[0] = v & 0xFF
    out[1] = (v >> 8) & 0xFF
    out[2] = (v >> 16) & 0xFF


cdef Py_ssize_t _frame_header(uint8_t* out, Py_ssize_t size) noexcept nogil:
    """Magic, a single-segment descriptor (the window is the content) with
    the content size, no checksum, no dictionary."""
    cdef Py_ssize_t k, width
    cdef int flag
    cdef uint64_t value = <uint64_t>size
    out[0] = 0x28
    out[1] = 0xB5
    out[2] = 0x2F
    out[3] = 0xFD
    if size < 256:
        flag, width = 0, 1
    elif size < 65536 + 256:
        flag, width = 1, 2
        value -= 256
    elif size <= <Py_ssize_t>0xFFFFFFFFu:
        flag, width = 2, 4
    else:
        flag, width = 3, 8
    out[4] = <uint8_t>((flag << 6) | 0x20)
    for k in range(width):
        out[5 + k] = <uint8_t>((value >> (8 * k)) & 0xFF)
    return 5 + width


# -- the compressed template --------------------------------------------------------

cdef class ZstdTemplate:
    """One request compressed once: `data` (a whole zstd frame), the raw byte
    range [start, end) of the batch buffer it holds, and `runs` (int64 rows
    [raw offset, frame offset, length]: runs of changed bytes stored verbatim
    in raw literals or raw blocks)."""

    def __repr__(self) -> str:
        return (f"<ZstdTemplate {self.end - self.start} raw bytes in {PyBytes_GET_SIZE(self.data)}, "
                f"{len(self.runs)} verbatim runs>")

    @property
    def literals(self) -> int:
        """Changed bytes copied per send (the rest come out of matches)."""
        return int(self.runs[:, 2].sum()) if len(self.runs) else 0


def template_from_parts(bytes data, Py_ssize_t start, Py_ssize_t end, runs) -> ZstdTemplate:
    """A template from its parts, checked so that a damaged one cannot write
    outside its buffers."""
    cdef ZstdTemplate t = ZstdTemplate.__new__(ZstdTemplate)
    runs = np.ascontiguousarray(runs, dtype=np.int64).reshape(-1, 3)
    if len(data) < 8 or data[:4] != MAGIC or not 0 <= start <= end:
        raise ValueError("not a zstd template")
    if len(runs):
        if (runs[:, 2] < 1).any() or runs[:, 0].min() < start or (runs[:, 0] + runs[:, 2]).max() > end:
            raise ValueError("verbatim runs outside the raw range")
        if runs[:, 1].min() < 6 or (runs[:, 1] + runs[:, 2]).max() > len(data):
            raise ValueError("verbatim runs outside the frame")
    t.data = data
    t.start = start
    t.end = end
    t.runs = runs
    return t


def compress(data, classes, Py_ssize_t start=0, Py_ssize_t end=-1, int max_chain=DEFAULT_CHAIN,
             int window_log=DEFAULT_WINDOW_LOG) -> ZstdTemplate:
    """The patchable zstd frame of data[start:end]. `classes` (uint32, one per
    byte of `data`): byte values for constant bytes, >= 256 for bytes the
    patch kernel writes, equal only where they always get equal values."""
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
    if not 10 <= window_log <= MAX_WINDOW_LOG:
        raise ValueError(f"window_log must be 10-{MAX_WINDOW_LOG}")
    cdef Py_ssize_t n = end - start
    cdef Py_ssize_t window = 1 << window_log
    cdef const uint32_t* cls = &cls_view[0] + start if n else NULL
    cdef const uint8_t* buf = &raw[0] + start if n else NULL
    cdef Py_ssize_t block_len = BLOCK_MAX if n > BLOCK_MAX else n
    # A block's sections: literals (at most the block and a 3-byte header),
    # sequences (a header, three table descriptions of under 100 bytes each,
    # at most one sequence per MIN_MATCH bytes, each at most 12 bytes coded).
    cdef Py_ssize_t scratch_cap = block_len + 3 + 8 + 300 + 12 * (block_len // MIN_MATCH + 1)
    cdef Py_ssize_t out_cap = 14 + n + 3 * (n // BLOCK_MAX + 1)
    cdef uint8_t* out = <uint8_t*>malloc(out_cap)
    cdef uint8_t* scratch = <uint8_t*>malloc(scratch_cap)
    cdef Sequence* seqs = <Sequence*>malloc((block_len // MIN_MATCH + 1) * sizeof(Sequence))
    cdef int32_t* head = <int32_t*>malloc(HASH_SIZE * sizeof(int32_t))
    cdef int32_t* prev = <int32_t*>malloc(window * sizeof(int32_t))
    cdef FseTable* own = <FseTable*>malloc(3 * sizeof(FseTable))
    cdef Runs runs
    runs.cap = 64
    runs.n = 0
    runs.rows = <int64_t*>malloc(runs.cap * 3 * sizeof(int64_t))
    if out == NULL or scratch == NULL or seqs == NULL or head == NULL or prev == NULL or runs.rows == NULL \
            or own == NULL:
        free(out); free(scratch); free(seqs); free(head); free(prev); free(runs.rows); free(own)
        raise MemoryError()
    cdef Py_ssize_t at, begin, stop, count, lit_size, seq_size, size, k, first_run
    cdef int64_t reps[3]
    cdef int64_t saved[3]
    cdef bint failed = False
    cdef int64_t[:, ::1] rows_view
    try:
        with nogil:
            for k in range(HASH_SIZE):
                head[k] = -1
            reps[0] = 1
            reps[1] = 4
            reps[2] = 8
            at = _frame_header(out, n)
            begin = 0
            while True:
                stop = begin + BLOCK_MAX if n - begin > BLOCK_MAX else n
                memcpy(saved, reps, sizeof(saved))
                first_run = runs.n
                count = _parse_block(cls, n, begin, stop, max_chain, window, head, prev, reps, seqs)
                lit_size = _write_literals(buf, cls, begin, stop, seqs, count, scratch, start, &runs)
                if lit_size < 0:
                    failed = True
                    break
                seq_size = _write_sequences(seqs, count, scratch + lit_size, own)
                size = lit_size + seq_size
                if size < stop - begin:
                    _block_header(out + at, stop == n, 2, size)
                    memcpy(out + at + 3, scratch, size)
                    for k in range(first_run, runs.n):
                        runs.rows[3 * k + 1] += at + 3
                else:  # no smaller compressed: a raw block, which leaves the repeat offsets alone
                    memcpy(reps, saved, sizeof(saved))
                    runs.n = first_run
                    size = stop - begin
                    _block_header(out + at, stop == n, 0, size)
                    memcpy(out + at + 3, buf + begin, size)
                    if _verbatim(cls, begin, stop, start, at + 3, &runs) < 0:
                        failed = True
                        break
                at += 3 + size
                begin = stop
                if begin >= n:
                    break
        if failed:
            raise MemoryError()
        frame = PyBytes_FromStringAndSize(<char*>out, at)
        rows = np.empty((runs.n, 3), dtype=np.int64)
        if runs.n:
            rows_view = rows
            memcpy(&rows_view[0, 0], runs.rows, 3 * runs.n * sizeof(int64_t))
    finally:
        free(out); free(scratch); free(seqs); free(head); free(prev); free(runs.rows); free(own)
    return template_from_parts(frame, start, end, rows)


# -- per send ------------------------------------------------------------------------

def patch(ZstdTemplate template, raw, bytes head=b"") -> bytes:
    """The template's frame with the changed bytes of `raw` (the patched batch
    buffer; the template's range of it) copied in; after `head` (a gRPC
    message prefix), in one allocation."""
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
    cdef const int64_t[:, ::1] runs = template.runs
    cdef const uint8_t* src = &source[0] if source.shape[0] else NULL
    cdef const uint8_t* frame = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t i
    with nogil:
        memcpy(dst, frame, size)
        for i in range(runs.shape[0]):
            memcpy(dst + runs[i, 1], src + runs[i, 0], runs[i, 2])
    return out
