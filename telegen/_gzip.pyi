"""Type stub for the patchable gzip core (telegen/_gzip.pyx)."""
import numpy as np
import numpy.typing as npt

GZIP_HEADER: bytes
DEFAULT_CHAIN: int

class GzipTemplate:
    """One request compressed once into a patchable gzip member."""

    data: bytes
    start: int
    end: int
    sites: npt.NDArray[np.int64]
    codes: npt.NDArray[np.uint16]
    @property
    def literals(self) -> int: ...

def template_from_parts(data: bytes, start: int, end: int, sites: npt.ArrayLike,
                        codes: npt.ArrayLike) -> GzipTemplate: ...
def compress(data: bytes | bytearray | memoryview, classes: npt.NDArray[np.uint32], start: int = 0, end: int = -1,
             max_chain: int = ...) -> GzipTemplate: ...
def patch(template: GzipTemplate, raw: bytes | bytearray | memoryview, crc: int, head: bytes = b"") -> bytes: ...
