"""Sender RSS over a long run: `telegen send` (its own process) against
`telegen sink` at 300,000 events/s for 5 minutes (20 s with
TELEGEN_BENCH_QUICK=1), VmRSS sampled every 5 s (1 s quick). Issue target:
flat, and within 1.5x the loaded template bytes plus a fixed overhead.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import telegen
from telegen.sink import SinkProcess

QUICK = os.environ.get("TELEGEN_BENCH_QUICK") == "1"
DURATION = 20 if QUICK else 300
INTERVAL = 1.0 if QUICK else 5.0
RATE = 300_000
# Python, numpy, grpc and the compiled module before any template is loaded,
# plus freed batch buffers kept for reuse (telegen/_memory.py).
FIXED_OVERHEAD_BYTES = 160e6


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return None
    return None


def soak(tmp_path: Path) -> dict:
    templates = tmp_path / "templates"
    telegen.generate(Path(__file__).resolve().parent.parent / "examples" / "small-config.yaml").save(templates)
    template_bytes = sum(p.stat().st_size for p in templates.glob("*.pb"))
    config = tmp_path / "sender.yaml"
    with SinkProcess() as sink:
        config.write_text(f"""
input: {{directory: "{templates}", prefix: small}}
otlp: {{endpoint: "{sink.endpoint}", insecure: true}}
sending: {{rate_limit: {{events_per_second: {RATE}}}, duration: "{DURATION}s", multiplier: 0, concurrency: 16,
          stats_interval: 3600}}
""")
        sender = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples = []
        started = time.monotonic()
        while sender.poll() is None and time.monotonic() - started < DURATION + 60:
            rss = _rss_bytes(sender.pid)
            if rss is not None:
                samples.append((round(time.monotonic() - started, 1), rss))
            time.sleep(INTERVAL)
        output, _ = sender.communicate(timeout=60)
    assert sender.returncode == 0, output
    steady = [rss for t, rss in samples if t >= 2 * INTERVAL]  # after loading
    return {"template_bytes": template_bytes, "samples": samples, "steady_min": min(steady),
            "steady_max": max(steady), "summary": output.strip().splitlines()[-1]}


def test_sender_rss_is_flat(benchmark, tmp_path):
    result = benchmark.pedantic(soak, args=(tmp_path,), rounds=1)
    growth = (result["steady_max"] - result["steady_min"]) / result["steady_min"]
    bound = 1.5 * result["template_bytes"] + FIXED_OVERHEAD_BYTES
    benchmark.extra_info.update(kind="memory", seconds=DURATION, rate=RATE, growth=growth, bound=bound,
                                **{k: v for k, v in result.items() if k != "summary"})
    print(f"\nsender RSS over {DURATION} s at {RATE:,} events/s: {result['steady_min'] / 1e6:.2f} -> "
          f"{result['steady_max'] / 1e6:.2f} MB ({100 * growth:+.2f} %), templates "
          f"{result['template_bytes'] / 1e6:.1f} MB, bound {bound / 1e6:.0f} MB; {result['summary'].strip()}")
    assert growth < 0.02
    assert result["steady_max"] <= bound
