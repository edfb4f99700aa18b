"""Many senders, one run: `telegen fleet` and `telegen.Fleet` on a Ray cluster.

Ray is an optional extra (`pip install '.[fleet]'`); nothing here
imports it until a fleet runs. Without Ray, run shards by hand or as a
Kubernetes Indexed Job (docs/fleet.md): the sender is the same.

    runner  Fleet: place, load, start, watch, drain and sum the senders
    actor   SenderActor: one shard in a Ray actor
    report  FleetReport: the exact sum of the senders' reports, a row each
"""
from .report import FleetReport, SenderRow
from .runner import Fleet, FleetError

__all__ = ["Fleet", "FleetError", "FleetReport", "SenderRow"]
