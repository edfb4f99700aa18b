"""Jaeger's query API (v1 JSON, served by Jaeger v2 too): stored spans and
traces counted per service, whole traces checked, trace ids looked up.

Jaeger has no count query: a search returns whole traces. So a count reads
every stored trace of the window back: it searches each service over slices
of the window sized for fewer than SEARCH_LIMIT traces each (from the traces
the run sent), splits a slice whose answer was full in halves until none is
(a full answer may have left traces out), and keeps only trace ids and
tallies as it goes (memory stays one answer's). A trace found under several
services counts once, but is read once per service it has a span of, so the
count stops at the first service after which every delivered span is found
(a clean run's ingress service holds them all); a trace is whole when every
span's parent (CHILD_OF reference in the same trace) is stored. Jaeger's own
service (its self-tracing) is left out."""
from __future__ import annotations

from collections.abc import Iterator

from .backend import Count, Probe, SentFigures, Window
from .http import BackendError, get_json, join

SEARCH_LIMIT = 500  # traces per search answer: a full one is split, not trusted
# Jaeger's own traces (an all-in-one traces the queries it answers, these
# counts' too, into itself): not the run's.
OWN_SERVICES = frozenset({"jaeger", "jaeger-all-in-one", "jaeger-query"})
MEMORY_MAX_TRACES = 100_000  # memory storage's default max_traces


class Jaeger:
    kind = "jaeger"
    signals = ("traces",)
    poll_interval = 0.1

    def __init__(self, url: str, search_limit: int = SEARCH_LIMIT) -> None:
        self.url = url
        self.search_limit = search_limit
        self.refused_depth: int | None = None  # the least search depth refused (more than the storage keeps)

    def check(self) -> None:
        self.services()

    def services(self) -> list[str]:
        answer = get_json(join(self.url, "/api/services"))
        return sorted(answer.get("data") or []) if isinstance(answer, dict) else []

    def expected(self, signal: str, sent: SentFigures) -> tuple[int, str] | None:
        return (sent.events, "spans") if signal == "traces" else None

    def can_probe(self, signal: str) -> bool:
        return signal == "traces"

    def count(self, signal: str, window: Window, sent: SentFigures) -> Count:
        seen: set[str] = set()
        spans = broken = 0
        notes: list[str] = []
        slices = self._slices(window, sent.traces or 0)
        for service in self.services():
            if service in OWN_SERVICES:
                continue
            if spans >= sent.events > 0:
                break  # every delivered span is found: the other services' traces are these
            for trace in self._search(service, slices, notes):
                trace_id = trace.get("traceID", "")
                if trace_id in seen:
                    continue
                seen.add(trace_id)
                span_ids = {span.get("spanID") for span in trace.get("spans") or ()}
                spans += len(span_ids)
                broken += not _whole(trace_id, trace.get("spans") or (), span_ids)
        return Count(stored=spans, traces=len(seen), traces_with_missing_parent=broken, notes=tuple(notes))

    def _slices(self, window: Window, traces: int) -> list[tuple[int, int]]:
        """The window in µs, cut so that each slice should hold fewer than
        half the search limit of the run's traces: the margins before and
        after the run one slice each, the run's own time in equal parts."""
        start, run_start, run_end, end = (int(t * 1e6) for t in (window.start, window.run_start, window.run_end,
                                                                 window.end))
        parts = max(1, -(-2 * traces // self.search_limit))
        bounds = [run_start + (run_end - run_start) * i // parts for i in range(parts + 1)]
        cuts = [start, *bounds, end]
        return [(low if i == 0 else low + 1, high) for i, (low, high) in enumerate(zip(cuts, cuts[1:])) if high > low]

    def _search(self, service: str, slices: list[tuple[int, int]], notes: list[str]) -> Iterator[dict]:
        """Every trace with a span of `service` starting in a slice, in
        answers of fewer than the limit (a full answer may have left some out)."""
        windows = list(reversed(slices))
        while windows:
            low, high = windows.pop()
            try:
                answer = get_json(join(self.url, "/api/traces"),
                                  {"service": service, "start": low, "end": high, "limit": self.search_limit})
            except BackendError as exc:
                # Memory storage refuses a search deeper than it keeps traces.
                if "search depth" not in str(exc) or self.search_limit <= 1:
                    raise
                self.refused_depth = self.search_limit
                self.search_limit //= 2
                windows.append((low, high))
                continue
            traces = (answer.get("data") or []) if isinstance(answer, dict) else []
            if len(traces) >= self.search_limit and high - low > 1:
                middle = (low + high) // 2
                windows += [(low, middle), (middle + 1, high)]
                continue
            if len(traces) >= self.search_limit:
                notes.append(f"more than {self.search_limit} traces of {service} start within 1 µs: "
                             f"{self.search_limit} counted")
            yield from traces

    def visible(self, probe: Probe) -> bool:
        answer = get_json(join(self.url, f"/api/traces/{probe.trace_id}"), missing_ok=True)
        return isinstance(answer, dict) and bool(answer.get("data"))

    def explain(self, signal: str, sent: SentFigures, count: Count) -> list[str]:
        if self.refused_depth is not None:
            return [f"Jaeger refused a search for {self.refused_depth:,} traces: its memory storage keeps fewer "
                    f"(memory.max_traces) and drops the oldest beyond"]
        if sent.traces is not None and sent.traces > MEMORY_MAX_TRACES:
            return [f"the run sent {sent.traces:,} traces; Jaeger's memory storage keeps at most "
                    f"{MEMORY_MAX_TRACES:,} by default (memory.max_traces) and drops the oldest beyond"]
        return []


def _whole(trace_id: str, spans: list[dict] | tuple, span_ids: set[str | None]) -> bool:
    """Every span's parent in the trace is stored."""
    for span in spans:
        for reference in span.get("references") or ():
            if (reference.get("refType") == "CHILD_OF" and reference.get("traceID") == trace_id
                    and reference.get("spanID") not in span_ids):
                return False
    return True
