"""The event store in Redis: every accepted notice, its dedupe keys, status and outcome.

An event is written here before the relay answers 2xx, and workers are handed only its id.
Keys (all under one prefix):
  event:<id>              hash: the event's fields (JSON-encoded values)
  dedupe:<key>            the id of the event that claimed this dedupe key (expires with the event)
  events:all              zset of ids by creation time
  events:status:<status>  zset of ids by creation time, one per status
  events:pending          zset of ids by the time after which the reconciler re-enqueues them
  samples:<dataset>       hash "<bucket>/<key>" -> sample uuid (the object -> sample index)
  samples-by-url:<dataset> hash image URL -> sample uuid
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

STATUSES = ("queued", "running", "succeeded", "failed", "skipped", "ignored")
TERMINAL = ("succeeded", "failed", "skipped", "ignored")
PREFIX = "relay:"

# Claims every dedupe key and writes the event, or returns the id that already holds a key.
_RECORD = """
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder then return holder end
end
local id, ttl, now, pending = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local fields = cjson.decode(ARGV[5])
local prefix = ARGV[6]
for i, key in ipairs(KEYS) do redis.call('SET', key, id, 'EX', ttl) end
local hkey = prefix .. 'event:' .. id
for k, v in pairs(fields) do redis.call('HSET', hkey, k, v) end
redis.call('EXPIRE', hkey, ttl)
redis.call('ZADD', prefix .. 'events:all', now, id)
redis.call('ZADD', prefix .. 'events:status:' .. cjson.decode(fields['status']), now, id)
if pending ~= '' then redis.call('ZADD', prefix .. 'events:pending', pending, id) end
return false
"""

# Moves an event to a new status if it is in one of the allowed ones; returns the old status.
_TRANSITION = """
local prefix, id = ARGV[1], ARGV[2]
local hkey = prefix .. 'event:' .. id
if redis.call('EXISTS', hkey) == 0 then return false end
local old = cjson.decode(redis.call('HGET', hkey, 'status'))
local allowed = ARGV[3]
if allowed ~= '' and not string.find(',' .. allowed .. ',', ',' .. old .. ',', 1, true) then
  return {old, 0}
end
local fields = cjson.decode(ARGV[4])
local new = cjson.decode(fields['status'])
for k, v in pairs(fields) do redis.call('HSET', hkey, k, v) end
if ARGV[6] == '1' then
  local n = tonumber(cjson.decode(redis.call('HGET', hkey, 'attempts'))) + 1
  redis.call('HSET', hkey, 'attempts', tostring(n))
end
local created = redis.call('ZSCORE', prefix .. 'events:all', id) or ARGV[7]
redis.call('ZREM', prefix .. 'events:status:' .. old, id)
redis.call('ZADD', prefix .. 'events:status:' .. new, created, id)
if ARGV[5] == '' then
  redis.call('ZREM', prefix .. 'events:pending', id)
else
  redis.call('ZADD', prefix .. 'events:pending', ARGV[5], id)
end
return {old, 1}
"""


def new_event_id() -> str:
    """A unique id that sorts by creation time."""
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


@dataclass
class Event:
    """One recorded notice and what became of it."""

    id: str
    source: str
    kind: str  # "sample" (more kinds come with predictions and releases)
    status: str
    created_at: float
    updated_at: float
    payload: dict[str, Any] = field(
        default_factory=dict
    )  # what the worker needs, e.g. a SamplePlan
    message_id: str | None = None
    dedupe_keys: list[str] = field(default_factory=list)
    attempts: int = 0
    reason: str | None = None  # why it was ignored or skipped
    last_error: str | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "dedupe_keys"}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Event:
        values = {k.decode(): json.loads(v) for k, v in raw.items()}
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class EventStore:
    """Record, dedupe, track and look up events in Redis."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int, stale_seconds: float) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds
        self.stale_seconds = stale_seconds
        self._record = client.register_script(_RECORD)
        self._transition = client.register_script(_TRANSITION)

    def record(self, event: Event) -> str | None:
        """Store a new event and claim its dedupe keys; a duplicate returns the holder's id."""
        keys = [f"{PREFIX}dedupe:{k}" for k in event.dedupe_keys]
        pending = "" if event.status in TERMINAL else str(event.created_at + self.stale_seconds)
        fields = {k: json.dumps(v) for k, v in event.__dict__.items()}
        holder = self._record(
            keys=keys,
            args=[
                event.id,
                self.ttl_seconds,
                event.created_at,
                pending,
                json.dumps(fields),
                PREFIX,
            ],
        )
        return holder.decode() if holder else None

    def forget(self, event: Event) -> None:
        """Remove an event that could not be enqueued, so the sender's retry is not a duplicate."""
        pipe = self.redis.pipeline()
        for key in event.dedupe_keys:
            pipe.delete(f"{PREFIX}dedupe:{key}")
        pipe.delete(f"{PREFIX}event:{event.id}")
        pipe.zrem(f"{PREFIX}events:all", event.id)
        pipe.zrem(f"{PREFIX}events:status:{event.status}", event.id)
        pipe.zrem(f"{PREFIX}events:pending", event.id)
        pipe.execute()

    def get(self, event_id: str) -> Event | None:
        raw = self.redis.hgetall(f"{PREFIX}event:{event_id}")
        return Event.from_hash(raw) if raw else None

    def transition(
        self,
        event_id: str,
        status: str,
        *,
        allowed_from: Iterable[str] = (),
        pending_until: float | None = None,
        count_attempt: bool = False,
        **fields: Any,
    ) -> bool:
        """Set status (and fields) if the event is in one of `allowed_from`; report if it moved."""
        now = time.time()
        values = {
            k: json.dumps(v) for k, v in {**fields, "status": status, "updated_at": now}.items()
        }
        outcome = self._transition(
            args=[
                PREFIX,
                event_id,
                ",".join(allowed_from),
                json.dumps(values),
                "" if pending_until is None else str(pending_until),
                "1" if count_attempt else "0",
                now,
            ]
        )
        return bool(outcome) and outcome[1] == 1

    def start(self, event_id: str) -> Event | None:
        """Mark an event running (one more attempt); None if it has already finished."""
        moved = self.transition(
            event_id,
            "running",
            allowed_from=("queued", "running"),
            pending_until=time.time() + self.stale_seconds,
            count_attempt=True,
        )
        return self.get(event_id) if moved else None

    def retry_later(self, event_id: str, error: str, delay: float) -> None:
        self.transition(
            event_id,
            "queued",
            allowed_from=("running",),
            pending_until=time.time() + delay + self.stale_seconds,
            last_error=error,
        )

    def finish(
        self,
        event_id: str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.transition(
            event_id,
            status,
            allowed_from=("queued", "running"),
            result=result,
            last_error=error,
            reason=reason,
        )

    def requeue(
        self, event_id: str, *, from_statuses: Iterable[str] = ("queued", "running")
    ) -> bool:
        """Put an event back to queued (replay, or a lost message); report if it moved."""
        return self.transition(
            event_id,
            "queued",
            allowed_from=from_statuses,
            pending_until=time.time() + self.stale_seconds,
        )

    def overdue(self, now: float | None = None, limit: int = 500) -> list[str]:
        """Ids of queued or running events whose message may have been lost."""
        now = time.time() if now is None else now
        ids = self.redis.zrangebyscore(f"{PREFIX}events:pending", "-inf", now, start=0, num=limit)
        return [i.decode() for i in ids]

    def list(
        self, *, status: str | None = None, limit: int = 50, before: float | None = None
    ) -> list[Event]:
        """Newest events first, optionally of one status and created before a time."""
        key = f"{PREFIX}events:status:{status}" if status else f"{PREFIX}events:all"
        top = "+inf" if before is None else f"({before}"
        ids = self.redis.zrevrangebyscore(key, top, "-inf", start=0, num=limit)
        events = [self.get(i.decode()) for i in ids]
        return [e for e in events if e is not None]

    def search(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before: float | None = None,
        max_scan: int = 5000,
    ) -> tuple[list[Event], float | None]:
        """Newest events matching every filter given, and the `before` to continue from.

        Source and kind have no index of their own, so at most `max_scan` events are looked at;
        the cursor is None once the index is exhausted.
        """
        key = f"{PREFIX}events:status:{status}" if status else f"{PREFIX}events:all"
        top = "+inf" if before is None else f"({before!r}"
        found: list[Event] = []
        scanned = 0
        while scanned < max_scan:
            page = self.redis.zrevrangebyscore(
                key, top, "-inf", start=0, num=min(200, max_scan - scanned), withscores=True
            )
            if not page:
                return found, None
            pipe = self.redis.pipeline(transaction=False)
            for member, _ in page:
                pipe.hgetall(f"{PREFIX}event:{member.decode()}")
            for (_, score), raw in zip(page, pipe.execute(), strict=True):
                scanned += 1
                if not raw:
                    continue  # expired; its index entry is pruned later
                event = Event.from_hash(raw)
                if (source is None or event.source == source) and (
                    kind is None or event.kind == kind
                ):
                    found.append(event)
                    if len(found) == limit:
                        return found, score
            top = f"({page[-1][1]!r}"
        return found, float(top[1:])

    def rerun(self, event_id: str, *, from_statuses: Iterable[str]) -> bool:
        """Queue a finished event again with a fresh attempt budget (replay); report if it moved."""
        return self.transition(
            event_id,
            "queued",
            allowed_from=from_statuses,
            pending_until=time.time() + self.stale_seconds,
            attempts=0,
        )

    def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline()
        for status in STATUSES:
            pipe.zcard(f"{PREFIX}events:status:{status}")
        return dict(zip(STATUSES, pipe.execute(), strict=True))

    def prune(self, now: float | None = None) -> int:
        """Drop index entries of events that have expired."""
        cutoff = (time.time() if now is None else now) - self.ttl_seconds
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(f"{PREFIX}events:all", "-inf", cutoff)
        for status in STATUSES:
            pipe.zremrangebyscore(f"{PREFIX}events:status:{status}", "-inf", cutoff)
        return pipe.execute()[0]

    def remember_sample(
        self, dataset: str, bucket: str, key: str, image_url: str, sample_uuid: str
    ) -> None:
        """Index a sample by its object and by its image URL, for predictions to find it."""
        pipe = self.redis.pipeline()
        pipe.hset(f"{PREFIX}samples:{dataset}", f"{bucket}/{key}", sample_uuid)
        pipe.hset(f"{PREFIX}samples-by-url:{dataset}", image_url, sample_uuid)
        pipe.execute()

    def find_sample(self, dataset: str, bucket: str, key: str) -> str | None:
        value = self.redis.hget(f"{PREFIX}samples:{dataset}", f"{bucket}/{key}")
        return value.decode() if value else None

    def find_sample_by_url(self, dataset: str, image_url: str) -> str | None:
        value = self.redis.hget(f"{PREFIX}samples-by-url:{dataset}", image_url)
        return value.decode() if value else None
