"""`telegen sink` as a separate process on a free loopback port: how the demo
and the benchmarks measure a sender without the receiver sharing its GIL."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..errors import TelegenError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkProcess:
    """`with SinkProcess() as sink:` runs `telegen sink` on 127.0.0.1 until the
    block ends (SIGTERM, so it writes its stats JSON when asked to).

    `endpoint` is its OTLP/gRPC HOST:PORT; with `http`, it serves OTLP/HTTP as
    well, at `http_endpoint` (http://127.0.0.1:PORT; None without `http`)."""

    def __init__(self, stats_json: Path | None = None, output: IO | int = subprocess.DEVNULL,
                 start_timeout: float = 20.0, http: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.http_port = free_port() if http else None
        self.http_endpoint = f"http://127.0.0.1:{self.http_port}" if http else None
        self.stats_json = stats_json
        self.output = output
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SinkProcess:
        command = [sys.executable, "-m", "telegen", "sink", "--listen", self.endpoint, "--interval", "3600"]
        if self.http_port is not None:
            command += ["--listen-http", f"127.0.0.1:{self.http_port}"]
        if self.stats_json is not None:
            command += ["--stats-json", str(self.stats_json)]
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        """Until every port it serves (gRPC, and HTTP) accepts a connection."""
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        waiting = [port for port in (self.port, self.http_port) if port is not None]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TelegenError(f"telegen sink exited early with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2):
                    waiting.pop(0)
                if not waiting:
                    return
            except OSError:
                time.sleep(0.1)
        where = " and ".join(filter(None, (self.endpoint, self.http_endpoint)))
        raise TelegenError(f"telegen sink did not start listening on {where} within {self.start_timeout:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)  # its own shutdown is bounded well below; a loaded machine is slow
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
