"""The scenarios (sending.scenarios), each shown by a receiver that decodes
and times what was sent: bursts reach their factor, a late share lies `by`
in the past, skewed services' spans are off by their skew and nothing else
moves, delayed children arrive `by` after their root and complete their
traces, churn creates its share of new series and series_total counts every
distinct series seen."""
from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from conftest import BATCH_SIZES, Recorder, decode_traces, loaded_batches, serve
from test_correlation import assert_correlated, check_correlation

from telegen.send.config.schema import SenderConfig
from telegen.send.engine import SendSettings, run
from telegen.send.engine.plan import RatePlan, Stage
from telegen.send.load.batches import build_batches
from telegen.send.scenarios import BurstPlan, Scenarios
from telegen.send.scenarios.churn import CHURN_DIGITS
from telegen.send.shard import SeriesCopies
from telegen.send.transport import RetryPolicy, Target

SIGNALS = ("traces", "metrics", "logs")
MS = 1_000_000


class TimedRecorder(Recorder):
    """A Recorder that also keeps when each request arrived (monotonic s)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.wall: dict[str, list[int]] = defaultdict(list)

    def Export(self, request, context):  # noqa: N802 - the servicers' name
        answer = super().Export(request, context)
        signal = {"ExportTraceServiceRequest": "traces", "ExportMetricsServiceRequest": "metrics",
                  "ExportLogsServiceRequest": "logs"}[type(request).__name__]
        with self.lock:
            self.arrivals[signal].append(time.monotonic())
            self.wall[signal].append(time.time_ns())
        return answer


def send(templates, scenarios: Scenarios, loaded=None, **overrides):
    recorder = TimedRecorder()
    server, port = serve(recorder)
    target = Target(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
    values = dict(targets={s: target for s in SIGNALS}, concurrency=4, stats_interval=60, drain_timeout=5,
                  passes=2, retry=RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2),
                  scenarios=scenarios)
    values.update(overrides)
    try:
        started = time.monotonic()
        report = run(loaded if loaded is not None else loaded_batches(templates), SendSettings(**values),
                     lambda line: None)
    finally:
        server.stop(0)
    for s in report.signals.values():
        assert s.delivered == s.sent and not s.failed and not s.rejected
    return report, recorder, started


# -- burst ------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [RatePlan(constant=1000.0), RatePlan([Stage(4, 1000), Stage(6, 1000),
                                                                       Stage(5, 3000)])])
def test_a_burst_plan_is_its_own_inverse_and_multiplies_the_rate_inside_bursts(base):
    plan = BurstPlan(base, every=2.0, length=0.5, factor=4.0)
    times = [k * 0.0731 for k in range(220)]
    events = [plan.events_by(t) for t in times]
    assert events == sorted(events)
    for t, e in zip(times, events):
        assert plan.time_for(e) == pytest.approx(t, abs=1e-6) or plan.events_by(plan.time_for(e)) == \
            pytest.approx(e)
    assert plan.events_by(2.5) - plan.events_by(2.0) == pytest.approx(4 * (base.events_by(2.5) - base.events_by(2.0)))
    assert plan.events_by(2.0) == pytest.approx(base.events_by(2.0)), "no burst before one period"
    assert plan.rate_at(4.2) == 4 * base.rate_at(4.2) and plan.rate_at(4.6) == base.rate_at(4.6)


def test_bursts_reach_their_factor(templates):
    scenarios = Scenarios(burst_every=1.0, burst_for=0.4, burst_factor=3.0)
    report, recorder, started = send(templates, scenarios, passes=0, duration=4.0, events_per_second=3000)
    per_request = {}  # arrival -> events, every signal
    for signal in SIGNALS:
        counts = {"traces": lambda r: sum(len(ss.spans) for rs in r.resource_spans for ss in rs.scope_spans),
                  "logs": lambda r: sum(len(sl.log_records) for rl in r.resource_logs for sl in rl.scope_logs),
                  "metrics": lambda r: sum(len(getattr(m, m.WhichOneof("data")).data_points)
                                           for rm in r.resource_metrics for sm in rm.scope_metrics
                                           for m in sm.metrics)}[signal]
        for at, request in zip(recorder.arrivals[signal], recorder.requests[signal]):
            per_request[at - started] = per_request.get(at - started, 0) + counts(request)
    inside = sum(e for t, e in per_request.items() if any(k + 0.05 <= t < k + 0.4 for k in (1, 2, 3)))
    outside = sum(e for t, e in per_request.items() if any(k + 0.45 <= t < k + 0.95 for k in (1, 2)))
    rate_in, rate_out = inside / (3 * 0.35), outside / (2 * 0.5)
    assert rate_in / rate_out == pytest.approx(3.0, rel=0.3), (rate_in, rate_out)
    assert report.scenarios["burst"] == {"every_seconds": 1.0, "for_seconds": 0.4, "factor": 3.0}


# -- late -------------------------------------------------------------------------------


def test_a_late_share_of_spans_and_logs_lies_by_in_the_past():
    """Lateness is drawn per request (a buffered batch arriving late), so the
    share settles over many requests: small batches here."""
    import telegen
    from conftest import small_config
    from telegen.generate.config import HighSpanTracesConfig, SpansConfig, TracesConfig

    templates = telegen.generate(small_config(traces=TracesConfig(count=100, spans=SpansConfig(
        avg_per_trace=8, std_dev=2, high_span_traces=HighSpanTracesConfig(enabled=False)))))
    loaded = [build_batches(s, templates.records(s), {"traces": 1, "metrics": 60, "logs": 5}[s], 4 * 2**20)
              for s in SIGNALS]
    by = 600.0
    report, recorder, _ = send(templates, Scenarios(late_fraction=0.3, late_by=by), loaded=loaded, passes=4,
                               jitter_ns=10 * MS)
    received_by = max(max(v) for v in recorder.wall.values())
    events = [(s.start_time_unix_nano, s.end_time_unix_nano) for s in recorder.spans()]
    events += [(r.time_unix_nano, r.time_unix_nano) for req in recorder.requests["logs"] for rl in req.resource_logs
               for sl in rl.scope_logs for r in sl.log_records]
    late = [end for _, end in events if end < received_by - by * 1e9 + 60e9]
    assert len(late) / len(events) == pytest.approx(0.3, rel=0.2)
    assert all(end <= received_by - by * 1e9 for end in late), "at least `by` in the past"
    assert sum(report.scenarios["late"]["events"].values()) == len(late), "counted exactly"
    assert_correlated(check_correlation(recorder))  # late logs stay inside their late spans


# -- clock skew -------------------------------------------------------------------------


def _service(resource) -> str:
    return next(kv.value.string_value for kv in resource.attributes if kv.key == "service.name")


def test_skewed_services_are_off_by_their_skew_and_nothing_else_moves(templates):
    # Every service skewed: which ones a draw picks is random, and two picked
    # could be services with no span the check below can place (CI once drew such).
    from telegen.send.scenarios.skew import services_of

    services = services_of(loaded_batches(templates))
    scenarios = Scenarios(skew_services=len(services), skew_max=0.5)
    report, recorder, _ = send(templates, scenarios, passes=1)
    skews = {name: round(ms * MS) for name, ms in report.scenarios["clock_skew"]["services"].items()}
    assert len(skews) == len(services) >= 2 and all(0 < abs(ns) <= 500 * MS for ns in skews.values())
    # A template span by (service, name, duration): its start in the template, where that is unique.
    template = Counter()
    starts = {}
    for record in templates.traces:
        for rs in decode_traces(record).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    key = (_service(rs.resource), s.name, s.end_time_unix_nano - s.start_time_unix_nano)
                    template[key] += 1
                    starts[key] = (s.start_time_unix_nano, bytes(s.trace_id))
    shifts = defaultdict(set)  # sent trace -> its spans' shifts, less their services' skews
    raw = defaultdict(set)  # the same with the skews in
    skewed_spans = 0
    for request in recorder.requests["traces"]:
        for rs in request.resource_spans:
            service = _service(rs.resource)
            for s in (s for ss in rs.scope_spans for s in ss.spans):
                key = (service, s.name, s.end_time_unix_nano - s.start_time_unix_nano)
                if template[key] == 1:
                    shifts[s.trace_id].add(s.start_time_unix_nano - starts[key][0] - skews.get(service, 0))
                    raw[s.trace_id].add(s.start_time_unix_nano - starts[key][0])
                    skewed_spans += service in skews
    assert skewed_spans > 20
    # One shift per trace once the skews (reported to the microsecond) are taken out...
    assert all(max(v) - min(v) <= 2_000 for v in shifts.values())
    # ...and services really are apart where a trace has spans of a skewed and another service.
    spread = [max(v) - min(v) for v in raw.values() if len(v) > 1]
    assert spread and min(spread) >= min(abs(a - b) for a in [0, *skews.values()] for b in skews.values()
                                         if a != b) - 2_000


# -- delayed children -------------------------------------------------------------------


def test_delayed_children_arrive_by_after_their_root_and_complete_their_traces(templates):
    by = 1.0
    report, recorder, _ = send(templates, Scenarios(delayed_fraction=0.5, delayed_by=by), passes=1)
    first_seen: dict[bytes, float] = {}
    roots: dict[bytes, float] = {}
    children: dict[bytes, float] = {}
    spans = 0
    for at, request in zip(recorder.arrivals["traces"], recorder.requests["traces"]):
        for s in (s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans):
            spans += 1
            first_seen.setdefault(s.trace_id, at)
            if not s.parent_span_id:
                roots[s.trace_id] = at
            else:
                children[s.trace_id] = max(children.get(s.trace_id, 0.0), at)
    assert spans == templates.counts["spans"], "every span of every trace, once"
    delayed = [t for t in roots if t in children and children[t] - roots[t] >= by * 0.99]
    assert len(delayed) == report.scenarios["delayed_children"]["traces"]
    assert len(delayed) == pytest.approx(0.5 * templates.counts["traces"], abs=1)
    on_time = [t for t in roots if t in children and t not in delayed]
    assert all(children[t] - roots[t] < by * 0.5 for t in on_time)
    by_trace = defaultdict(list)
    for s in recorder.spans():
        by_trace[s.trace_id].append(s)
    for trace in by_trace.values():  # whole trees, once every part is in
        ids = {s.span_id for s in trace}
        assert all(not s.parent_span_id or s.parent_span_id in ids for s in trace)


# -- churn ------------------------------------------------------------------------------


def _series(recorder) -> set:
    out = set()
    for request in recorder.requests["metrics"]:
        for rm in request.resource_metrics:
            resource = frozenset((kv.key, kv.value.SerializeToString()) for kv in rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in getattr(m, m.WhichOneof("data")).data_points:
                        out.add((resource, m.name, frozenset((kv.key, kv.value.SerializeToString())
                                                             for kv in p.attributes)))
    return out


def test_churn_replaces_its_share_of_series_and_series_total_counts_them_all(templates):
    copies = SeriesCopies(churn_digits=CHURN_DIGITS)
    loaded = [build_batches(s, templates.records(s), BATCH_SIZES[s], 4 * 2**20,
                            copies if s == "metrics" else SeriesCopies()) for s in SIGNALS]
    from telegen.send.load.series import count_series
    base = count_series(loaded[1]).otlp
    report, recorder, _ = send(templates, Scenarios(churn_fraction=0.4, churn_every=1.0), loaded=loaded,
                               passes=0, duration=3.6, events_per_second=4000)
    created = report.scenarios["churn"]["series_created"]
    seen = _series(recorder)
    assert len(seen) == base + created, "every series written is counted, once"
    intervals = 3  # churns at 1, 2 and 3 s
    assert created == pytest.approx(0.4 * base * intervals, rel=0.35)


# -- config -------------------------------------------------------------------------------


def test_scenarios_come_from_the_config():
    config = SenderConfig.from_dict({"sending": {"scenarios": {
        "clock_skew": {"services": 2, "max": "500ms"}, "late": {"fraction": 0.01, "by": "10m"},
        "delayed_children": {"fraction": 0.05, "by": "30s"}, "churn": {"fraction": 0.1, "every": "1m"},
        "burst": {"every": "5m", "for": "30s", "factor": 5}}}})
    scenarios = Scenarios.from_config(config.sending.scenarios)
    assert (scenarios.skew_services, scenarios.skew_max, scenarios.late_fraction, scenarios.late_by) == (2, 0.5, 0.01, 600)
    assert (scenarios.delayed_fraction, scenarios.delayed_by, scenarios.churn_fraction, scenarios.churn_every) == \
        (0.05, 30, 0.1, 60)
    assert (scenarios.burst_every, scenarios.burst_for, scenarios.burst_factor) == (300, 30, 5)
    assert not Scenarios.from_config(SenderConfig().sending.scenarios).any


@pytest.mark.parametrize("scenarios, message", [
    ({"burst": {"every": "10s", "for": "10s"}}, "sending.scenarios.burst.for: 10.0 is invalid"),
    ({"late": {"fraction": 1.5}}, "sending.scenarios.late.fraction: 1.5 is invalid"),
    ({"churn": {"every": 0}}, "sending.scenarios.churn.every: 0 is invalid"),
    ({"clock_skew": {"max": "soon"}}, "sending.scenarios.clock_skew.max: 'soon' is invalid"),
    ({"bursts": {}}, "did you mean sending.scenarios.burst"),
])
def test_bad_scenarios_name_the_key(scenarios, message):
    from telegen.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        SenderConfig.from_dict({"sending": {"scenarios": scenarios}})
