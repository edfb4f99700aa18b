"""The send loop: schedule, rate, workers, counters, progress.

Loaded batches are interleaved into one schedule (each signal spread evenly
through a pass). A worker walks its share of the schedule, pass after pass:
take tokens for the batch's events, wait for a free in-flight slot, patch
(compiled, GIL released), hand the bytes to the transport. Per-send work in
Python is a handful of calls per batch, never per event.

With several processes the workers are forked after loading, so the batches
are shared copy-on-write, each takes every P-th schedule item and 1/P of the
rate; each writes its counters into shared memory the parent reads.

    settings  SendSettings: what a run is told
    plan      RatePlan: the target rate over time (one rate, or k6-style stages)
    rate      TokenBucket: the limiter the workers take events from
    schedule  the pass's order, and the request bodies of one send of a batch
    counters  shared counters and latency histograms, rate-limited error lines
    worker    the worker loop, its transports, the forked processes
    progress  progress lines, stage cuts, the abort check
    run       run(): all of the above, and the report
"""
from __future__ import annotations

from .counters import COUNTERS, Counters
from .plan import RatePlan, Stage
from .progress import stage_line
from .rate import TokenBucket
from .run import run
from .schedule import ScheduleItem, build_schedule, prepare_compression, requests_for
from .settings import SendSettings, target_rate

__all__ = ["COUNTERS", "Counters", "RatePlan", "ScheduleItem", "SendSettings", "Stage", "TokenBucket",
           "build_schedule", "prepare_compression", "requests_for", "run", "stage_line", "target_rate"]
