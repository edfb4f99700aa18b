"""Shards: sender i of N in a fleet, with no coordination between senders.

A shard sends 1/N of the fleet-wide rate, draws its own random ids, and writes
metric series no other shard writes: the shard is folded into the
`telegen.replica` numbering, so shard i's copies of the template series are
numbers i*k .. i*k+k-1 of N*k (k: the series multiplier), zero-padded to one
width for the whole fleet. That is still a fixed-width patch, not a re-encode.
Tenants (`otlp.tenants`, telegen.send.tenants) are folded in above the
shards: tenant t's copy of number r is t*N*k + r, of T*N*k in all.

The shard comes from `sending.shard`, `--shard I/N`, `TELEGEN_SHARD=I/N`, or a
Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` with `TELEGEN_SHARDS=N`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

SHARD_FORMAT = "INDEX/COUNT with 0 <= INDEX < COUNT, such as 0/4"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*\Z")


def parse_shard(text: str) -> tuple[int, int]:
    """(index, count) from "I/N"; ValueError saying what is wrong."""
    match = _SHARD.match(text)
    if match is None:
        raise ValueError(f"expected {SHARD_FORMAT}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"the count must be at least 1 ({SHARD_FORMAT})")
    if index >= count:
        raise ValueError(f"the index must be below the count ({SHARD_FORMAT})")
    return index, count


def shard_from_env(env: Mapping[str, str]) -> tuple[int, int] | None:
    """The shard the environment gives, if any. TELEGEN_SHARD=I/N wins over a
    Kubernetes Indexed Job's JOB_COMPLETION_INDEX with TELEGEN_SHARDS=N."""
    explicit = env.get("TELEGEN_SHARD", "").strip()
    if explicit:
        try:
            return parse_shard(explicit)
        except ValueError as exc:
            raise ConfigError(f"TELEGEN_SHARD: {explicit!r} is invalid: {exc}") from None
    count_text = env.get("TELEGEN_SHARDS", "").strip()
    if not count_text:
        return None  # JOB_COMPLETION_INDEX alone: an indexed job that is not a telegen fleet
    index_text = env.get("JOB_COMPLETION_INDEX", "").strip()
    if not index_text:
        raise ConfigError(f"TELEGEN_SHARDS: {count_text!r} needs JOB_COMPLETION_INDEX (set in each pod of a "
                          "Kubernetes Indexed Job) or TELEGEN_SHARD=I/N to say which shard this sender is")
    try:
        return parse_shard(f"{index_text}/{count_text}")
    except ValueError as exc:
        raise ConfigError(f"JOB_COMPLETION_INDEX={index_text!r} with TELEGEN_SHARDS={count_text!r} is invalid: "
                          f"{exc}") from None


@dataclass(frozen=True)
class SeriesCopies:
    """Which `telegen.replica` numbers this sender writes: `count` copies of
    every metric series per pass, numbered first .. first+count-1 out of
    `total` over the whole fleet."""

    first: int = 0
    count: int = 1
    total: int = 1
    # Tenants (otlp.tenants): each writes its own `count` copies, tenant t's
    # numbered t*total + (first .. first+count-1).
    tenants: int = 1
    # Churn (sending.scenarios.churn): room for this many more digits, so a
    # copy that churns can write its number plus `churn_stride` times its
    # churns so far: a new series, as a restarted pod's.
    churn_digits: int = 0

    @classmethod
    def for_shard(cls, index: int, shards: int, multiplier: int, tenants: int = 1,
                  churn_digits: int = 0) -> SeriesCopies:
        return cls(first=index * multiplier, count=multiplier, total=shards * multiplier, tenants=tenants,
                   churn_digits=churn_digits)

    @property
    def churn_stride(self) -> int:
        """What one churn adds to a copy's number: every number in the fleet (tenants included)."""
        return self.total * self.tenants

    @property
    def width(self) -> int:
        """Digits of the replica attribute; 0: no attribute (one copy in the fleet)."""
        numbers = self.total * self.tenants
        if self.churn_digits:
            return len(str(numbers - 1)) + self.churn_digits
        return len(str(numbers - 1)) if numbers > 1 else 0

    def tenant_number(self, replica: int, tenant: int) -> int:
        """The number tenant `tenant`'s copy of copy `replica` writes."""
        return tenant * self.total + replica

    def numbers(self) -> range:
        return range(self.first, self.first + self.count)
