"""`telegen verify`: read back from the backend what a run sent.

After a run (or, with `telegen send --verify`, right after it) each backend's
own query API counts what it stored in the run's window: spans and traces at
Jaeger (whole traces checked), series at Prometheus, log records at
VictoriaLogs, spans and log records at Honeycomb. Counting waits for the
backend to settle; the loss against what the run's report says was delivered
is judged against a threshold. While a run sends, sampled batches are looked
up every 100 ms until they can be queried: the ingest-to-query lag.

    backend       what every backend reader is (Window, Count, Probe, Backend)
    http          JSON over HTTP; every failure one line (BackendError)
    jaeger, prometheus, victorialogs, honeycomb   one reader per backend
    targets       KIND=URL and the reader each kind opens
    probe         the send-time sampler (the engine's on_sent hook) and the lag watcher
    run           the run's facts, counts taken once settled, the verdicts
    report        verdicts, thresholds, lines and the --stats-json `verify` object

It never imports a stage: it reads the run's report (a dict), and the engine
calls its sampler through SendSettings.on_sent.
"""
from __future__ import annotations

from .backend import Backend, Count, Probe, SentFigures, Window
from .http import BackendError
from .probe import LAG_GRACE, LagSamples, LagWatcher, SentBatchSampler
from .report import DEFAULT_MAX_LOSS_PERCENT, SignalVerdict, VerifyReport
from .run import DEFAULT_SETTLE_TIMEOUT, RunFacts, VerifyInputError, settled_count, verify
from .targets import KINDS, Target, open_backends, parse_target

__all__ = [
    "DEFAULT_MAX_LOSS_PERCENT", "DEFAULT_SETTLE_TIMEOUT", "KINDS", "LAG_GRACE", "Backend", "BackendError", "Count",
    "LagSamples", "LagWatcher", "Probe", "RunFacts", "SentBatchSampler", "SentFigures", "SignalVerdict", "Target",
    "VerifyInputError", "VerifyReport", "Window", "open_backends", "parse_target", "settled_count", "verify",
]
