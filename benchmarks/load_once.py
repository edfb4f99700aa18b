"""Load a template directory as `telegen send` does, patch every batch once
(touching every page a run touches), and print a JSON summary: load seconds
and the process's memory. Run as its own process by the loading benchmark:
`python benchmarks/load_once.py DIR [CACHE_DIR]`.
"""
from __future__ import annotations

import json
import os
import sys
import time

from telegen import _fastpath
from telegen.send.sender import Sender


def memory(pid: int | str = "self") -> dict[str, int]:
    """Rss, Pss and Anonymous bytes of a process (Linux smaps_rollup), and
    its peak RSS so far (VmHWM): what a pod's memory is sized for."""
    values = {}
    for line in open(f"/proc/{pid}/smaps_rollup").read().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Anonymous"):
            values[key.lower()] = int(rest.split()[0]) * 1024
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmHWM:"):
            values["peak_rss"] = int(line.split()[1]) * 1024
    return values


def main(directory: str, cache_dir: str | None = None) -> None:
    config = {"input": {"directory": directory, "cache_dir": cache_dir},
              "otlp": {"endpoint": "127.0.0.1:1", "insecure": True}}
    sender = Sender(config, write=lambda line: None)
    started = time.perf_counter()
    loaded = sender.load()
    seconds = time.perf_counter() - started
    now = time.time_ns()
    for templates in loaded:
        for batch in templates.batches:
            _fastpath.patch(batch.plan, batch.data, now)
    print(json.dumps({"load_seconds": seconds, **memory(),
                      "template_bytes": sum(os.path.getsize(os.path.join(directory, name))
                                            for name in os.listdir(directory) if name.endswith(".pb"))}))


if __name__ == "__main__":
    main(*sys.argv[1:])
