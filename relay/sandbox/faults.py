"""Fault injection: latency, hangs, 5xx answers, rate limits and failing releases."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from relay.sandbox.errors import ApiError, FieldError, detail
from relay.sandbox.validation import Check, Invalid, boolean, clean, integer, number, optional

SERVER_ERRORS = {
    500: "A server error occurred.",
    503: "Service temporarily unavailable, try again later.",
}


@dataclass(frozen=True)
class Faults:
    """The faults in force; every API request is judged against one snapshot of these."""

    latency_ms: int = 0
    fail_rate: float = 0.0
    fail_status: int = 500
    rate_limit: int | None = None
    retry_after: int = 1
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    release_fail: bool = False
    release_seconds: float = 2.0

    def to_json(self) -> dict[str, Any]:
        """The faults as `GET /_sandbox/faults` shows them."""
        return asdict(self)


def within(check: Check, low: float, high: float) -> Check:
    """`check`, then a range test."""

    def bounded(value: Any) -> Any:
        checked = check(value)
        if not low <= checked <= high:
            raise Invalid(f"Ensure this value is between {low} and {high}.")
        return checked

    return bounded


def http_status(value: Any) -> int:
    """500 or 503, the two statuses a failing request may get."""
    if integer(value) not in SERVER_ERRORS:
        raise Invalid("Must be 500 or 503.")
    return value


FAULT_CHECKS: dict[str, Check] = {
    "latency_ms": within(integer, 0, 600_000),
    "fail_rate": within(number, 0, 1),
    "fail_status": http_status,
    "rate_limit": optional(within(integer, 1, 1_000_000)),
    "retry_after": within(integer, 1, 3600),
    "hang_rate": within(number, 0, 1),
    "hang_seconds": within(number, 0, 3600),
    "release_fail": boolean,
    "release_seconds": within(number, 0, 86_400),
}


def changed_faults(faults: Faults, changes: Any) -> Faults:
    """`faults` with `changes` applied; every unknown or bad field is reported at once."""
    unknown = sorted(set(changes) - set(FAULT_CHECKS)) if isinstance(changes, dict) else []
    if unknown:
        raise FieldError({name: ["Unknown fault."] for name in unknown})
    return replace(faults, **clean(changes, FAULT_CHECKS))


def throttled(retry_after: int) -> ApiError:
    """429 as DRF words it, with the Retry-After the SDK's urllib3 retries honour."""
    error = detail(429, f"Request was throttled. Expected available in {retry_after} seconds.")
    error.headers["Retry-After"] = str(retry_after)
    return error


class RateLimiter:
    """At most N requests per client key in each one-second window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int) -> bool:
        """Count one request for `key`; False when it is over the limit."""
        window = int(self._clock())
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                count = 0
            if count >= limit:
                return False
            self._windows[key] = (window, count + 1)
            return True

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()


@dataclass(frozen=True)
class Verdict:
    """What to do to one request: wait this long, then answer `error` instead (if set)."""

    delay: float = 0.0
    error: ApiError | None = None


class FaultController:
    """The faults in force, changed at run time and reset to the start-up ones."""

    def __init__(self, initial: Faults, draw: Callable[[], float] = random.random) -> None:
        self._initial = initial
        self._current = initial
        self._draw = draw
        self._limiter = RateLimiter()
        self._lock = threading.Lock()

    @property
    def current(self) -> Faults:
        """The faults in force now."""
        return self._current

    def change(self, changes: Any) -> Faults:
        """Apply validated changes."""
        with self._lock:
            self._current = changed_faults(self._current, changes)
            return self._current

    def reset(self) -> None:
        """Back to the start-up faults, with fresh rate-limit windows."""
        with self._lock:
            self._current = self._initial
        self._limiter.reset()

    def hits(self, rate: float) -> bool:
        """A draw that is always true at 1.0 and never at 0."""
        return rate > 0 and self._draw() < rate

    def judge(self, client_key: str) -> Verdict:
        """Decide the fate of one API request from `client_key`."""
        faults = self._current
        delay = faults.latency_ms / 1000
        if self.hits(faults.hang_rate):
            delay += faults.hang_seconds
        if faults.rate_limit is not None and not self._limiter.allow(client_key, faults.rate_limit):
            return Verdict(delay, throttled(faults.retry_after))
        if self.hits(faults.fail_rate):
            return Verdict(delay, detail(faults.fail_status, SERVER_ERRORS[faults.fail_status]))
        return Verdict(delay)
