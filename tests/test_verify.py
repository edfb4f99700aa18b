"""`telegen verify` and `telegen send --verify` against the real backends
(tests/backends.py: Jaeger v2, Prometheus, VictoriaLogs on their defaults),
a lossy hop in front of one, and Honeycomb's Query Data API as a local
server answering with responses built from its documented schema."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from backends import DroppingRelay, Jaeger, Prometheus, VictoriaLogs

from telegen.cli import main
from telegen.sink import Sink, free_port

SIGNALS = ("traces", "metrics", "logs")


def sender_yaml(path: Path, template_dir: Path, endpoints: dict[str, str], rate: int = 3000, duration: str = "3s",
                multiplier: int = 0, processes: int = 1) -> Path:
    """A sender config: OTLP/HTTP, each signal to its own endpoint (as
    given, the OTLP way for per-signal URLs); a signal left out is off."""
    signals = "\n".join(f'  {s}: {{endpoint: "{endpoints[s]}"}}' for s in SIGNALS if s in endpoints)
    off = ", ".join(f"{s}: false" for s in SIGNALS if s not in endpoints)
    path.write_text(f"""
input: {{directory: "{template_dir}"{", " + off if off else ""}}}
otlp:
  protocol: http/protobuf
  insecure: true
{signals}
sending:
  rate_limit: {{events_per_second: {rate}}}
  batch_size: {{traces: 5, metrics: 100, logs: 50}}
  duration: {duration}
  multiplier: {multiplier}
  processes: {processes}
  stats_interval: 10s
""")
    return path


def telegen(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "telegen", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_a_clean_run_is_stored_exactly_with_its_lag(template_dir, tmp_path):
    """Send --verify to all three backends (two forked workers: the sampler
    crosses the fork), then verify the finished run again from its stats."""
    with Jaeger(tmp_path / "jaeger") as jaeger, Prometheus(tmp_path / "prometheus") as prometheus, \
            VictoriaLogs(tmp_path / "victorialogs") as victorialogs:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir, {
            "traces": f"{jaeger.http_endpoint}/v1/traces", "metrics": f"{prometheus.otlp_endpoint}/v1/metrics",
            "logs": f"{victorialogs.otlp_endpoint}/v1/logs"}, processes=2)
        targets = [f"jaeger={jaeger.query_url}", f"prometheus={prometheus.query_url}",
                   f"victorialogs={victorialogs.query_url}"]
        stats_path = tmp_path / "stats.json"
        sent = telegen("send", "--config", str(config), "--stats-json", str(stats_path),
                       *[arg for target in targets for arg in ("--verify", target)])
        assert sent.returncode == 0, sent.stdout + sent.stderr
        again = telegen("verify", *targets, "--run", str(stats_path), "--stats-json", str(tmp_path / "again.json"))
    stats = json.loads(stats_path.read_text())
    signals, verified = stats["signals"], stats["verify"]
    assert set(verified) == set(SIGNALS)
    traces, metrics, logs = verified["traces"], verified["metrics"], verified["logs"]
    # Exact: what the backend holds is what the run's report says was delivered.
    assert traces["sent"] == traces["stored"] == signals["traces"]["delivered"] > 0
    assert traces["traces_sent"] == traces["traces_stored"] == signals["traces"]["traces_delivered"] > 0
    assert traces["traces_with_missing_parent"] == 0
    assert metrics["sent"] == metrics["stored"] == signals["metrics"]["prometheus_series"] > 0
    assert logs["sent"] == logs["stored"] == signals["logs"]["delivered"] > 0
    for signal, entry in verified.items():
        assert (entry["backend"], entry["missing"], entry["passed"]) == (
            {"traces": "jaeger", "metrics": "prometheus", "logs": "victorialogs"}[signal], 0, True)
        # The lag was sampled while sending: at least one batch a second.
        assert entry["lag_samples_ms"], (signal, entry)
        assert 0 < entry["lag_p50_ms"] <= entry["lag_p99_ms"] < 30_000, (signal, entry)
    assert "Verified against the backends" in sent.stdout and "lag p50" in sent.stdout
    # The finished run, verified again: the same counts; the lag is the send's.
    assert again.returncode == 0, again.stdout + again.stderr
    later = json.loads((tmp_path / "again.json").read_text())["verify"]
    for signal in SIGNALS:
        assert later[signal]["stored"] == verified[signal]["stored"]
        assert later[signal]["lag_p99_ms"] == verified[signal]["lag_p99_ms"]


def test_a_hop_that_drops_requests_fails_verify_with_the_loss(template_dir, tmp_path):
    """Every 3rd logs request is acknowledged and lost on the way to
    VictoriaLogs: the sender counts it delivered, verify finds it missing."""
    with VictoriaLogs(tmp_path / "victorialogs") as victorialogs, \
            DroppingRelay(victorialogs.otlp_endpoint, drop_every=3) as relay:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir, {"logs": f"{relay.url}/v1/logs"},
                             rate=1000, duration="2s")
        stats_path = tmp_path / "stats.json"
        result = telegen("send", "--config", str(config), "--stats-json", str(stats_path),
                         "--verify", f"victorialogs={victorialogs.query_url}", "--settle-timeout", "10")
        tolerant = telegen("verify", f"victorialogs={victorialogs.query_url}", "--run", str(stats_path),
                           "--max-loss", "50", "--settle-timeout", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    logs = json.loads(stats_path.read_text())
    delivered, verified = logs["signals"]["logs"]["delivered"], logs["verify"]["logs"]
    assert relay.dropped["logs"] > 0
    assert verified["stored"] == delivered - relay.dropped["logs"]
    assert verified["missing"] == relay.dropped["logs"] and not verified["passed"]
    assert (f"telegen: verify failed: logs: {relay.dropped['logs']:,} of {delivered:,} log records missing at "
            f"victorialogs") in result.stderr
    assert "Sent for" in result.stdout, "the run's summary comes first"
    # A threshold above the loss passes.
    assert tolerant.returncode == 0, tolerant.stdout + tolerant.stderr
    assert f"{verified['stored']:,} of {delivered:,} log records stored" in tolerant.stdout


def test_a_search_whose_backend_drops_what_it_accepted_does_not_pass(template_dir, tmp_path):
    """--find-max --verify: every 3rd logs request is acknowledged and lost
    on the way to VictoriaLogs. Every step "holds" by the answers, but what
    was stored says otherwise: the search fails (exit 1), saying why."""
    with VictoriaLogs(tmp_path / "victorialogs") as victorialogs, \
            DroppingRelay(victorialogs.otlp_endpoint, drop_every=3) as relay:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir, {"logs": f"{relay.url}/v1/logs"})
        with config.open("a") as extra:
            extra.write("  search: {min_rate: 1000, max_rate: 2000, step_duration: 1, cooldown: 0.2, hold: 1}\n")
        stats_path = tmp_path / "stats.json"
        result = telegen("send", "--config", str(config), "--find-max", "logs", "--stats-json", str(stats_path),
                         "--verify", f"victorialogs={victorialogs.query_url}", "--settle-timeout", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["search"]["stop_reason"] == "max_rate" and all(s["passed"] for s in stats["search"]["steps"])
    assert relay.dropped["logs"] > 0 and not stats["verify"]["logs"]["passed"]
    assert "telegen: search failed: the backend did not store what it accepted" in result.stderr


def test_a_jaeger_that_keeps_fewer_traces_fails_verify(template_dir, tmp_path):
    """Jaeger's memory storage with room for 20 traces drops the oldest of
    the 60 sent; `telegen verify --run` of the finished run says so."""
    with Jaeger(tmp_path / "jaeger", max_traces=20) as jaeger:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir,
                             {"traces": f"{jaeger.http_endpoint}/v1/traces"}, rate=0, duration="0", multiplier=1)
        stats_path = tmp_path / "stats.json"
        sent = telegen("send", "--config", str(config), "--stats-json", str(stats_path))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        result = telegen("verify", f"jaeger={jaeger.query_url}", "--run", str(stats_path), "--settle-timeout", "8",
                         "--stats-json", str(tmp_path / "verify.json"))
    assert result.returncode == 1, result.stdout + result.stderr
    traces = json.loads((tmp_path / "verify.json").read_text())["verify"]["traces"]
    assert traces["traces_sent"] == 60 and 0 < traces["traces_stored"] <= 20
    assert traces["missing"] == traces["sent"] - traces["stored"] > 0 and not traces["passed"]
    notes = " ".join(traces["notes"])
    assert "its memory storage keeps fewer (memory.max_traces)" in notes
    assert traces["lag_p50_ms"] is None and "lag not measured" in notes
    assert "telegen: verify failed: traces: " in result.stderr and " spans missing at jaeger" in result.stderr
    assert "Traceback" not in result.stderr


def run_stats(tmp_path: Path, **signals: dict) -> Path:
    """A finished run's stats as `telegen send --stats-json` writes them (the keys verify reads)."""
    now = time.time()
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"started_at": now - 5, "ended_at": now, "signals": signals}))
    return path


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    stats = run_stats(tmp_path, traces={"delivered": 10, "traces_delivered": 1})
    no_window = tmp_path / "old.json"
    no_window.write_text(json.dumps({"signals": {"traces": {"delivered": 10}}}))
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    cases = [
        (["verify", "zipkin=http://127.0.0.1:9411", "--run", str(stats)], "unknown KIND 'zipkin': expected jaeger"),
        (["verify", "jaeger", "--run", str(stats)], "'jaeger' is not KIND=URL"),
        (["verify", "jaeger=ftp://x", "--run", str(stats)], "is not an http:// or https:// URL"),
        (["verify", "jaeger=http://127.0.0.1:1", "--run", str(tmp_path / "none.json")], "--run: cannot read"),
        (["verify", "jaeger=http://127.0.0.1:1", "--run", str(not_json)], "is not JSON"),
        (["verify", "jaeger=http://127.0.0.1:1", "--run", str(no_window)], "has no started_at/ended_at"),
        (["verify", "jaeger=http://127.0.0.1:1", "--run", str(stats), "--max-loss", "150"],
         "--max-loss: 150 is invalid"),
        (["verify", "jaeger=http://127.0.0.1:1", "honeycomb=https://api.honeycomb.io", "--run", str(stats)],
         "traces would be verified at both jaeger and honeycomb"),
        (["send", "--config", str(tmp_path / "any.yaml"), "--verify", "zipkin=http://127.0.0.1:9411"],
         "unknown KIND 'zipkin'"),
    ]
    for argv, message in cases:
        env = {"HONEYCOMB_API_KEY": "k"} if "honeycomb" in " ".join(argv) else {}
        os.environ.update(env)
        try:
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                status = exc.code
        finally:
            for key in env:
                os.environ.pop(key)
        err = capsys.readouterr().err
        assert status == 2, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_an_unreachable_backend_is_one_line_and_exit_1(template_dir, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    stats = run_stats(tmp_path, logs={"delivered": 10})
    result = telegen("verify", f"victorialogs={closed}", "--run", str(stats))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (f"telegen: verify: victorialogs: cannot reach {closed}/select/logsql/query: "
                                     "Connection refused")
    # `send --verify` checks first and sends nothing to a backend it cannot read back.
    with Sink(listen_http="127.0.0.1:0") as sink:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir, {"logs": f"{sink.http_endpoint}/v1/logs"})
        result = telegen("send", "--config", str(config), "--verify", f"victorialogs={closed}")
        assert sink.stats().logs.events == 0
    assert result.returncode == 1 and "Sent for" not in result.stdout, result.stdout + result.stderr
    assert "telegen: verify: victorialogs: cannot reach" in result.stderr and "Traceback" not in result.stderr


class HoneycombQueryData:
    """Honeycomb's Query Data API on loopback, answering as its reference
    documents (docs.honeycomb.io/api/query-data): /1/auth; POST
    /1/queries/{dataset} -> a query with an id; POST
    /1/query_results/{dataset} -> 201 and a result not yet complete; GET
    /1/query_results/{dataset}/{id} -> incomplete once, then complete with
    data.results[].data.COUNT. `counts`: what it answers per
    meta.signal_type; `rate_limit_first`: answer the first query result 429."""

    def __init__(self, counts: dict[str, int], rate_limit_first: bool = False) -> None:
        self.counts = counts
        self.rate_limit_first = rate_limit_first
        self.keys: set[str] = set()
        self.queries: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.paths: list[str] = []
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                fixture.keys.add(self.headers.get("X-Honeycomb-Team", ""))
                fixture.paths.append(f"GET {self.path}")
                if self.path == "/1/auth":
                    return self.reply(200, {"id": "kid", "type": "configuration",
                                            "api_key_access": {"queries": True, "columns": True},
                                            "environment": {"name": "Test", "slug": "test"},
                                            "team": {"name": "Team", "slug": "team"}})
                _, _, _, dataset, result_id = self.path.split("/")
                result = fixture.results.get(result_id)
                if result is None:
                    return self.reply(404, {"error": "query result not found"})
                result["polls"] += 1
                return self.reply(200, fixture.result_body(result_id, complete=result["polls"] > 1))

            def do_POST(self) -> None:  # noqa: N802
                fixture.keys.add(self.headers.get("X-Honeycomb-Team", ""))
                fixture.paths.append(f"POST {self.path}")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.startswith("/1/queries/"):
                    query_id = f"q{len(fixture.queries) + 1}"
                    fixture.queries[query_id] = body
                    return self.reply(200, {"id": query_id, **body})
                if fixture.rate_limit_first:
                    fixture.rate_limit_first = False
                    return self.reply(429, {"status": 429, "type": "https://api.honeycomb.io/problems/rate-limited",
                                            "title": "You have exceeded your rate limit.",
                                            "error": "You have exceeded your rate limit."})
                result_id = f"r{len(fixture.results) + 1}"
                fixture.results[result_id] = {"query_id": body["query_id"], "polls": 0, "request": body}
                return self.reply(201, fixture.result_body(result_id, complete=False))

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def result_body(self, result_id: str, complete: bool) -> dict:
        result = self.results[result_id]
        query = self.queries[result["query_id"]]
        signal_type = next(f["value"] for f in query["filters"] if f["column"] == "meta.signal_type")
        body = {"id": result_id, "complete": complete, "query": {"id": result["query_id"], **query},
                "links": {"query_url": f"{self.url}/ui/query/{result_id}",
                          "graph_image_url": f"{self.url}/ui/graph/{result_id}.png"}}
        if complete:
            body["data"] = {"series": [], "results": [{"data": {"COUNT": self.counts[signal_type]}}]}
        return body

    def __enter__(self) -> HoneycombQueryData:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_honeycomb_counts_through_the_query_data_api(template_dir, tmp_path):
    """A real run to the local sink; Honeycomb's answers from its documented
    schema: equal counts pass, a short one fails, the key is sent and never shown."""
    with Sink(listen_http="127.0.0.1:0") as sink:
        config = sender_yaml(tmp_path / "sender.yaml", template_dir, {
            s: f"{sink.http_endpoint}/v1/{s}" for s in SIGNALS}, rate=0, duration="0", multiplier=1)
        stats_path = tmp_path / "stats.json"
        sent = telegen("send", "--config", str(config), "--stats-json", str(stats_path))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    delivered = {s: figures["delivered"] for s, figures in json.loads(stats_path.read_text())["signals"].items()}
    key = {"HONEYCOMB_API_KEY": "hc-s3cr3t-key"}
    with HoneycombQueryData({"trace": delivered["traces"], "log": delivered["logs"]}, rate_limit_first=True) as hc:
        clean = telegen("verify", f"honeycomb={hc.url}", "--run", str(stats_path), "--settle-timeout", "3",
                        "--stats-json", str(tmp_path / "verify.json"), env=key)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    verified = json.loads((tmp_path / "verify.json").read_text())["verify"]
    assert verified["traces"]["stored"] == verified["traces"]["sent"] == delivered["traces"]
    assert verified["logs"]["stored"] == verified["logs"]["sent"] == delivered["logs"]
    assert "metrics" not in verified  # Honeycomb keeps metrics as events, not series: not counted
    assert hc.keys == {"hc-s3cr3t-key"}
    assert "hc-s3cr3t-key" not in clean.stdout + clean.stderr + (tmp_path / "verify.json").read_text()
    # The documented three steps, environment-wide, over whole minutes around the run.
    run = json.loads(stats_path.read_text())
    for spec in hc.queries.values():
        assert spec["calculations"] == [{"op": "COUNT"}]
        assert spec["start_time"] % 60 == 0 and spec["end_time"] % 60 == 0
        assert spec["start_time"] <= run["started_at"] and spec["end_time"] >= run["ended_at"]
    assert all(path.split("?")[0].startswith(("GET /1/auth", "POST /1/queries/__all__", "POST /1/query_results/__all__",
                                              "GET /1/query_results/__all__/")) for path in hc.paths)
    assert all(r["request"]["disable_series"] and r["polls"] >= 2 for r in hc.results.values())
    # Honeycomb holding fewer log records than were delivered: exit 1, the loss shown.
    with HoneycombQueryData({"trace": delivered["traces"], "log": delivered["logs"] - 7}) as hc:
        short = telegen("verify", f"honeycomb={hc.url}", "--run", str(stats_path), "--settle-timeout", "1", env=key)
    assert short.returncode == 1, short.stdout + short.stderr
    assert f"telegen: verify failed: logs: 7 of {delivered['logs']:,} log records missing at honeycomb" in short.stderr
    # No key: a usage error, before any query.
    no_key = telegen("verify", "honeycomb=https://api.honeycomb.io", "--run", str(stats_path),
                     env={"HONEYCOMB_API_KEY": ""})
    assert no_key.returncode == 2 and "set HONEYCOMB_API_KEY" in no_key.stderr, no_key.stderr
