"""The services a worker process uses, built once per process from the environment."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis
import requests
from requests.adapters import HTTPAdapter

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


class RateLimitedAdapter(HTTPAdapter):
    """A pooled transport that takes a token from the shared bucket before every request."""

    def __init__(self, limiter: RateLimiter, wait: float) -> None:
        # No urllib3 retries: the Celery task owns retries, so they do not multiply.
        super().__init__(pool_connections=10, pool_maxsize=10, max_retries=0)
        self.limiter = limiter
        self.wait = wait

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        if not self.limiter.acquire(timeout=self.wait):
            raise ThrottledError(retry_after=self.wait)
        return super().send(request, **kwargs)


def rate_limited_session(limiter: RateLimiter, wait: float = 30.0) -> requests.Session:
    session = requests.Session()
    adapter = RateLimitedAdapter(limiter, wait)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


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
        session=rate_limited_session(limiter),
    )
    return Runtime(settings=settings, redis=conn, store=store, limiter=limiter, client=client)


@functools.cache
def runtime() -> Runtime:
    """This process's runtime; built on first use, after the pool has forked."""
    return build_runtime(Settings.from_env())
