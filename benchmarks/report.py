"""Turn a pytest-benchmark JSON run into the published figures, and guard them.

    python benchmarks/report.py RAW.json OUT_DIR        # results.json, results.md, chart.png
    python benchmarks/report.py --check RESULTS BASELINE  # exit 1 if a ratio fell > 10 %

Only ratios measured within one run are guarded: absolute rates on a shared
machine move too much to compare across runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# The patchable gzip benchmarks' guarded ratios (benchmarks/test_gzip.py), higher is better:
# zlib-1 bytes / patchable bytes, zlib-1 CPU / (patch + patchable) CPU, and the
# sender's CPU per event uncompressed / with patchable gzip, over OTLP/HTTP.
GZIP_RATIOS = {"gzip_size": "gzip/size zlib-1 over patchable", "gzip_cpu": "gzip/cpu zlib-1 over patchable",
               "gzip_send": "gzip/send sender CPU none over patchable",
               # benchmarks/test_zstd.py, likewise: zstd-1 bytes / patchable zstd bytes, zstd-1 CPU /
               # (patch + patchable zstd) CPU, and the sender's CPU per event uncompressed / with patchable
               # zstd at an equal rate (the "at most 1.2x" is a ratio of 0.83 or more).
               "zstd_size": "zstd/size zstd-1 over patchable", "zstd_cpu": "zstd/cpu zstd-1 over patchable",
               "zstd_equal_rate": "zstd/equal rate sender CPU none over patchable"}
MARGIN = 0.10  # the least room below the lowest of the calibration runs, as a share of the median


def condense(raw: dict) -> dict:
    out: dict = {"machine": {k: raw.get("machine_info", {}).get(k) for k in ("node", "cpu", "python_version")},
                 "datetime": raw.get("datetime"), "ratios": {}, "rows": []}
    out["machine"]["cpu"] = (raw.get("machine_info", {}).get("cpu") or {}).get("brand_raw")
    for bench in raw.get("benchmarks", []):
        info = bench.get("extra_info", {})
        kind = info.get("kind")
        row = {"name": bench["name"], "kind": kind, **{k: v for k, v in info.items() if k != "kind"}}
        out["rows"].append(row)
        if kind == "ceiling":
            out["ratios"][f"telegen/ceiling {info['signal']} {info['compression']}"] = info["ratio"]
        elif kind in ("naive", "sdk", "telemetrygen"):
            # gRPC keeps the names the baseline has had; other carriers say theirs.
            carrier = "" if info.get("protocol", "grpc") == "grpc" else f" {info['protocol']}"
            out["ratios"][f"telegen/{kind} {info['signal']} {info.get('compression', 'none')}{carrier}"] = info["ratio"]
        elif kind in GZIP_RATIOS:
            out["ratios"][f"{GZIP_RATIOS[kind]} {info['signal']}"] = info["ratio"]
    return out


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [f"# telegen benchmark results ({results['datetime']})", "",
             f"Machine: {results['machine'].get('cpu')}, Python {results['machine'].get('python_version')}", ""]
    ceiling = [r for r in rows if r["kind"] == "ceiling"]
    if ceiling:
        lines += ["## End to end against `telegen sink` (medians of alternating rounds)", "",
                  "| signal | gzip | ceiling events/s | telegen events/s | ratio | sender CPU s / M events |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['signal']} | {r['compression']} | {r['ceiling']['events_per_second']:,.0f} | "
                  f"{r['telegen']['events_per_second']:,.0f} | {r['ratio']:.2f} | "
                  f"{r['telegen']['cpu_s_per_million']:.2f} |" for r in ceiling]
        lines.append("")
    peers = [r for r in rows if r["kind"] in ("naive", "sdk")]
    if peers:
        lines += ["## Peers, same run", "",
                  "| signal | gzip | peer | peer events/s | telegen events/s | telegen / peer |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['signal']} | {r.get('compression', 'none')} | "
                  f"{'naive protobuf replay' if r['kind'] == 'naive' else 'OpenTelemetry SDK'} | "
                  f"{r.get('naive', r.get('sdk')):,.0f} | {r['telegen']:,.0f} | {r['ratio']:.1f}x |" for r in peers]
        lines.append("")
    rivals = [r for r in rows if r["kind"] == "telemetrygen"]
    if rivals:
        lines += ["## telegen beside telemetrygen (one core each, same sink, medians of alternating rounds)", "",
                  "| signal | carrier | gzip | tool | events/s | MB/s | payload B/event | wire B/event "
                  "| CPU s / M events | events per CPU-s, telegen / telemetrygen |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rivals:
            for tool in ("telegen", "telemetrygen"):
                f = r[tool]
                carrier = {"grpc": "gRPC", "http": "OTLP/HTTP"}.get(r.get("protocol", "grpc"), r.get("protocol"))
                client = r.get("grpc_client", "")
                name = f"{tool} ({'libcurl' if client == 'curl' else client})" if tool == "telegen" and client \
                    else tool
                per_cpu = (f"{r['telemetrygen']['cpu_s_per_million'] / f['cpu_s_per_million']:.1f}x"
                           if tool == "telegen" else "")
                lines.append(f"| {r['signal']} | {carrier} | {r['compression']} | {name} | "
                             f"{f['events_per_second']:,.0f} | "
                             f"{f['mb_per_second']:,.1f} | {f['payload_bytes_per_event']:,.0f} | "
                             f"{f['wire_bytes_per_event']:,.0f} | {f['cpu_s_per_million']:.2f} | {per_cpu} |")
        lines.append("")
    clients = [r for r in rows if r["kind"] == "http_clients"]
    for r in clients:
        lines += ["## OTLP/HTTP clients (the same traces batches, same concurrency, medians of alternating rounds)", "",
                  "| client | spans/s | sender CPU s / M spans |", "|---|---|---|"]
        lines += [f"| {name} | {f['events_per_second']:,.0f} | {f['cpu_s_per_million']:.3f} |"
                  for name, f in r["clients"].items()]
        lines.append("")
    carriers = [r for r in rows if r["kind"] == "http_vs_grpc"]
    if carriers:
        lines += ["## OTLP/HTTP beside gRPC (`telegen send`, one process, medians of alternating rounds)", "",
                  "| signal | gzip | gRPC events/s | HTTP events/s | HTTP / gRPC | gRPC CPU s / M | HTTP CPU s / M |"
                  " CPU HTTP / gRPC |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['signal']} | {r['compression']} | {r['grpc']['events_per_second']:,.0f} | "
                  f"{r['http']['events_per_second']:,.0f} | {r['ratio']:.2f} | {r['grpc']['cpu_s_per_million']:.2f} | "
                  f"{r['http']['cpu_s_per_million']:.2f} | {r['cpu_ratio']:.2f} |" for r in carriers]
        lines.append("")
    sizes = {r["signal"]: r for r in rows if r["kind"] == "gzip_size"}
    cpus = {r["signal"]: r for r in rows if r["kind"] == "gzip_cpu"}
    if sizes or cpus:
        lines += ["## gzip: patchable beside zlib (per event; CPU on one core, medians of alternating rounds)", "",
                  "| signal | raw B | zlib-1 B | zlib-6 B | patchable B | patchable / zlib-1 | patch ns "
                  "| patch + patchable ns | zlib-1 ns | zlib-6 ns | zlib-1 / (patch + patchable) "
                  "| compressed at load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for signal in ("traces", "metrics", "logs"):
            size, cpu = sizes.get(signal, {}), cpus.get(signal, {})
            b, ns = size.get("bytes_per_event", {}), cpu.get("ns_per_event", {})
            cells = [_cell(b, "raw", ".0f"), _cell(b, "zlib1", ".1f"), _cell(b, "zlib6", ".1f"),
                     _cell(b, "patchable", ".1f"),
                     f"{1 / size['ratio']:.2f}x" if size else "-",
                     _cell(ns, "patch", ".0f"), _cell(ns, "patch+patchable", ".0f"), _cell(ns, "zlib1", ".0f"),
                     _cell(ns, "zlib6", ".0f"), f"{cpu['ratio']:.1f}x" if cpu else "-",
                     f"{size['compress_mb_per_second']:.0f} MB/s" if size else "-"]
            lines.append(f"| {signal} | {' | '.join(cells)} |")
        lines.append("")
    sends = [r for r in rows if r["kind"] == "gzip_send"]
    if sends:
        lines += ["## gzip end to end over OTLP/HTTP (`telegen send` to `telegen sink`, medians of alternating rounds)",
                  "", "| signal | body | events/s | sender CPU s / M | sink CPU s / M | wire B / event |",
                  "|---|---|---|---|---|---|"]
        for r in sends:
            for name, label in (("none", "uncompressed"), ("patchable", "gzip, patchable"), ("zlib", "gzip, zlib-6")):
                f = r[name]
                lines.append(f"| {r['signal']} | {label} | {f['events_per_second']:,.0f} | "
                             f"{f['cpu_s_per_million']:.2f} | {f['sink_cpu_s_per_million']:.2f} | "
                             f"{f['wire_bytes_per_event']:.0f} |")
        lines.append("")
    lines += _zstd_lines(rows)
    sweep = [r for r in rows if r["kind"] == "batch_sweep"]
    if sweep:
        lines += ["## Batch size (traces per batch)", "", "| traces per batch | spans/s | sender CPU s / M spans |",
                  "|---|---|---|"]
        lines += [f"| {r['batch_traces']} | {r['events_per_second']:,.0f} | {r['cpu_s_per_million']:.2f} |"
                  for r in sweep]
        lines.append("")
    procs = [r for r in rows if r["kind"] == "processes"]
    if procs:
        lines += ["## Worker processes (traces)", "", "| processes | gzip | spans/s | sender CPU s / M spans |",
                  "|---|---|---|---|"]
        lines += [f"| {r['processes']} | {r.get('compression', 'none')} | {r['events_per_second']:,.0f} | "
                  f"{r['cpu_s_per_million']:.2f} |" for r in procs]
        lines.append("")
    memory = [r for r in rows if r["kind"] == "memory"]
    if memory:
        lines += ["## Sender memory", "", "| run | RSS after loading | RSS at the end of the run | growth | bound |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['seconds']} s at {r['rate']:,} events/s | {r['steady_min'] / 1e6:.2f} MB | "
                  f"{r['steady_max'] / 1e6:.2f} MB | {100 * r['growth']:+.2f} % | {r['bound'] / 1e6:.0f} MB |"
                  for r in memory]
        lines.append("")
    loading = [r for r in rows if r["kind"] == "loading"]
    for r in loading:
        lines += [f"## Loading the full example config ({r['template_bytes'] / 1e6:,.0f} MB of templates)", "",
                  f"Medians of {r['runs']} fresh processes; RSS after loading and one patch of every batch, "
                  f"and the peak while loading (bound for both: 1.3 x the templates + 100 MB = "
                  f"{r['rss_bound'] / 1e6:,.0f} MB).", "",
                  "| load | seconds | RSS | peak RSS | of it anonymous |", "|---|---|---|---|---|"]
        names = {"in_memory": "in memory", "cache_cold": "load cache, cold (built and saved)",
                 "cache_warm": "load cache, warm (mapped)"}
        lines += [f"| {label} | {r[key]['load_seconds']:.2f} | {r[key]['rss'] / 1e6:,.0f} MB | "
                  f"{r[key]['peak_rss'] / 1e6:,.0f} MB | {r[key]['anonymous'] / 1e6:,.0f} MB |"
                  if "peak_rss" in r[key] else
                  f"| {label} | {r[key]['load_seconds']:.2f} | {r[key]['rss'] / 1e6:,.0f} MB | | "
                  f"{r[key]['anonymous'] / 1e6:,.0f} MB |" for key, label in names.items()]
        lines.append("")
    pairs = [r for r in rows if r["kind"] == "two_senders"]
    for r in pairs:
        lines += [f"## Two senders on one machine ({r['rate']:,} events/s together, {r['seconds']} s)", "",
                  "| senders | RSS of each | RSS total | PSS total | anonymous total |", "|---|---|---|---|---|"]
        names = {"separate": "each loads its own", "shared_cache": "one shared `cache_dir`"}
        lines += [f"| {label} | {r[key]['rss_each'] / 1e6:,.0f} MB | {r[key]['rss_total'] / 1e6:,.0f} MB | "
                  f"{r[key]['pss_total'] / 1e6:,.0f} MB | {r[key]['anonymous_total'] / 1e6:,.0f} MB |"
                  for key, label in names.items()]
        lines.append("")
    fleet = [r for r in rows if r["kind"] == "fleet"]
    if fleet:
        lines += ["## `telegen fleet`, local Ray, unthrottled", "",
                  "| senders | fleet events/s | per sender | one plain `telegen send`, same run "
                  "| driver CPU per sender-second |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['senders']} | {r['events_per_second']:,.0f} | "
                  f"{', '.join(f'{x:,.0f}' for x in r['per_sender'])} | {r['plain_send']:,.0f} | "
                  f"{1000 * r['driver_cpu_per_sender_second']:.1f} ms |" for r in fleet]
        lines.append("")
    fleet_rate = [r for r in rows if r["kind"] == "fleet_rate"]
    if fleet_rate:
        lines += ["## Fleet rate limit", "", "| target events/s (fleet-wide) | achieved | error |", "|---|---|---|"]
        lines += [f"| {r['target']:,} | {r['events_per_second']:,.0f} | {100 * r['error']:+.2f} % |"
                  for r in fleet_rate]
        lines.append("")
    rate = [r for r in rows if r["kind"] == "rate"]
    if rate:
        lines += ["## Rate limit", "", "| target events/s | achieved | error |", "|---|---|---|"]
        lines += [f"| {r['target']:,} | {r['achieved']:,.0f} | {100 * r['error']:+.2f} % |" for r in rate]
        lines.append("")
    imports = [r for r in rows if r["kind"] == "import"]
    if imports:
        lines += ["## telegen import", "", "| capture format | events | seconds | events/s | MB/s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['format']} | {r['events']:,} | {r['seconds']:.2f} | {r['events_per_second']:,.0f} | "
                  f"{r['mb_per_second']:.1f} |" for r in imports]
        lines.append("")
    staged = [r for r in rows if r["kind"] == "stage_rate"]
    if staged:
        lines += ["## Ramping stages", "", "| stage | planned | target events/s (its average) | achieved | error |",
                  "|---|---|---|---|---|"]
        lines += [f"| {s['stage']} | {s['from']:,.0f} -> {s['to']:,.0f}/s | {s['target']:,.0f} | "
                  f"{s['achieved']:,.0f} | {100 * s['error']:+.2f} % |" for r in staged for s in r["stages"]]
        lines.append("")
    other = [r for r in rows if r["kind"] is None and ("events_per_second" in r or "spans_per_s" in r)]
    if other:
        lines += ["## Kernel and generation", "", "| benchmark | figure |", "|---|---|"]
        for r in other:
            if "events_per_second" in r:
                lines.append(f"| {r['name']} | {r['events_per_second'] / 1e6:.1f} M events/s "
                             f"({r['bytes_per_second'] / 1e9:.1f} GB/s) |")
            else:
                lines.append(f"| {r['name']} | {r['spans_per_s']:,.0f} spans/s, {r['series_per_s']:,.0f} series/s, "
                             f"{r['logs_per_s']:,.0f} logs/s, peak RSS {r['peak_rss_bytes'] / 1e6:.0f} MB |")
        lines.append("")
    return "\n".join(lines)


ZSTD_BODIES = (("none", "uncompressed"), ("zlib", "gzip, zlib-6 per request"), ("patchable_gzip", "gzip, patchable"),
               ("library", "zstd, zstd-1 per request"), ("patchable", "zstd, patchable"))


def _zstd_lines(rows: list[dict]) -> list[str]:
    """benchmarks/test_zstd.py's tables: bytes and per-send CPU, then the compression table end to end."""
    lines: list[str] = []
    sizes = {r["signal"]: r for r in rows if r["kind"] == "zstd_size"}
    cpus = {r["signal"]: r for r in rows if r["kind"] == "zstd_cpu"}
    if sizes or cpus:
        lines += ["## zstd: patchable beside zstd-1 and patchable gzip (per event; CPU on one core, medians of "
                  "alternating rounds)", "",
                  "| signal | raw B | zstd-1 B | patchable gzip B | patchable zstd B | / zstd-1 "
                  "| / patchable gzip | patch ns | patch + patchable zstd ns | patch + patchable gzip ns | zstd-1 ns "
                  "| compressed at load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for signal in ("traces", "metrics", "logs"):
            size, cpu = sizes.get(signal, {}), cpus.get(signal, {})
            b, ns = size.get("bytes_per_event", {}), cpu.get("ns_per_event", {})
            cells = [_cell(b, "raw", ".0f"), _cell(b, "zstd1", ".1f"), _cell(b, "patchable_gzip", ".1f"),
                     _cell(b, "patchable", ".1f"), f"{1 / size['ratio']:.2f}x" if size else "-",
                     f"{1 / size['gzip_ratio']:.2f}x" if size else "-",
                     _cell(ns, "patch", ".0f"), _cell(ns, "patch+patchable", ".0f"),
                     _cell(ns, "patch+patchable_gzip", ".0f"), _cell(ns, "zstd1", ".0f"),
                     f"{size['compress_mb_per_second']:.0f} MB/s" if size else "-"]
            lines.append(f"| {signal} | {' | '.join(cells)} |")
        lines.append("")
    sends = [r for r in rows if r["kind"] == "zstd_send"]
    if sends:
        lines += ["## Compression end to end over OTLP/HTTP (`telegen send` to `telegen sink`, medians of alternating "
                  "rounds)", "", "| signal | body | events/s | sender CPU s / M | / uncompressed | sink CPU s / M "
                  "| wire B / event |", "|---|---|---|---|---|---|---|"]
        for r in sends:
            for name, label in ZSTD_BODIES:
                if name not in r:
                    continue
                f = r[name]
                lines.append(f"| {r['signal']} | {label} | {f['events_per_second']:,.0f} | "
                             f"{f['cpu_s_per_million']:.2f} | "
                             f"{f['cpu_s_per_million'] / r['none']['cpu_s_per_million']:.2f}x | "
                             f"{f['sink_cpu_s_per_million']:.2f} | {f['wire_bytes_per_event']:.0f} |")
        lines.append("")
    carriers = [r for r in rows if r["kind"] == "grpc_carriers"]
    if carriers:
        lines += ["## gRPC carriers at an equal rate (sender CPU s / M events; `telegen sink`, medians of alternating "
                  "rounds)", "", "| signal | compression | rate | OTLP/HTTP | gRPC on grpcio | gRPC on libcurl "
                  "| libcurl / HTTP | grpcio / HTTP |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['signal']} | {r['compression']} | {r['rate']:,} | {r['http']['cpu_s_per_million']:.3f} | "
                  f"{r['grpcio']['cpu_s_per_million']:.3f} | {r['curl']['cpu_s_per_million']:.3f} | "
                  f"{r['curl']['cpu_s_per_million'] / r['http']['cpu_s_per_million']:.2f}x | "
                  f"{r['grpcio']['cpu_s_per_million'] / r['http']['cpu_s_per_million']:.2f}x |" for r in carriers]
        lines.append("")
    equal = [r for r in rows if r["kind"] == "zstd_equal_rate"]
    if equal:
        lines += [f"## Sender CPU at an equal rate ({equal[0]['rate']:,} events/s, OTLP/HTTP to `telegen sink`)", "",
                  "| signal | uncompressed CPU s / M | patchable gzip | patchable zstd | zstd / uncompressed |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['signal']} | {r['none']['cpu_s_per_million']:.3f} | "
                  f"{r['patchable_gzip']['cpu_s_per_million']:.3f} | {r['patchable']['cpu_s_per_million']:.3f} | "
                  f"{1 / r['ratio']:.2f}x |" for r in equal]
        lines.append("")
    return lines


def _cell(values: dict, key: str, spec: str) -> str:
    return format(values[key], spec) if key in values else "-"


def chart(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    signals = ["traces", "metrics", "logs"]
    methods: dict[str, dict[str, float]] = {"transport ceiling": {}, "telegen send": {},
                                            "telegen send, OTLP/HTTP": {}, "telemetrygen (Go)": {},
                                            "naive replay": {}, "OpenTelemetry SDK": {}}
    for r in rows:
        if r.get("compression", "none") != "none":
            continue
        if r["kind"] == "ceiling":
            methods["transport ceiling"][r["signal"]] = r["ceiling"]["events_per_second"]
            methods["telegen send"][r["signal"]] = r["telegen"]["events_per_second"]
        elif r["kind"] == "naive":
            methods["naive replay"][r["signal"]] = r["naive"]
        elif r["kind"] == "sdk":
            methods["OpenTelemetry SDK"][r["signal"]] = r["sdk"]
        elif r["kind"] == "telemetrygen":
            methods["telemetrygen (Go)"][r["signal"]] = r["telemetrygen"]["events_per_second"]
        elif r["kind"] == "http_vs_grpc":
            methods["telegen send, OTLP/HTTP"][r["signal"]] = r["http"]["events_per_second"]
    sweep = [r for r in rows if r["kind"] == "batch_sweep"]
    gzip_cpu = {r["signal"]: r["ns_per_event"] for r in rows if r["kind"] == "gzip_cpu"}
    panels = 1 + bool(sweep) + bool(gzip_cpu)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels if panels > 1 else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    methods = {method: values for method, values in methods.items() if values}
    width = 0.8 / max(1, len(methods))
    for k, (method, values) in enumerate(methods.items()):
        xs = [i + (k - (len(methods) - 1) / 2) * width for i, s in enumerate(signals) if s in values]
        ax.bar(xs, [values[s] / 1e6 for s in signals if s in values], width, label=method)
    ax.set_xticks(range(len(signals)), signals)
    ax.set_ylabel("million events/s (log scale)")
    if methods:
        ax.set_yscale("log")
    ax.set_title("events/s by method (no compression)")
    if methods:
        ax.legend(fontsize=8)
    if sweep:
        ax2 = axes[0][1]
        ax2.plot([r["batch_traces"] for r in sweep], [r["events_per_second"] / 1e6 for r in sweep], marker="o")
        ax2.set_xscale("log")
        ax2.set_xlabel("traces per batch")
        ax2.set_ylabel("million spans/s")
        ax2.set_title("telegen send vs batch size")
    if gzip_cpu:
        ax3 = axes[0][panels - 1]
        kinds = {"zlib6": "zlib level 6", "zlib1": "zlib level 1", "patch+patchable": "patch + patchable gzip",
                 "patch": "patch, uncompressed"}
        shown = [s for s in signals if s in gzip_cpu]
        width = 0.8 / len(kinds)
        for k, (key, label) in enumerate(kinds.items()):
            xs = [i + (k - (len(kinds) - 1) / 2) * width for i in range(len(shown))]
            ax3.bar(xs, [gzip_cpu[s][key] for s in shown], width, label=label)
        ax3.set_xticks(range(len(shown)), shown)
        ax3.set_yscale("log")
        ax3.set_ylabel("sender CPU ns per event, one core (log scale)")
        ax3.set_title("gzip: per-send cost per event")
        ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def check(results: dict, baseline: dict, instructions: dict | None = None) -> list[str]:
    """What fell below its floor (ratios) or grew past its tolerance
    (instruction counts), one line each; [] when all is well."""
    failures = []
    for name, floor in baseline["floors"].items():
        now = results["ratios"].get(name)
        if now is None:
            failures.append(f"{name}: missing from this run")
        elif now < floor:
            failures.append(f"{name}: {now:.2f} is below its floor {floor:.2f}")
    if instructions is not None:
        counted = baseline["instructions"]
        tolerance = counted["tolerance"]
        for kind in ("kernel", "send_path", "send_path_gzip"):
            for signal, base in counted.get(kind, {}).items():
                now = instructions[kind][signal]
                if now > base * (1 + tolerance):
                    failures.append(f"instructions per event, {kind} {signal}: {now:,.1f} is more than "
                                    f"{tolerance:.0%} above the baseline {base:,.1f}")
    return failures


def calibrate(runs: list[dict], margin: float = MARGIN) -> dict[str, float]:
    """Floors from the spread of runs of unchanged code: the lowest each
    ratio went, less the whole range it covered (at least `margin` of its
    median). A ratio that wandered 30 % between runs gets that much room
    again; one that held within 2 % is guarded at 10 %. For noise near
    normal, the range of a few runs is about two standard deviations, so a
    floor sits about three below the median: a false alarm per ratio is
    rare, and with twenty ratios still only an occasional one."""
    names = set.intersection(*(set(run["ratios"]) for run in runs))
    floors = {}
    for name in sorted(names):
        values = sorted(run["ratios"][name] for run in runs)
        median = values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1]
                                                                    + values[len(values) // 2]) / 2
        floors[name] = round(values[0] - max(margin * median, values[-1] - values[0]), 3)
    return floors


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        results, baseline = (json.loads(Path(p).read_text()) for p in argv[1:3])
        instructions = json.loads(Path(argv[4]).read_text()) if argv[3:4] == ["--instructions"] else None
        failures = check(results, baseline, instructions)
        for line in failures:
            print(f"regression: {line}")
        counted = 0 if instructions is None else sum(len(v) for v in baseline["instructions"].values()
                                                     if isinstance(v, dict))
        print(f"{len(baseline['floors']) + counted - len(failures)} of {len(baseline['floors']) + counted} "
              "guarded figures within their bounds")
        return 1 if failures else 0
    if argv[:1] == ["--calibrate"]:
        baseline_path, *runs = argv[1:]
        baseline = json.loads(Path(baseline_path).read_text())
        if runs[:1] == ["--instructions"]:
            counts = json.loads(Path(runs[1]).read_text())
            baseline["instructions"] = {"tolerance": baseline.get("instructions", {}).get("tolerance", 0.03),
                                        **{kind: counts[kind] for kind in ("kernel", "send_path", "send_path_gzip")
                                           if kind in counts}}
            runs = runs[2:]
        baseline["floors"] = calibrate([json.loads(Path(p).read_text()) for p in runs])
        Path(baseline_path).write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"Wrote {len(baseline['floors'])} floors from {len(runs)} runs to {baseline_path}")
        return 0
    raw_path, out_dir = Path(argv[0]), Path(argv[1])
    results = condense(json.loads(raw_path.read_text()))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(results) + "\n")
    chart(results, out_dir / "chart.png")
    print(markdown(results))
    print(f"Wrote {out_dir / 'results.json'}, {out_dir / 'results.md'}, {out_dir / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
