"""Atomic file writes: a reader sees the old file or the whole new one, and
after a crash or power loss, the same.

Every file telegen writes goes through AtomicFile: written under a
temporary name in the target's directory, flushed and fsynced, renamed over
the target, and the directory fsynced so the rename itself is durable. The
file gets the mode a plain open() would give it (0666 less the umask), not
the 0600 of a temporary file: template sets and reports are read by other
users and pods.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from .errors import OutputError


def _umask() -> int:
    # The only portable way to read it is to set it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFile:
    """A binary file that replaces `path` on commit() (or at the end of a
    `with` block that raised nothing) and leaves no trace on discard().
    `temporary`: the name to write under (default: a hidden, unique one)."""

    def __init__(self, path: str | os.PathLike, temporary: str | os.PathLike | None = None,
                 buffered: bool = True) -> None:
        self.path = Path(path)
        if temporary is None:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            self.temporary = Path(name)
        else:
            self.temporary = Path(temporary)
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o666 & ~_umask())
        # Unbuffered (buffered=False): each write() is one system call, whose
        # byte count says how much landed (a full disk cuts it short).
        self.file: BinaryIO = os.fdopen(fd, "wb") if buffered else os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes | memoryview) -> int:
        return self.file.write(data)

    def writelines(self, chunks: Iterable[bytes | memoryview]) -> None:
        self.file.writelines(chunks)

    def flush_to_disk(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> Path:
        if not self.file.closed:
            self.flush_to_disk()
        os.replace(self.temporary, self.path)
        sync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # closing flushes, which fails again on the error that brought us here (a full disk)
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def commit_all(files: Iterable[AtomicFile]) -> list[Path]:
    """Commit files that belong together, all or none: all on disk first,
    then renamed into place one by one; where a rename fails (a directory
    in the way, a name taken on another file system), the ones already
    renamed are put back as they were (the old file, or no file), so a set
    is never left half new."""
    files = list(files)
    try:
        for f in files:
            f.flush_to_disk()
    except BaseException:
        for f in files:
            f.discard()
        raise
    done: list[tuple[AtomicFile, Path | None]] = []  # renamed, with the old file's hard link
    try:
        for f in files:
            if f.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(f.path))
            done.append((f, _keep_old(f.path)))
            try:
                os.replace(f.temporary, f.path)
            except BaseException:
                _drop(done.pop()[1])
                raise
    except BaseException:
        for renamed, old in reversed(done):
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, renamed.path)
                else:
                    os.unlink(renamed.path)
        for f in files:
            f.discard()
        raise
    for _, old in done:
        _drop(old)
    for directory in {f.path.parent for f in files}:
        sync_directory(directory)
    return [f.path for f in files]


def _keep_old(path: Path) -> Path | None:
    """A hard link to the file at `path` (None where there is none), to put back."""
    if not path.exists():
        return None
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(old)
    try:
        os.link(path, old)
    except OSError:  # a file system without hard links
        shutil.copy2(path, old)
    return old


def _drop(old: Path | None) -> None:
    if old is not None:
        with contextlib.suppress(OSError):
            os.unlink(old)


def sync_directory(directory: str | os.PathLike) -> None:
    """Make a rename in `directory` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """`data` to `path`, atomically and durably; OutputError (an OSError)
    naming the file when it cannot be (a full disk: nothing is left)."""
    try:
        with AtomicFile(path) as out:
            out.write(data)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
