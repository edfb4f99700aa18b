"""Honeycomb's Query Data API (docs.honeycomb.io/api/query-data; an
Enterprise feature): spans and log records counted by Honeycomb, in the
three documented steps: create a query spec (POST /1/queries/{dataset}), run
it (POST /1/query_results/{dataset} with its id), poll the result
(GET /1/query_results/{dataset}/{id}) until `complete`.

- The key is the X-Honeycomb-Team header, from HONEYCOMB_API_KEY (it needs
  the "Run Queries" and "Manage Queries and Columns" permissions); it is
  never printed.
- The URL is the API's (https://api.honeycomb.io, https://api.eu1.honeycomb.io);
  `?dataset=SLUG` narrows the count to one dataset, by default it is
  environment-wide (`__all__`).
- Spans: COUNT of events with meta.signal_type = trace and no
  meta.annotation_type (span events and links are events of their own there);
  log records: COUNT with meta.signal_type = log. Metrics are not counted:
  Honeycomb stores them as events, not series.
- Honeycomb truncates a query's times to the minute (ranges up to 6 hours):
  the window is widened to whole minutes, so an excess can be another
  writer's events in those minutes.
- Creating a query result is limited to 10 a minute: counts are taken at
  most every POLL_INTERVAL seconds, a 429 waits for the next turn, and no
  lag is measured (that needs a query every 100 ms).
"""
from __future__ import annotations

import math
import os
import time
import urllib.parse

from ..errors import TelegenError
from .backend import Count, Probe, SentFigures, Window
from .http import BackendError, get_json, join, post_json

KEY_VARIABLE = "HONEYCOMB_API_KEY"
ALL_DATASETS = "__all__"
POLL_INTERVAL = 12.0  # seconds between counts: two signals within 10 query results a minute
RESULT_POLL = 0.5  # seconds between polls of a running query result
RESULT_TIMEOUT = 60.0
FILTERS = {
    "traces": [{"column": "meta.signal_type", "op": "=", "value": "trace"},
               {"column": "meta.annotation_type", "op": "does-not-exist"}],
    "logs": [{"column": "meta.signal_type", "op": "=", "value": "log"}],
}


class Honeycomb:
    kind = "honeycomb"
    signals = ("traces", "logs")
    poll_interval = POLL_INTERVAL

    def __init__(self, url: str, api_key: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.dataset = urllib.parse.parse_qs(parts.query).get("dataset", [ALL_DATASETS])[0]
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE, "")
        if not self._key:
            raise TelegenError(f"honeycomb: set {KEY_VARIABLE} to an API key that may run queries")
        self._queries: dict[tuple[str, int, int], str] = {}  # (signal, start, end) -> query id

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Honeycomb-Team": self._key}

    def check(self) -> None:
        get_json(join(self.url, "/1/auth"), headers=self.headers)

    def expected(self, signal: str, sent: SentFigures) -> tuple[int, str] | None:
        if signal == "traces":
            return sent.events, "spans"
        if signal == "logs":
            return sent.events, "log records"
        return None

    def can_probe(self, signal: str) -> bool:
        return False

    def visible(self, probe: Probe) -> bool:
        return False

    def count(self, signal: str, window: Window, sent: SentFigures) -> Count:
        start, end = math.floor(window.start / 60) * 60, math.ceil(window.end / 60) * 60
        slug = urllib.parse.quote(self.dataset, safe="")
        query_id = self._queries.get((signal, start, end))
        if query_id is None:
            spec = {"calculations": [{"op": "COUNT"}], "filters": FILTERS[signal], "filter_combination": "AND",
                    "start_time": start, "end_time": end}
            created = post_json(join(self.url, f"/1/queries/{slug}"), spec, headers=self.headers)
            query_id = self._queries[(signal, start, end)] = _field(created, "id", "query")
        result = post_json(join(self.url, f"/1/query_results/{slug}"),
                           {"query_id": query_id, "disable_series": True, "limit": 1}, headers=self.headers)
        result_id = _field(result, "id", "query result")
        deadline = time.monotonic() + RESULT_TIMEOUT
        while not (isinstance(result, dict) and result.get("complete")):
            if time.monotonic() > deadline:
                raise BackendError(f"{self.url}: query result {result_id} not complete after {RESULT_TIMEOUT:g} s")
            time.sleep(RESULT_POLL)
            result = get_json(join(self.url, f"/1/query_results/{slug}/{result_id}"), headers=self.headers)
        rows = (result.get("data") or {}).get("results") or []
        stored = sum(int((row.get("data") or {}).get("COUNT") or 0) for row in rows)
        return Count(stored=stored)

    def explain(self, signal: str, sent: SentFigures, count: Count) -> list[str]:
        return []


def _field(answer: object, name: str, what: str) -> str:
    if not isinstance(answer, dict) or not answer.get(name):
        raise BackendError(f"honeycomb: the {what} answer has no {name}: {str(answer)[:200]}")
    return str(answer[name])
