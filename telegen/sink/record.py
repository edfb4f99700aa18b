"""`telegen sink --record DIR`: keep every accepted request, per signal, as a
length-delimited stream of the serialized Export*ServiceRequest as it
arrived (gzip bodies inflated), ready for `telegen import`.

Files grow while the sink runs as `recorded-<signal>.pb.part` and take their
final name when it stops, so a finished recording is never half-written; the
`.part` of a sink that was killed holds every request it answered and is
readable up to its last whole record (`telegen import` names the offset where it is cut short).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ..atomic import AtomicFile
from ..errors import SinkError
from ..templates import SIGNALS
from ..varint import encode_varint

RECORD_PREFIX = "recorded"


def recorded_path(directory: str | os.PathLike, signal: str) -> Path:
    return Path(directory) / f"{RECORD_PREFIX}-{signal}.pb"


class Recorder:
    """Appends requests to one stream per signal; thread-safe (one lock per
    signal, a record written whole under it)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"--record: cannot create {self.directory}: {exc.strerror or exc}") from None
        if not os.access(self.directory, os.W_OK):
            raise SinkError(f"--record: {self.directory} is not writable")
        self._files: dict[str, AtomicFile] = {}
        self._locks = {signal: threading.Lock() for signal in SIGNALS}
        self.requests = dict.fromkeys(SIGNALS, 0)
        self.closed = False

    def write(self, signal: str, data: bytes) -> None:
        with self._locks[signal]:
            if self.closed:
                return
            out = self._files.get(signal)
            if out is None:
                out = self._files[signal] = AtomicFile(recorded_path(self.directory, signal), self._part(signal))
            out.write(encode_varint(len(data)) + data)
            # Handed to the kernel before the request is answered: a sink
            # killed (SIGKILL) keeps every request it said it took.
            out.file.flush()
            self.requests[signal] += 1

    def close(self) -> list[Path]:
        """Flush and give each stream its final name; the paths written."""
        written = []
        for signal in SIGNALS:
            with self._locks[signal]:
                self.closed = True
                out = self._files.pop(signal, None)
                if out is None:
                    continue
                written.append(out.commit())
        return written

    def _part(self, signal: str) -> Path:
        path = recorded_path(self.directory, signal)
        return path.with_name(path.name + ".part")
