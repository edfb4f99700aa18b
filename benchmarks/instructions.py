"""Instructions per event on the send path, counted by valgrind's callgrind:
repeatable for the same binary and inputs, whatever else the machine does.
What make bench-check guards where seconds are too noisy to.

    python benchmarks/instructions.py OUT.json

Three figures per signal, on one seed-size batch (100 traces, 1000 points,
1000 log records):
- kernel: the compiled patch alone (callgrind collects inside
  `_fastpath._patch` only), per event;
- send path: everything `engine.requests_for` does per send (the patch, the
  Python around it, the cut into pieces), per event. The sends are driven
  through itertools.starmap and callgrind collects inside its C function
  `starmap_next` only, which nothing else here calls: start-up, imports and
  loading are not counted;
- send path, gzip: the same over OTLP/HTTP with compression gzip, the
  patchable stream (the patch, the CRC32, the literal codes written into a
  copy of the compressed template); compressing the batch once is not counted.
The batches are built natively first and saved in a load cache, so the runs
under valgrind only map them.
"""
from __future__ import annotations

import collections
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

N = 30  # sends of each batch per run
KERNEL_SYMBOL = "__pyx_f_7telegen_9_fastpath__patch"
SEND_SYMBOL = "starmap_next"
SIGNALS = ("traces", "metrics", "logs")
SIZES = {"traces": 100, "metrics": 1000, "logs": 1000}
KINDS = ("kernel", "send_path", "send_path_gzip")


def prepare(directory: Path) -> None:
    """Templates as the benchmarks' conftest makes them, and their load cache."""
    import telegen
    from telegen.generate.config import (
        GeneratorConfig,
        HighSpanTracesConfig,
        LogsConfig,
        MetricsConfig,
        SpansConfig,
        TracesConfig,
    )
    from telegen.send.sender import Sender

    templates = telegen.generate(GeneratorConfig(
        seed=5, traces=TracesConfig(count=300, spans=SpansConfig(high_span_traces=HighSpanTracesConfig(enabled=False))),
        metrics=MetricsConfig(metric_count=30), logs=LogsConfig(count=3000)))
    templates.save(directory / "templates")
    Sender(config(directory), write=lambda line: None).load()


def config(directory: Path, gzip: bool = False) -> dict:
    otlp = ({"endpoint": "http://127.0.0.1:1", "protocol": "http/protobuf", "compression": "gzip"} if gzip
            else {"endpoint": "127.0.0.1:1", "insecure": True})
    return {"input": {"directory": str(directory / "templates"), "cache_dir": str(directory / "cache")},
            "otlp": otlp, "sending": {"batch_size": SIZES}}


def sends(directory: str, count: str, signal: str, path: str = "send_path") -> None:
    """Under valgrind: `count` sends of one signal's first batch."""
    from telegen.send.engine import ScheduleItem, prepare_compression, requests_for
    from telegen.send.engine.clock import TraceClock
    from telegen.send.load.correlate import correlate
    from telegen.send.sender import Sender

    sender = Sender(config(Path(directory), gzip=path == "send_path_gzip"), write=lambda line: None)
    settings = sender.settings()
    loaded = {t.signal: t for t in prepare_compression(correlate(sender.load()), settings)}
    # Keyed ids, as a run sends them: logs and exemplars read the trace clock.
    clock = TraceClock(len(loaded["traces"].batches), key=5)
    for slot in range(clock.rows):
        clock.record(slot, 0, 1_800_000_000_000_000_000)
    item = ScheduleItem(signal, loaded[signal].batches[0], -1)
    calls = ((item, settings, 1_800_000_000_000_000_000, step, None, step, clock) for step in range(int(count)))
    collections.deque(itertools.starmap(requests_for, calls), maxlen=0)


def callgrind(directory: Path, signal: str, symbol: str, path: str = "send_path") -> int:
    """Instructions callgrind collected inside `symbol` in one run of N sends."""
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", f"--toggle-collect={symbol}",
                   sys.executable, __file__, "--sends", str(directory), str(N), signal, path]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        match = re.search(r"Collected : (\d+)", result.stderr)
        if match is None:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{result.stderr[-2000:]}")
        return int(match.group(1))


def measure() -> dict:
    with tempfile.TemporaryDirectory(prefix="telegen-instructions-") as scratch:
        directory = Path(scratch)
        prepare(directory)
        from telegen.send.sender import Sender
        loaded = Sender(config(directory), write=lambda line: None).load()
        events = {t.signal: t.batches[0].events for t in loaded}
        out: dict = {"sends": N, "events": events, "kernel": {}, "send_path": {}, "send_path_gzip": {}}
        for signal in SIGNALS:
            out["kernel"][signal] = callgrind(directory, signal, KERNEL_SYMBOL) / (N * events[signal])
            for path in ("send_path", "send_path_gzip"):
                out[path][signal] = callgrind(directory, signal, SEND_SYMBOL, path) / (N * events[signal])
        return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sends"]:
        sends(*sys.argv[2:6])
    else:
        result = measure()
        Path(sys.argv[1]).write_text(json.dumps(result, indent=2) + "\n")
        for kind in KINDS:
            print(f"{kind:14s} " + "  ".join(f"{s} {result[kind][s]:,.1f}" for s in SIGNALS) + " instructions/event")
