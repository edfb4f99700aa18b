"""Metric generations (telegen.send.engine.order): a metric batch goes out
again only once every metric request of its generation is answered, in every
process; each generation has one stamp, at least 1 ms (or the export
interval) after the one before."""
from __future__ import annotations

from telegen.send.engine.order import MIN_STEP_NS, Generations, WorkerGenerations


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_a_generation_waits_for_every_answer_and_stamps_rise():
    clock = Clock(1_000_000_000)
    shared = Generations(1, start_ns=clock.now)
    worker = WorkerGenerations(shared, 0, ["a", "b"], clock=clock)
    assert worker.take("a") == worker.take("b") == clock.now, "generation 1: the run's start"
    worker.answered()
    assert worker.take("a") is None, "b of generation 1 is unanswered"
    worker.answered()
    first = worker.stamp_ns
    second = worker.take("a")
    assert second == first + MIN_STEP_NS, "1 ms apart at least, even when answers come at once"
    clock.now += 5 * MIN_STEP_NS
    assert worker.take("b") == second, "one stamp per generation"
    worker.answered(), worker.answered()
    assert worker.take("b") == clock.now and worker.generation == 3


def test_processes_wait_for_each_other_and_share_the_stamp():
    clock = Clock(10**12)
    shared = Generations(2, start_ns=clock.now)
    one = WorkerGenerations(shared, 0, ["x"], clock=clock)
    two = WorkerGenerations(shared, 1, ["y"], clock=clock)
    one.take("x"), two.take("y")
    one.answered()
    assert one.take("x") is None, "the other process has not finished generation 1"
    two.answered()
    clock.now += 7
    stamp = one.take("x")
    clock.now += 3 * MIN_STEP_NS
    assert two.take("y") == stamp, "the first to start a generation stamps it for all"


def test_a_process_without_metric_batches_holds_no_one_back():
    clock = Clock(10**12)
    shared = Generations(2, start_ns=clock.now)
    WorkerGenerations(shared, 1, [], clock=clock)
    worker = WorkerGenerations(shared, 0, ["x"], clock=clock)
    worker.take("x"), worker.answered()
    assert worker.take("x") is not None


def test_an_export_interval_spaces_the_generations():
    clock = Clock(10**12)
    shared = Generations(1, start_ns=clock.now, interval=10.0)
    worker = WorkerGenerations(shared, 0, ["x"], clock=clock)
    worker.take("x"), worker.answered()
    clock.now += 9 * 10**9
    assert worker.take("x") is None
    clock.now += 10**9
    assert worker.take("x") == clock.now == shared.start_ns + 10 * 10**9
