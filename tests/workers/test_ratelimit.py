"""The shared token bucket, against a real Redis, with a clock the test moves."""

from __future__ import annotations

import pytest
import redis

from workers.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiters(redis_url: str, clock: FakeClock, request) -> list[RateLimiter]:
    """Two limiters on one bucket: what two worker processes see."""
    client = redis.Redis.from_url(redis_url)
    name = f"test-{request.node.name}"
    for key in client.scan_iter(f"relay:ratelimit:{name}*"):
        client.delete(key)
    return [
        RateLimiter(client, rate=10, burst=3, name=name, clock=clock, sleep=clock.sleep)
        for _ in range(2)
    ]


def test_burst_then_the_rate_is_shared_by_every_worker(limiters, clock):
    first, second = limiters
    assert [first.try_acquire(), second.try_acquire(), first.try_acquire()] == [0, 0, 0]
    # The burst of 3 is spent for both: the next token is 1/rate = 0.1 s away.
    assert second.try_acquire() == pytest.approx(0.1)
    clock.now += 0.1
    assert first.try_acquire() == 0
    assert second.try_acquire() == pytest.approx(0.1)


def test_acquire_waits_for_a_token_and_gives_up_at_its_timeout(limiters, clock):
    first, _ = limiters
    for _ in range(3):
        assert first.acquire()
    assert first.acquire(timeout=1)
    assert clock.slept == [pytest.approx(0.1)]
    first.pause(30)
    assert not first.acquire(timeout=5)


def test_a_429_pauses_every_worker(limiters, clock):
    first, second = limiters
    first.pause(2.5)
    assert second.try_acquire() == pytest.approx(2.5)
    # A shorter pause does not cut a longer one short.
    second.pause(1)
    assert first.try_acquire() == pytest.approx(2.5)
    clock.now += 2.5
    assert second.try_acquire() == 0
