"""One token bucket in Redis shared by every worker process, for the Segments.ai API.

Celery's own `rate_limit` is per worker process, so N workers would send N times the allowed
rate; a single bucket in Redis keeps the whole fleet under it. A 429 pauses the bucket for its
Retry-After so every worker backs off, not just the one that was told.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

# Takes one token if there is one; otherwise returns how long (ms) until one is due.
_TAKE = """
local now = tonumber(ARGV[1])
local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"""


class RateLimiter:
    """A shared token bucket: `acquire()` blocks until the caller may send one request."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        rate: float,
        burst: int,
        name: str = "segments",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._bucket = f"relay:ratelimit:{name}"
        self._paused = f"relay:ratelimit:{name}:paused"
        self._take = client.register_script(_TAKE)
        self._redis = client
        self._sleep = sleep
        self._clock = clock

    def try_acquire(self) -> float:
        """Take a token now if possible; return 0, or the seconds to wait before trying again."""
        now_ms = int(self._clock() * 1000)
        wait_ms = self._take(
            keys=[self._bucket, self._paused], args=[now_ms, self.rate, self.burst]
        )
        return int(wait_ms) / 1000

    def acquire(self, timeout: float = 60.0) -> bool:
        """Wait for a token, at most `timeout` seconds; report whether one was taken."""
        deadline = self._clock() + timeout
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return True
            if self._clock() + wait > deadline:
                return False
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every worker back for `seconds` (the API said Retry-After)."""
        until = int((self._clock() + seconds) * 1000)
        current = self._redis.get(self._paused)
        if current is None or int(current) < until:
            self._redis.set(self._paused, until, px=max(1, int(seconds * 1000)))
