"""VictoriaLogs' LogsQL API: log records stored in the window, counted by
VictoriaLogs (`* | stats count()`), and a sent record found by its trace id.

The count is every record of the store in the window, not only this run's:
compare against a VictoriaLogs only this run writes to, or read an excess
as other writers'."""
from __future__ import annotations

import json

from .backend import Count, Probe, SentFigures, Window
from .http import BackendError, join, post_form


class VictoriaLogs:
    kind = "victorialogs"
    signals = ("logs",)
    poll_interval = 0.1

    def __init__(self, url: str) -> None:
        self.url = url

    def check(self) -> None:
        self.rows("* | limit 1")

    def rows(self, logsql: str, window: Window | None = None, limit: int | None = None) -> list[dict]:
        """The JSON lines a LogsQL query answers."""
        fields: dict[str, object] = {"query": logsql}
        if window is not None:
            fields.update(start=f"{window.start:.3f}", end=f"{window.end:.3f}")
        if limit is not None:
            fields["limit"] = limit
        body = post_form(join(self.url, "/select/logsql/query"), fields)
        try:
            return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except ValueError:
            raise BackendError(f"{self.url}: LogsQL {logsql!r} answered something other than JSON lines") from None

    def expected(self, signal: str, sent: SentFigures) -> tuple[int, str] | None:
        return (sent.events, "log records") if signal == "logs" else None

    def can_probe(self, signal: str) -> bool:
        return signal == "logs"

    def count(self, signal: str, window: Window, sent: SentFigures) -> Count:
        rows = self.rows("* | stats count() as stored", window)
        return Count(stored=int(rows[0].get("stored", 0)) if rows else 0)

    def visible(self, probe: Probe) -> bool:
        return bool(probe.trace_id) and bool(self.rows(f"trace_id:={json.dumps(probe.trace_id)}", limit=1))

    def explain(self, signal: str, sent: SentFigures, count: Count) -> list[str]:
        return []
