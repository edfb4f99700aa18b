"""Type stub for the patchable zstd core (telegen/_zstd.pyx)."""
import numpy as np
import numpy.typing as npt

MAGIC: bytes
DEFAULT_CHAIN: int
DEFAULT_WINDOW_LOG: int
MAX_WINDOW_LOG: int

class ZstdTemplate:
    """One request compressed once into a patchable zstd frame."""

    data: bytes
    start: int
    end: int
    runs: npt.NDArray[np.int64]
    @property
    def literals(self) -> int: ...

def template_from_parts(data: bytes, start: int, end: int, runs: npt.ArrayLike) -> ZstdTemplate: ...
def compress(data: bytes | bytearray | memoryview, classes: npt.NDArray[np.uint32], start: int = 0, end: int = -1,
             max_chain: int = ..., window_log: int = ...) -> ZstdTemplate: ...
def patch(template: ZstdTemplate, raw: bytes | bytearray | memoryview, head: bytes = b"") -> bytes: ...
