"""One sender of a fleet, as a Ray actor: shard i of N, one core.

Plain Python here; the runner makes it a Ray actor class at run time, so
importing telegen never needs Ray. The driver calls, in order: `prepare`
(where am I, which template files can I read), `load` (with shipped copies of
the files this node lacks), `start`, then `snapshot` every second or so, and
`stop`/`result` at the end. Methods run on the actor's own threads (it is
created with max_concurrency > 1), so `snapshot` answers while the sender runs.
"""
from __future__ import annotations

import collections
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..send.config import SenderConfig
from ..send.load.cache import file_lock
from ..send.report import SendReport
from ..send.search.control import RateControl
from ..send.search.local import events_per_request
from ..send.sender import Sender

# Error lines kept between two snapshots; more are counted, not kept.
MAX_HELD_LINES = 100


def node_dir(run_id: str, node_id: str) -> Path:
    """This run's scratch directory on one node: shipped templates, load cache."""
    return Path(tempfile.gettempdir()) / f"telegen-fleet-{run_id}" / node_id[:16]


class SenderActor:
    def __init__(self, config: dict[str, Any], index: int, count: int, run_id: str) -> None:
        import ray

        _undo_worker_niceness()
        self.index = index
        self.run_id = run_id
        self.node_id = ray.get_runtime_context().get_node_id()
        self.scratch = node_dir(run_id, self.node_id)
        self.config = SenderConfig.from_dict(config, env={}, overrides={
            "sending.shard.index": index, "sending.shard.count": count,
            "sending.processes": 1, "sending.stats_interval": 3600})
        self.sender: Sender | None = None
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.report: SendReport | None = None
        self.error: BaseException | None = None
        self.current: Any = None  # the engine's counts-so-far function, once sending starts
        self.control: RateControl | None = None  # a capacity search's rate for this sender
        self.lines: collections.deque[str] = collections.deque(maxlen=MAX_HELD_LINES)
        self.lock = threading.Lock()

    def prepare(self, expected: dict[str, int]) -> dict[str, Any]:
        """Where this sender runs, and which template files (signal -> size on
        the driver) it cannot read here as they are."""
        missing = []
        for signal, path in self.config.input.files().items():
            try:
                if os.path.getsize(path) != expected.get(signal, -1):
                    missing.append(signal)
            except OSError:
                missing.append(signal)
        return {"index": self.index, "node": self.node_id, "host": socket.gethostname(), "pid": os.getpid(),
                "missing": missing}

    def load(self, shipped: dict[str, Any]) -> dict[str, Any]:
        """Load the templates: shipped copies (object refs, one per file,
        fetched once per node) for the files this node lacks, and a load cache
        in this node's scratch directory (unless the config names one), so the
        senders of a node map one copy."""
        import ray

        overrides: dict[str, Any] = {}
        files = self.config.input.files()
        for signal, ref in shipped.items():
            local = self.scratch / "templates" / Path(files[signal]).name
            with file_lock(local):
                if not local.exists():
                    data = ray.get(ref)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(local, data)
            overrides[f"input.{signal}"] = str(local)
        if not self.config.input.cache_dir:
            overrides["input.cache_dir"] = str(self.scratch / "cache")
        if overrides:
            self.config = self.config.with_overrides(overrides)
        lines: list[str] = []
        self.sender = Sender(self.config, write=lines.append)
        started = time.monotonic()
        loaded = self.sender.load()
        self.sender.write = self._hold
        return {"seconds": time.monotonic() - started, "batches": sum(len(t.batches) for t in loaded),
                "largest_request": events_per_request(loaded),
                "events_per_pass_by_signal": {t.signal: t.events_per_pass for t in loaded},
                "events_per_pass": sum(t.events_per_pass for t in loaded), "node": self.node_id,
                "cache_built": sum(line.startswith("Saved the load cache") for line in lines),
                "shipped": sorted(shipped),
                "warnings": [line for line in lines if line.startswith(("Cannot use", "Rebuilding"))]}

    def start(self, search: bool = False) -> None:
        """Start sending: at the configured rate, or (`search`) at the rate
        the driver's capacity search sets (set_rate)."""
        assert self.sender is not None, "load first"
        if search:
            self.control = RateControl(0.0)
        self.thread = threading.Thread(target=self._run, name="telegen-fleet-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.report = self.sender.run(self.stop_event, on_start=self._started, rate_control=self.control)
        except BaseException as exc:  # reported to the driver by result()
            self.error = exc

    def _started(self, current) -> None:
        self.current = current

    def _hold(self, line: str) -> None:
        if line.startswith("error:"):
            with self.lock:
                self.lines.append(line)

    def snapshot(self) -> dict[str, Any]:
        """Counts so far, whether the sender has finished, and error lines since the last call."""
        with self.lock:
            lines, self.lines = list(self.lines), collections.deque(maxlen=MAX_HELD_LINES)
        done = self.thread is not None and not self.thread.is_alive()
        report = self.report if done and self.report is not None else (self.current() if self.current else None)
        return {"report": report, "done": done, "lines": lines}

    def set_rate(self, rate: float) -> None:
        """This sender's share of a search's rate, from now on."""
        assert self.control is not None, "start(search=True) first"
        self.control.set(rate)

    def counts(self) -> SendReport | None:
        """The counts so far (None before sending started); unlike snapshot,
        the error lines are left for the driver's watch."""
        return self.current() if self.current else None

    def stop(self) -> None:
        self.stop_event.set()

    def result(self) -> SendReport:
        """The final report, once the sender has drained (raises what it raised)."""
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def worker_setup_hook(package_parent: str) -> Callable[[], None]:
    """The fleet's Ray `worker_process_setup_hook` (the runner sets it): each
    worker imports telegen from `package_parent`, the directory the driver
    imported it from, or (where this node has no such directory) from its own
    sys.path, before it runs anything of the fleet's.

    Why: Ray puts the driver's working directory first on every worker's
    sys.path (ray/_private/worker.py connect(): the current directory goes into
    job_config._py_driver_sys_path, and each worker inserts those at
    sys.path[0] before its first task). Started inside a clone of telegen, the
    workers would import the clone's source tree (no compiled _fastpath there
    unless built in place) instead of the installed package the driver runs.
    The hook runs at worker start, before that insert; once `telegen` is in
    sys.modules, its submodules come from its own directory, wherever the
    fleet was started.

    A closure, so Ray's cloudpickle ships it by value: loading the hook needs
    no telegen. It never raises: a worker that cannot import telegen at all
    fails on the actor's own import, which the driver reports."""
    def setup() -> None:
        import importlib.machinery
        import importlib.util
        import os
        import sys

        try:
            if "telegen" not in sys.modules and os.path.isfile(os.path.join(package_parent, "telegen",
                                                                            "__init__.py")):
                spec = importlib.machinery.PathFinder.find_spec("telegen", [package_parent])
                if spec is not None and spec.loader is not None:
                    module = importlib.util.module_from_spec(spec)
                    sys.modules["telegen"] = module
                    try:
                        spec.loader.exec_module(module)
                    except BaseException:
                        del sys.modules["telegen"]
                        raise
            import telegen.fleet.actor  # noqa: F401 - the sender and its compiled modules, from there
        except Exception:
            pass

    return setup


def _undo_worker_niceness() -> None:
    """Ray starts workers at nice 15 unless its cluster says otherwise: a sender
    would yield its core to anything else on the node. Back to normal where
    the process may (root, or CAP_SYS_NICE); elsewhere it stays as Ray set it."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except (OSError, AttributeError):
        pass


def remove_scratch(run_id: str, node_id: str) -> None:
    """Delete this run's scratch directory on one node (a Ray task pinned there)."""
    import shutil

    scratch = node_dir(run_id, node_id)
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        scratch.parent.rmdir()  # the run's directory, once no node is left in it
    except OSError:
        pass
