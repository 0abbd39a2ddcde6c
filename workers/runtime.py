"""The services a worker process uses, built once per process from the environment."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis
import requests

from config import Settings
from relay.events import EventStore
from relay.segments import SegmentsClient
from workers.ratelimit import RateLimiter


class ThrottledError(Exception):
    """The shared rate limit gave no token in time; try the task again later."""

    retryable = True

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"shared API rate limit: no token within the wait; retry in {retry_after:.1f}s"
        )
        self.retry_after = retry_after


class RateLimitedSession(requests.Session):
    """A requests session that takes a token from the shared bucket before every request."""

    def __init__(self, limiter: RateLimiter, wait: float) -> None:
        super().__init__()
        self.limiter = limiter
        self.wait = wait

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        if not self.limiter.acquire(timeout=self.wait):
            raise ThrottledError(retry_after=self.wait)
        return super().send(request, **kwargs)


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    store: EventStore
    limiter: RateLimiter
    client: SegmentsClient


def build_runtime(settings: Settings) -> Runtime:
    """Connect to Redis and the API for these settings."""
    conn = redis.Redis.from_url(
        settings.require_redis_url(), socket_timeout=10, socket_connect_timeout=5
    )
    store = EventStore(
        conn, ttl_seconds=settings.event_ttl_days * 86400, stale_seconds=settings.stale_seconds
    )
    limiter = RateLimiter(conn, rate=settings.api_rate, burst=settings.api_burst)
    client = SegmentsClient(
        settings.api_url,
        settings.segments_api_key,
        connect_timeout=settings.api_connect_timeout,
        read_timeout=settings.api_read_timeout,
        session=RateLimitedSession(limiter, wait=30.0),
    )
    return Runtime(settings=settings, redis=conn, store=store, limiter=limiter, client=client)


@functools.cache
def runtime() -> Runtime:
    """This process's runtime; built on first use, after the pool has forked."""
    return build_runtime(Settings.from_env())
