"""Prometheus' query API: the series stored, counted by Prometheus itself,
and a sent batch found by its newest sample under its resource's job and
instance (the newest timestamp of those series, evaluated now).

A series counts when it has a sample in the window:
`count(last_over_time({__name__=~".+"}[RANGE]))` evaluated at the window's
end (last_over_time keeps each series' name, so no two collapse). That is
every series of the store with a sample in the window, not only this run's:
compare against a Prometheus only this run writes to, or read an excess as
other writers'."""
from __future__ import annotations

import math

from .backend import Count, Probe, SentFigures, Window
from .http import BackendError, get_json, join


class Prometheus:
    kind = "prometheus"
    signals = ("metrics",)
    poll_interval = 0.1

    def __init__(self, url: str) -> None:
        self.url = url

    def check(self) -> None:
        self.query("vector(1)")

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params: dict[str, object] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        answer = get_json(join(self.url, "/api/v1/query"), params)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise BackendError(f"{self.url}: query {promql!r} failed: {answer}")
        return answer["data"]["result"]

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else None

    def expected(self, signal: str, sent: SentFigures) -> tuple[int, str] | None:
        if signal != "metrics" or sent.prometheus_series is None:
            return None
        return sent.prometheus_series, "series"

    def can_probe(self, signal: str) -> bool:
        return signal == "metrics"

    def count(self, signal: str, window: Window, sent: SentFigures) -> Count:
        seconds = max(1, math.ceil(window.end - window.start))
        value = self.scalar(f'count(last_over_time({{__name__=~".+"}}[{seconds}s]))', at=window.end)
        return Count(stored=int(value or 0))

    def visible(self, probe: Probe) -> bool:
        if probe.newest_ms is None or not probe.labels:
            return False
        matchers = ",".join(f"{name}={_quoted(value)}" for name, value in probe.labels)
        # timestamp() drops the metric name: copied to a label first, so that
        # series differing only in name stay apart until max() takes them.
        named = f'label_replace({{{matchers}}}, "telegen_name", "$1", "__name__", "(.+)")'
        newest = self.scalar(f"max(timestamp({named}))")
        return newest is not None and round(newest * 1000) >= probe.newest_ms

    def explain(self, signal: str, sent: SentFigures, count: Count) -> list[str]:
        return []


def _quoted(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
