"""`telegen sink --record DIR`: keep every accepted request, per signal, as a
length-delimited stream of the serialized Export*ServiceRequest as it
arrived (gzip bodies inflated), ready for `telegen import`.

Files grow while the sink runs as `recorded-<signal>.pb.part` and take their
final name when it stops, so a finished recording is never half-written; the
`.part` of a sink that was killed holds every request it answered and is
readable up to its last whole record (`telegen import` names the offset where it is cut short).
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..atomic import AtomicFile
from ..errors import SinkError
from ..templates import SIGNALS
from ..varint import encode_varint

RECORD_PREFIX = "recorded"


def _write_whole(out: AtomicFile, record: bytes) -> None:
    """All of `record`, or none of it: a write cut short (a full disk) is
    undone, so the stream stays readable up to its last whole record."""
    start = out.file.tell()
    view = memoryview(record)
    try:
        while view:
            written = out.file.write(view)
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
    except OSError:
        with contextlib.suppress(OSError):
            out.file.truncate(start)
            out.file.seek(start)
        raise


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
        self.failed = 0  # requests that could not be written (and were refused)
        self.error: str | None = None  # the last reason
        self.on_error: Callable[[str], None] | None = None  # hears of the first

    def write(self, signal: str, data: bytes) -> str | None:
        """Append one request; None when it is kept, else why it could not
        be (a full disk): the stream is cut back to its last whole record,
        and the sink refuses the request so that the client sends it again."""
        with self._locks[signal]:
            if self.closed:
                return None
            out = self._files.get(signal)
            try:
                if out is None:
                    out = self._files[signal] = AtomicFile(recorded_path(self.directory, signal),
                                                           self._part(signal), buffered=False)
                _write_whole(out, encode_varint(len(data)) + data)
            except OSError as exc:
                self.failed += 1
                problem = f"cannot record to {self._part(signal)}: {exc.strerror or exc}"
                if self.error is None and self.on_error is not None:
                    self.on_error(problem)
                self.error = problem
                return problem
            # Written unbuffered, so in the kernel before the request is
            # answered: a sink killed (SIGKILL) keeps every request it took.
            self.requests[signal] += 1
            return None

    def close(self) -> list[Path]:
        """Flush and give each stream its final name; the paths written."""
        written = []
        for signal in SIGNALS:
            with self._locks[signal]:
                self.closed = True
                out = self._files.pop(signal, None)
                if out is None:
                    continue
                try:
                    written.append(out.commit())
                except OSError as exc:
                    self.error = f"cannot finish {out.path}: {exc.strerror or exc} (its records are in {out.temporary})"
        return written

    def _part(self, signal: str) -> Path:
        path = recorded_path(self.directory, signal)
        return path.with_name(path.name + ".part")
