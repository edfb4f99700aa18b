"""Generate one config into a temporary directory and print a JSON summary.

Run as its own process by the benchmark so its peak RSS is the generator's
alone: `python benchmarks/generate_once.py examples/generator-config.yaml`.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import telegen


def main(config_path: str) -> None:
    started = time.perf_counter()
    templates = telegen.generate(telegen.GeneratorConfig.from_file(config_path))
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="telegen-bench-") as directory:
        paths = templates.save(directory)
        written = sum(p.stat().st_size for p in paths)
    saved = time.perf_counter()
    print(json.dumps({
        "counts": templates.counts,
        "signal_seconds": templates.metadata["generation_seconds"],
        "generate_seconds": generated - started,
        "save_seconds": saved - generated,
        "bytes_written": written,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
