"""The plain-Python twin of the kernel's random numbers (telegen/_rng.pxi):
xoshiro256** seeded by splitmix64, draw for draw."""
from __future__ import annotations

MASK64 = (1 << 64) - 1


class Xoshiro256:
    """xoshiro256** seeded by splitmix64, as in telegen/_rng.pxi."""

    def __init__(self, seed: int) -> None:
        state = seed & MASK64
        words = []
        for _ in range(4):
            state = (state + 0x9E3779B97F4A7C15) & MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            words.append(z ^ (z >> 31))
        self.s = words

    def next(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def unit(self) -> float:
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64

