"""The rate limiter on a simulated clock: what it lets through, request by
request, against the plan: over a run and in every one-second window within
5 % of the target plus one request, from the first second on, whatever the
request sizes (20,000-span traces among 10-span ones) and however the
endpoint stalls. The wall-clock figures of real runs are in
benchmarks/test_send.py (per-stage rate accuracy)."""
from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from telegen.send.engine.plan import RatePlan, Stage
from telegen.send.engine.rate import BURST_SECONDS, TokenBucket


class SimulatedTime:
    """A clock that moves only when the bucket waits or the sender works."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Waits(threading.Event):
    """The bucket's `stop`: waiting moves the simulated clock instead of sleeping."""

    def __init__(self, clock: SimulatedTime) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0.0
        return False


def simulate(plan: RatePlan, requests: list[int], stalls: list[float], seconds: float) -> list[tuple[float, int]]:
    """(time, events) of every request the bucket lets go within `seconds`;
    after request i the sender is busy for stalls[i % len] seconds (a slow
    endpoint holding every slot)."""
    clock = SimulatedTime()
    bucket = TokenBucket(plan, started=0.0, clock=clock)
    stop = Waits(clock)
    sent = []
    i = 0
    while True:
        n = requests[i % len(requests)]
        if not bucket.acquire(n, stop, deadline=seconds):
            return sent
        sent.append((clock.now, n))
        clock.now += stalls[i % len(stalls)]
        i += 1


def worst_window(sent: list[tuple[float, int]], plan: RatePlan, width: float = 1.0) -> float:
    """The most events sent in any window of `width` seconds, over what the plan allows in it."""
    worst = 0.0
    times = [t for t, _ in sent]
    for start_index, (start, _) in enumerate(sent):
        # Windows starting at each send are the worst case for windows that start anywhere.
        total, j = 0, start_index
        while j < len(sent) and times[j] < start + width:
            total += sent[j][1]
            j += 1
        worst = max(worst, total - (plan.events_by(start + width) - plan.events_by(start)))
    return worst


REQUEST_SIZES = st.lists(st.sampled_from([100, 1_000, 2_500, 20_000]), min_size=1, max_size=30)
STALLS = st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.001, 0.05, 0.3, 2.0]), min_size=1, max_size=10)


@settings(max_examples=60, deadline=None)
@given(requests=REQUEST_SIZES, stalls=STALLS, rate=st.sampled_from([20_000, 100_000]))
def test_every_second_stays_within_five_percent_plus_one_request(requests, stalls, rate):
    plan = RatePlan((), rate)
    seconds = 10.0
    sent = simulate(plan, requests, stalls, seconds)
    biggest = max(requests)
    assert sent, "nothing was let through"
    # From the first second on: no burst credit at the start.
    first = sum(n for t, n in sent if t < 1.0)
    assert first <= rate + biggest
    assert worst_window(sent, plan) <= BURST_SECONDS * rate + biggest + 1e-6
    total = sum(n for _, n in sent)
    assert total <= rate * seconds + biggest
    if all(stall == 0.0 for stall in stalls):
        # A sender that is never held back reaches the rate: the limiter does not starve large requests.
        assert total >= rate * seconds - biggest


@settings(max_examples=30, deadline=None)
@given(requests=REQUEST_SIZES, stalls=STALLS)
def test_a_ramp_is_followed_from_zero_without_running_ahead(requests, stalls):
    plan = RatePlan([Stage(5, 100_000), Stage(5, 100_000), Stage(0, 20_000), Stage(5, 0), Stage(3, 50_000)])
    sent = simulate(plan, requests, stalls, plan.duration)
    biggest = max(requests)
    so_far = 0
    for t, n in sent:
        # Before a request goes, what went before it is within what the plan allowed by then.
        assert so_far <= plan.events_by(t) + 1e-6
        so_far += n
    assert worst_window(sent, plan) <= BURST_SECONDS * 100_000 + biggest + 1e-6


def test_a_large_request_is_not_starved_and_is_paid_for():
    plan = RatePlan((), 10_000)
    sent = simulate(plan, [50_000], [0.0], 20.0)
    # 50,000 events at 10,000/s: one every 5 s, the first at once.
    assert [round(t, 2) for t, _ in sent] == [0.0, 5.0, 10.0, 15.0]


def test_allowance_left_unused_by_a_stall_is_capped():
    plan = RatePlan((), 100_000)
    # A 2 s stall (every slot held by a slow endpoint), then the sender is free again.
    sent = simulate(plan, [100], [2.0] + [0.0] * 5_000, 10.0)
    after = [(t, n) for t, n in sent if 2.0 <= t < 2.0 + 1e-3]
    # Right after the stall it catches up by the burst only, not the 2 s it missed.
    assert sum(n for _, n in after) <= BURST_SECONDS * 100_000 + 100 + 0.001 * 100_000
    assert worst_window(sent, plan) <= BURST_SECONDS * 100_000 + 100
