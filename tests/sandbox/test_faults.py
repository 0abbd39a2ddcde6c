"""Fault decisions and the rate limiter, without a server."""

from __future__ import annotations

import pytest

from relay.sandbox.errors import FieldError
from relay.sandbox.faults import FaultController, Faults, RateLimiter, changed_faults


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_n_per_second_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)

    first_second = [limiter.allow("a", 2) for _ in range(3)]
    other_key = limiter.allow("b", 2)
    clock.now += 1
    next_second = limiter.allow("a", 2)

    assert first_second == [True, True, False]
    assert other_key is True
    assert next_second is True


@pytest.mark.parametrize(
    ("rate", "draw", "fails"),
    [(0.0, 0.0, False), (0.5, 0.49, True), (0.5, 0.5, False), (1.0, 0.999, True)],
)
def test_fail_rate_is_a_draw_below_the_rate(rate: float, draw: float, fails: bool) -> None:
    controller = FaultController(Faults(fail_rate=rate, fail_status=503), draw=lambda: draw)

    verdict = controller.judge("key")

    assert (verdict.error is not None) == fails
    if fails:
        assert verdict.error.status == 503


def test_hang_adds_to_latency() -> None:
    faults = Faults(latency_ms=250, hang_rate=1.0, hang_seconds=4)

    verdict = FaultController(faults).judge("key")

    assert verdict.delay == 4.25
    assert verdict.error is None


def test_throttled_answer_carries_retry_after() -> None:
    controller = FaultController(Faults(rate_limit=1, retry_after=3))

    first, second = controller.judge("key"), controller.judge("key")

    assert first.error is None
    assert second.error.status == 429
    assert second.error.headers == {"Retry-After": "3"}
    assert second.error.body == {
        "detail": "Request was throttled. Expected available in 3 seconds."
    }


def test_change_then_reset_returns_to_start_up_faults() -> None:
    start = Faults(latency_ms=10)
    controller = FaultController(start)

    changed = controller.change({"fail_rate": 0.25, "rate_limit": None})
    controller.reset()

    assert (changed.latency_ms, changed.fail_rate) == (10, 0.25)
    assert controller.current == start


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"fail_rate": 1.5}, ["fail_rate"]),
        ({"fail_status": 404, "hang_rate": -0.1}, ["fail_status", "hang_rate"]),
        ({"bogus": 1, "other": 2}, ["bogus", "other"]),
        ([], ["non_field_errors"]),
    ],
)
def test_bad_changes_name_every_bad_field(changes: object, fields: list[str]) -> None:
    with pytest.raises(FieldError) as caught:
        changed_faults(Faults(), changes)

    assert sorted(caught.value.errors) == fields
