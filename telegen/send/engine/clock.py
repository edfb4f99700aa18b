"""The trace clock: when, and in which send, each trace batch last went out.

Every id a send writes is derived from its template id, the run's key and a
send number (the kernel's keyed patch), so a span's id in its n-th send is
known to anyone who knows n. A log or exemplar naming that span (patched
in another batch, perhaps in another worker process) reads here the number
and the `now` of its trace batch's latest send, and so names the span as it
went out, with its time shifted as the span's was (telegen.send.load.correlate).

The clock is shared memory made before the workers fork. Each trace batch
belongs to one worker, its only writer; readers take no lock. A row is
[now of an even send, now of an odd send, latest send number (-1: none),
late flags (bit 0: the even send went out `late`, bit 1: the odd one)]:
the writer stores the time (and flag) in its parity's slot before the
number, so a reader that reads the number first finds that send's time,
which is not written again until two sends later. The kernel reads the
first three columns.
"""
from __future__ import annotations

import os
from multiprocessing.sharedctypes import RawArray

import numpy as np

COLUMNS = 4


class TraceClock:
    """Rows per tenant (otlp.tenants): a tenant's sends derive their ids from
    a key of its own, and a log sent to a tenant names its spans as they
    were sent to that tenant."""

    def __init__(self, rows: int, key: int | None = None, tenants: int = 1) -> None:
        self.rows = rows
        # The run's id key: every id this run sends derives from it, so no
        # two runs (or shards) repeat each other's ids.
        self.key = int.from_bytes(os.urandom(8), "little") if key is None else key & (2**64 - 1)
        self._keys = [self.key] + [_mix64(self.key ^ (t * 0x9E3779B97F4A7C15 & _MASK)) for t in range(1, tenants)]
        self._shared = RawArray("q", max(1, rows * tenants) * COLUMNS)
        self.table = np.frombuffer(self._shared, dtype=np.int64)[:rows * tenants * COLUMNS].reshape(
            tenants, rows, COLUMNS)
        self.table[:, :, 2] = -1

    def key_for(self, tenant: int) -> int:
        return self._keys[tenant]

    def record(self, slot: int, number: int, now_ns: int, late: bool = False, tenant: int = 0) -> None:
        """Trace batch `slot` went out in send `number`, patched at `now_ns`
        (`late`: its times set back by the late scenario)."""
        row = self.table[tenant, slot]
        parity = number & 1
        row[parity] = now_ns
        row[3] = (int(row[3]) & ~(1 << parity)) | (int(late) << parity)
        row[2] = number

    def late(self, slots: np.ndarray, tenant: int = 0) -> int:
        """How many of `slots` (rows, repeats counted) last went out late."""
        rows = self.table[tenant][slots]
        numbers = rows[:, 2]
        return int((((rows[:, 3] >> (numbers & 1)) & 1) * (numbers >= 0)).sum())

    def all_sent(self, slots: tuple[int, ...], tenant: int = 0) -> bool:
        """Whether every trace batch in `slots` went out (to `tenant`) at least once."""
        return bool((self.table[tenant][list(slots), 2] >= 0).all())


_MASK = 2**64 - 1


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)
