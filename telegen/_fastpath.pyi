"""Type stub for the compiled send-path core (telegen/_fastpath.pyx)."""
import numpy as np
import numpy.typing as npt

SIGNALS: tuple[str, str, str]
REPLICA_KEY: bytes

class PatchPlan:
    """Offsets of every per-send field of one serialized request."""

    signal: int
    size: int
    events: int
    n_id_groups: int
    n_time_groups: int
    ids16: npt.NDArray[np.int64]
    ids8: npt.NDArray[np.int64]
    time_add: npt.NDArray[np.int64]
    time_now: npt.NDArray[np.int64]
    time_start: npt.NDArray[np.int64]
    time_window: npt.NDArray[np.int64]
    counters: npt.NDArray[np.int64]
    gauges: npt.NDArray[np.int64]
    histograms: npt.NDArray[np.int64]
    bucket_runs: npt.NDArray[np.int64]
    replicas: npt.NDArray[np.int64]
    group_min: npt.NDArray[np.uint64]
    group_max: npt.NDArray[np.uint64]
    # Metric series kept whole: [time offset, its series' last time offset];
    # [value offset, first point's, last point's, kind (0 double, 1 int64, 2 uint64,
    # 3 a varint padded to 10 bytes: imported exponential histogram buckets),
    # first point's time offset, last point's]; and a cumulative point's
    # [start offset, first point's time offset, last point's].
    time_series: npt.NDArray[np.int64]
    series_values: npt.NDArray[np.int64]
    series_start: npt.NDArray[np.int64]

    def scalars(self) -> dict[str, str | int]: ...
    def arrays(self) -> dict[str, npt.NDArray[np.int64] | npt.NDArray[np.uint64]]: ...

PLAN_ARRAYS: dict[str, tuple[type, int]]

def plan_from_arrays(signal: str, size: int, events: int, n_id_groups: int, n_time_groups: int,
                     arrays: dict[str, npt.NDArray[np.int64] | npt.NDArray[np.uint64]]) -> PatchPlan: ...
def scan(signal: str, data: bytes | bytearray | memoryview) -> PatchPlan: ...
def count_events(signal: str, data: bytes | bytearray | memoryview) -> int: ...
def patch(
    plan: PatchPlan,
    data: bytes | bytearray | memoryview,
    now: int,
    jitter_ns: int = 0,
    backdate_ns: int = 0,
    run_start: int = 0,
    step: int = 0,
    replica: int = -1,
    seed: int | None = None,
    id_key: int | None = None,
    send_number: int = 0,
    clock: npt.NDArray[np.int64] | None = None,
    slots: npt.NDArray[np.int64] | None = None,
    head: bytes = b"",
) -> bytes: ...

class Regrouper:
    """Gathers the items of several requests under one ResourceX per distinct
    (resource, schema_url) and one ScopeX per distinct (scope, schema_url)."""

    items: int
    def __init__(self, signal: str, replica_width: int = 0) -> None: ...
    def add(self, data: bytes | bytearray | memoryview, start: int = 0, end: int = -1) -> None: ...
    def build(self) -> bytes: ...

def split(signal: str, data: bytes | bytearray | memoryview, max_bytes: int, replica_width: int = 0) -> list[bytes]: ...
