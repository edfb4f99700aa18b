# Random numbers: xoshiro256**, seeded by splitmix64, one process-wide
# generator reseeded in every forked child. Included by _fastpath.pyx.

cdef struct Xoshiro:
    uint64_t s0, s1, s2, s3


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline void _seed(Xoshiro* rng, uint64_t seed) noexcept nogil:
    rng.s0 = _splitmix64(&seed)
    rng.s1 = _splitmix64(&seed)
    rng.s2 = _splitmix64(&seed)
    rng.s3 = _splitmix64(&seed)


cdef inline uint64_t _next(Xoshiro* rng) noexcept nogil:
    cdef uint64_t result = _rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = _rotl(rng.s3, 45)
    return result


cdef inline double _unit(Xoshiro* rng) noexcept nogil:
    """A double in [0, 1) from the top 53 bits of a draw."""
    return <double>(_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef Xoshiro _global_rng


def _reseed() -> None:
    """Fresh process-wide randomness; runs at import and in every forked child
    so worker processes never repeat each other's ids."""
    global _global_rng
    _seed(&_global_rng, int.from_bytes(os.urandom(8), "little"))


_reseed()
os.register_at_fork(after_in_child=_reseed)
