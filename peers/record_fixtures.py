"""Record the Collector's file exporter output for telegen's tests and the
record-and-replay importer: both formats (OTLP JSON lines; 4-byte big-endian
length-prefixed protobuf), one file per signal, from one pass of a tiny
template set sent by telegen through the Collector `make peers` builds.

    .venv/bin/python peers/record_fixtures.py tests/fixtures/collector
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import telegen  # noqa: E402
from peers import Collector  # noqa: E402 - the tests' helper, found through the path above

TEMPLATES = {"seed": 11,
             "traces": {"count": 4,
                        "spans": {"avg_per_trace": 6, "std_dev": 2, "high_span_traces": {"enabled": False}}},
             "metrics": {"metric_count": 3, "timeseries_per_metric": {"min": 2, "max": 4, "default": 3}},
             "logs": {"count": 12}}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        telegen.generate(telegen.GeneratorConfig.from_dict(TEMPLATES)).save(work / "templates")
        exporters = {f"file/{signal}-{fmt}": {"path": str(work / f"{signal}.{fmt}"), "format": fmt}
                     for signal in ("traces", "metrics", "logs") for fmt in ("json", "proto")}
        # `compression: zstd` (the exporter's default, per-message compression).
        exporters.update({f"file/{signal}-zstd-{fmt}": {"path": str(work / f"{signal}.zstd.{fmt}"), "format": fmt,
                                                        "compression": "zstd"}
                          for signal in ("traces", "metrics", "logs") for fmt in ("json", "proto")})
        pipelines = {signal: [f"file/{signal}-json", f"file/{signal}-proto", f"file/{signal}-zstd-json",
                              f"file/{signal}-zstd-proto"] for signal in ("traces", "metrics", "logs")}
        with Collector(exporters, pipelines, workdir=work) as collector:
            report = telegen.Sender({"input": {"directory": str(work / "templates")},
                                     "otlp": {"endpoint": collector.grpc_endpoint, "insecure": True},
                                     "sending": {"multiplier": 1, "duration": 0}}, write=lambda line: None).run()
            collector.wait_for("otelcol_exporter_sent_log_records", 4 * report.signals["logs"].delivered)
            time.sleep(0.5)
        for signal in ("traces", "metrics", "logs"):
            for fmt in ("json", "proto", "zstd.json", "zstd.proto"):
                shutil.copy(work / f"{signal}.{fmt}", out / f"{signal}.{fmt}")
    counts = {signal: report.signals[signal].delivered for signal in ("traces", "metrics", "logs")}
    print(f"Wrote {out}: {counts}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "tests" / "fixtures" / "collector"))
