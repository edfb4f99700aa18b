"""The local OTLP receiver: counts, and optionally validates, what it gets.

    receiver  Sink: the three OTLP/gRPC collector services on one port (and
              OTLP/HTTP on another), both through one carrier-neutral path
    http      HttpReceiver: OTLP/HTTP (binary protobuf) on aiohttp, for Sink(listen_http=...)
    answer    Answer: what one request is answered with, whatever the carrier
    validate  count_events (compiled wire walk) and find_problem (full decode)
    stats     SignalStats / SinkStats: one bucket per request, one count per event
    faults    SinkFaults: errors, partial success, delay, dropped connections and a capacity on demand
    capacity  TokenBucket / ServiceQueue: a known capacity, refused above it or queued
    record    Recorder: `--record DIR`, every accepted request kept per signal for `telegen import`
    report    what `telegen sink` prints and writes
    process   SinkProcess: `telegen sink` in its own process, for the demo and benchmarks

Everything but the receivers (receiver's gRPC handler, http) is independent of the carrier.
"""
from ..errors import SinkError
from .answer import Answer
from .faults import Refusal, SinkFaults
from .process import SinkProcess, free_port
from .receiver import SERVICES, Sink, split_listen
from .stats import SignalStats, SinkStats
from .validate import count_events, find_problem

__all__ = [
    "SERVICES",
    "Answer",
    "Refusal",
    "SignalStats",
    "Sink",
    "SinkError",
    "SinkFaults",
    "SinkProcess",
    "SinkStats",
    "count_events",
    "find_problem",
    "free_port",
    "split_listen",
]
