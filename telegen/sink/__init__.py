"""The local OTLP receiver: counts, and optionally validates, what it gets.

    receiver  Sink: the three OTLP/gRPC collector services on one port
    validate  count_events (compiled wire walk) and find_problem (full decode)
    stats     SignalStats / SinkStats: one bucket per request, one count per event
    faults    SinkFaults: errors, partial success and delay on demand
    report    what `telegen sink` prints and writes
    process   SinkProcess: `telegen sink` in its own process, for the demo and benchmarks

Everything but the receiver is independent of the carrier, ready for OTLP/HTTP.
"""
from ..errors import SinkError
from .faults import SinkFaults
from .process import SinkProcess, free_port
from .receiver import SERVICES, Sink, split_listen
from .stats import SignalStats, SinkStats
from .validate import count_events, find_problem

__all__ = [
    "SERVICES",
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
