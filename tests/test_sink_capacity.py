"""A sink with a known capacity (telegen.sink.capacity, `telegen sink
--capacity`): the token bucket's and the queue's arithmetic on a clock the
test moves, then the real sender against a real sink over gRPC and HTTP."""
from __future__ import annotations

import pytest

from telegen.sink.capacity import ServiceQueue, TokenBucket, per_second


class FakeClock:
    """A monotonic clock that moves only when the test says."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ----------------------------------------------------------------------------
# The token bucket


def test_a_fresh_bucket_takes_one_burst_then_refuses():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)  # burst: 0.1 s, 100 events
    assert bucket.burst == 100
    assert [bucket.admit(40) for _ in range(4)] == [True, True, True, False]
    assert bucket.balance == -20, "the third request went into debt by what it lacked"


def test_debt_is_paid_by_the_refill_before_anything_else_passes():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    assert bucket.admit(130)  # 100 -> -30
    clock.advance(0.029)  # -1: still in debt
    assert not bucket.admit(1)
    clock.advance(0.002)  # +1
    assert bucket.admit(1)


def test_the_balance_holds_at_most_one_burst():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    clock.advance(3600)  # an idle hour saves no more than 0.1 s worth
    assert bucket.admit(100)
    assert not bucket.admit(1)


def test_a_request_larger_than_the_burst_passes_once_the_balance_is_positive():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)  # burst 100
    assert bucket.admit(100)
    assert not bucket.admit(5000)
    clock.advance(0.001)
    assert bucket.admit(5000), "any positive balance admits a request, however large"
    clock.advance(4.0)
    assert not bucket.admit(5000), "its debt is paid first: 5 s at 1,000/s"
    # Idle long enough, the balance may save up one such request, not just a burst.
    clock.advance(11.0)
    assert bucket.admit(5000) and bucket.balance == 0


@pytest.mark.parametrize("events_per_request", [1, 37, 100, 250, 5000])
def test_over_a_long_overload_the_admitted_rate_is_the_capacity(events_per_request):
    """Offered 3x the capacity in requests of any size (smaller and larger
    than the burst) for 100 s: the admitted events are the capacity's, within 2 %."""
    clock = FakeClock()
    rate = 2000.0
    bucket = TokenBucket(rate, clock=clock)
    seconds = 100.0
    gap = events_per_request / (3 * rate)  # the arrival interval that offers 3x
    admitted = 0
    for _ in range(int(seconds / gap)):
        if bucket.admit(events_per_request):
            admitted += events_per_request
        clock.advance(gap)
    assert abs(admitted / seconds - rate) / rate < 0.02, admitted / seconds


def test_below_capacity_nothing_is_refused():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    for _ in range(10_000):
        assert bucket.admit(90)
        clock.advance(0.1)  # 900 events/s


def test_a_bucket_needs_a_positive_rate():
    with pytest.raises(ValueError):
        TokenBucket(0)


# ----------------------------------------------------------------------------
# The service queue


def test_an_idle_queue_answers_after_the_service_time():
    clock = FakeClock()
    queue = ServiceQueue(1000, clock=clock)
    assert queue.delay(50) == pytest.approx(0.050)
    clock.advance(1.0)
    assert queue.delay(10) == pytest.approx(0.010), "the server was idle: no wait"


def test_requests_arriving_together_wait_for_each_other_in_order():
    clock = FakeClock()
    queue = ServiceQueue(1000, clock=clock)
    assert [queue.delay(100) for _ in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    clock.advance(0.25)  # two served, the third half way
    assert queue.delay(100) == pytest.approx(0.25)  # waits 0.15, served in 0.1


def test_offered_more_than_the_rate_latency_grows_and_throughput_is_the_rate():
    clock = FakeClock()
    rate = 1000.0
    queue = ServiceQueue(rate, clock=clock)
    delays = []
    answered_by = 0.0
    for _ in range(1000):  # 100 events every 0.05 s: 2,000/s for 50 s
        delay = queue.delay(100)
        delays.append(delay)
        answered_by = clock.now + delay
        clock.advance(0.05)
    assert delays == sorted(delays) and delays[-1] > 40, "the wait grows as long as the overload lasts"
    served = 1000 * 100
    started = clock.now - 1000 * 0.05
    assert served / (answered_by - started) == pytest.approx(rate)


def test_offered_less_than_the_rate_latency_stays_the_service_time():
    clock = FakeClock()
    queue = ServiceQueue(1000, clock=clock)
    for _ in range(1000):  # 50 events every 0.1 s: 500/s
        assert queue.delay(50) == pytest.approx(0.050)
        clock.advance(0.1)


def test_a_queue_needs_a_positive_rate():
    with pytest.raises(ValueError):
        ServiceQueue(-1)


def test_rates_are_said_as_people_read_them():
    assert [per_second(r) for r in (20_000, 5000.0, 2.5, 7, 1234.5)] == ["20,000", "5,000", "2.5", "7", "1,234"]
