"""Tenants: many tenants of a multi-tenant backend (Mimir's X-Scope-OrgID,
a Honeycomb team's key) loaded at once by one sender (`otlp.tenants`).

Tenant n's headers are added to (and override) the endpoint's own on every
request it makes; `{n}` (or `{n:03}`, zero-padded) in a header's name or
value is n. Each tenant gets its weight's share of the rate and its own copy
of the templates' resources: the tenant is folded into the metric copy
numbering (`telegen.replica` and the end of `service.instance.id`) above
the shard and the series multiplier, so tenant t's series are not tenant
u's even for a store that ignores the tenant header. Traces and logs are
unique by their fresh ids already.

Which tenant a send goes to: every schedule item has a fixed phase on a
circle of cells (its position in the pass, spread evenly), and its k-th turn
(pass, or metric generation) moves it on by a fixed step; the cell's owner
is the tenant, each tenant owning a share of the cells equal to its weight.
Even weights: one cell per tenant and a step of one, a plain rotation (item
i's turn k goes to tenant (i + k) mod count). Other weights: the golden
ratio of the circle as the step. So in every turn the items are spread over
the tenants by weight, and each item visits every tenant at its weight's
frequency, at even (rotation) or almost even (golden step: the three-gap
theorem) intervals: a tenant's metric series are sampled regularly. The
send path pays one table lookup per batch; a run without tenants pays one
test.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..configkit import SECRET_SHOWN

WEIGHTS = ("even", "zipf")
# zipf: tenant n's weight is 1 / (n + 1) ** ZIPF_EXPONENT.
ZIPF_EXPONENT = 1.0
MAX_TENANTS = 100_000

# {n}, or {n:03} / {n:3} (zero-padded to 3 digits).
_PLACEHOLDER = re.compile(r"\{n(?::0?(\d{1,2}))?\}")

# Header names whose values are credentials: never printed.
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|session|signature|credential|x-honeycomb-team",
                          re.IGNORECASE)
# A value that reads like a credential whatever its name: a scheme and a
# token, or a long run of token characters with letters and digits.
_SECRET_VALUE = re.compile(r"(?i:bearer|basic|token|apikey)\s+\S+"
                           r"|(?=[^ ]*[0-9])(?=[^ ]*[A-Za-z])[A-Za-z0-9+/=_.-]{24,}\Z")


def has_placeholder(text: str) -> bool:
    return _PLACEHOLDER.search(text) is not None


def bad_placeholder(text: str) -> bool:
    """`{n` that is not a placeholder telegen fills in ({n:x}, {n )."""
    return "{n" in _PLACEHOLDER.sub("", text)


def fill(text: str, n: int) -> str:
    """`text` with each {n} replaced by n ({n:03}: zero-padded to 3 digits)."""
    if "{n" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: str(n).zfill(int(m.group(1) or 0)), text)


def weights_for(scheme: str, count: int) -> tuple[float, ...]:
    """Each tenant's share of the rate (summing to 1)."""
    if scheme == "zipf":
        raw = [1.0 / (n + 1) ** ZIPF_EXPONENT for n in range(count)]
    else:
        raw = [1.0] * count
    total = sum(raw)
    return tuple(w / total for w in raw)


def looks_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name) or _SECRET_VALUE.match(value.strip()))


def shown_headers(headers: Sequence[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Headers as reports print them: a value that looks like a credential
    (by its name or its shape) reads "***", as every header value does in
    configs and errors; a tenant id (x-scope-orgid: tenant-3) is shown."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: SECRET_SHOWN if looks_secret(name, value) else value for name, value in items}


@dataclass(frozen=True)
class Tenants:
    """The resolved tenants: per tenant, the headers it adds (lower-case
    names), and its weight."""

    headers: tuple[tuple[tuple[str, str], ...], ...] = field(repr=False)  # values may be secrets
    weights: tuple[float, ...]
    scheme: str = "even"

    @property
    def count(self) -> int:
        return len(self.headers)

    def shown(self, index: int) -> dict[str, str]:
        return shown_headers(self.headers[index])


def resolve(count: int | None, headers: Sequence[Mapping[str, str]], scheme: str, listed: bool) -> Tenants:
    """Tenants from `otlp.tenants` (checked already: see config.rules).
    `listed`: the headers were a list, one map per tenant; else one map,
    filled in for n = 0 .. count-1."""
    if listed:
        maps = [{fill(k, n).lower(): fill(v, n) for k, v in h.items()} for n, h in enumerate(headers)]
    else:
        template = headers[0] if headers else {}
        maps = [{fill(k, n).lower(): fill(v, n) for k, v in template.items()} for n in range(count or 1)]
    return Tenants(tuple(tuple(m.items()) for m in maps), weights_for(scheme, len(maps)), scheme)


class TenantCycle:
    """Which tenant each send goes to (see the module's docstring): a table
    of cells, each owned by a tenant in proportion to its weight, an item's
    phase (its place in the pass) and a step per turn. Even weights: a cell
    per tenant and a step of one, so every item goes to each tenant once in
    every `count` turns, exactly; other weights: the golden ratio's step over
    enough cells to resolve the smallest weight to 0.1 %."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.count = len(weights)
        if max(weights) - min(weights) < 1e-12:
            self.cells, self.step = self.count, 1
            self.table: list[int] = list(range(self.count))
            return
        self.cells = 1 << min(22, max(10, math.ceil(math.log2(1000 / min(weights)))))
        edges = np.cumsum(np.asarray(weights, dtype=np.float64))
        edges /= edges[-1]
        centres = (np.arange(self.cells) + 0.5) / self.cells
        self.table = np.minimum(np.searchsorted(edges, centres, side="right"), self.count - 1).tolist()
        # Odd: the walk visits every cell before it repeats.
        self.step = round(self.cells * (math.sqrt(5) - 1) / 2) | 1

    def phase(self, position: int, positions: int) -> int:
        """The cell of the item at `position` of a pass of `positions` items at turn 0."""
        if self.step == 1:
            return position % self.cells
        return position * self.cells // max(1, positions)

    def pick(self, phase: int, turn: int) -> int:
        return self.table[(phase + turn * self.step) % self.cells]
