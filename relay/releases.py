"""Tracked releases in Redis: what the relay knows about each release it creates or follows.

A release is tracked from the moment it is asked for (`POST /ops/releases`, a schedule, a
Segments.ai `release.created` webhook, `POST /ops/releases/track`) until it has ended and everyone
configured has been told. Keys (under the event store's prefix):

  release:<owner>/<dataset>/<name>  hash: the TrackedRelease fields (JSON values), plus one
                                    `delivery:<target>` field per notify target
  releases:all                      zset of release keys by request time (newest first listing)
  releases:polling                  zset of PENDING release keys by next poll time (the sweep
                                    re-polls those whose poll chain was lost)
  releases:notify                   zset of ended release keys whose notifications are not all
                                    delivered yet, by when the sweep should look again
  schedule:<index>:<slot>           the release name a schedule cut for one cron slot (SET NX)

Status moves one way: creating -> PENDING -> SUCCEEDED | FAILED | timed_out. Only one caller can
move a release out of creating/PENDING (a Lua script checks and sets), and that caller also claims
`notified` with HSETNX, so two poll chains can never report one release twice.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery

from relay.events import PREFIX, Event, EventStore, new_event_id
from relay.hooks.base import ReleaseRef
from relay.queue import enqueue

CREATING = "creating"
PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "timed_out"
STATUSES = (CREATING, PENDING, SUCCEEDED, FAILED, TIMED_OUT)
ACTIVE = (CREATING, PENDING)
ENDED = (SUCCEEDED, FAILED, TIMED_OUT)
ORIGINS = ("ops", "schedule", "webhook", "track")
DELIVERY_PREFIX = "delivery:"

_ALL = f"{PREFIX}releases:all"
_POLLING = f"{PREFIX}releases:polling"
_NOTIFY = f"{PREFIX}releases:notify"

# Writes a new tracked release unless one exists; 1 if written.
_TRACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# Sets fields if the status is allowed (and the poll chain matches, when given); then puts the
# release in the polling index at ARGV[3] ('' leaves the index alone). 1 if written.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local status = cjson.decode(redis.call('HGET', KEYS[1], 'status'))
local allowed = ARGV[1]
if allowed ~= '' and not string.find(',' .. allowed .. ',', ',' .. status .. ',', 1, true) then
  return 0
end
if ARGV[6] ~= '' then
  local chain = redis.call('HGET', KEYS[1], 'chain')
  if not chain or cjson.decode(chain) ~= ARGV[6] then return 0 end
end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# Ends an active release: sets its final fields, drops it from the polling index and claims the
# notification (HSETNX) in the same step. Returns {ended, claimed}.
_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local status = cjson.decode(redis.call('HGET', KEYS[1], 'status'))
if status ~= 'creating' and status ~= 'PENDING' then return {0, 0} end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local claimed = redis.call('HSETNX', KEYS[1], 'notified', 'true')
if claimed == 1 and ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3]) end
return {1, claimed}
"""

# Starts a new round for an ended release (a replayed create, a re-tracked timeout): clears the
# outcome, the notification claim and the deliveries; 1 if it moved.
_REOPEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local status = cjson.decode(redis.call('HGET', KEYS[1], 'status'))
if not string.find(',' .. ARGV[1] .. ',', ',' .. status .. ',', 1, true) then return 0 end
if ARGV[3] == '1' then
  local uuid = redis.call('HGET', KEYS[1], 'uuid')
  if uuid and cjson.decode(uuid) ~= cjson.null then return 0 end
end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HDEL', KEYS[1], 'notified')
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(name, 1, 9) == 'delivery:' then redis.call('HDEL', KEYS[1], name) end
end
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('ZREM', KEYS[2], ARGV[4])
return 1
"""


def release_key(dataset: str, name: str) -> str:
    """`owner/dataset/name`, how a tracked release is named in URLs and Redis."""
    return f"{dataset}/{name}"


def split_key(key: str) -> tuple[str, str]:
    """(`owner/dataset`, `name`) of a release key; ValueError if it is not one."""
    parts = key.split("/", 2)
    if len(parts) != 3 or not all(parts) or "/" in parts[2]:
        raise ValueError(f"not a release key: {key!r}")
    return f"{parts[0]}/{parts[1]}", parts[2]


def iso(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds, as the ops API shows times."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> float | None:
    """The Unix time of an API timestamp such as `2026-11-27T02:00:03.123456Z`, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def new_chain() -> str:
    """A fresh poll chain id: a poll carrying another id belongs to a chain that was replaced."""
    return secrets.token_hex(6)


@dataclass
class TrackedRelease:
    """One release the relay follows until it has ended and been reported."""

    dataset: str  # "owner/name"
    name: str
    status: str  # one of STATUSES
    origin: str  # one of ORIGINS
    requested_at: float  # when the relay was asked; the poll deadline counts from here
    description: str = ""
    event_id: str | None = None  # the create or track event
    uuid: str | None = None  # the release's id in Segments.ai, once seen
    created_at: float | None = None  # when Segments.ai created it
    finished_at: float | None = None  # when the relay saw it end
    duration_seconds: float | None = None
    export_url: str | None = None
    polls: int = 0
    poll_errors: int = 0  # transient errors in a row while polling
    next_poll_at: float | None = None
    chain: str | None = None  # the live poll chain's id
    last_error: str | None = None
    generation: int = 0  # rounds: a replayed create or re-tracked timeout starts a new one
    updated_at: float | None = None
    notified: bool = False
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return release_key(self.dataset, self.name)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_json(self) -> dict[str, Any]:
        """The release as the ops API shows it: times in ISO 8601, internals left out."""
        times = ("requested_at", "created_at", "finished_at", "next_poll_at", "updated_at")
        body = {k: v for k, v in asdict(self).items() if k not in ("chain", "poll_errors")}
        body = {"key": self.key, **body}
        for name in times:
            body[name] = iso(body[name])
        if self.duration_seconds is not None:
            body["duration_seconds"] = round(self.duration_seconds, 1)
        body["deliveries"] = {
            target: {**record, "at": iso(record.get("at"))}
            for target, record in sorted(self.deliveries.items())
        }
        return body

    def fields(self) -> dict[str, str]:
        """Hash fields (JSON values) for a new record."""
        skip = ("notified", "deliveries")
        return {k: json.dumps(v) for k, v in asdict(self).items() if k not in skip}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> TrackedRelease:
        values: dict[str, Any] = {}
        deliveries: dict[str, dict[str, Any]] = {}
        for k, v in raw.items():
            name = k.decode()
            if name.startswith(DELIVERY_PREFIX):
                deliveries[name[len(DELIVERY_PREFIX) :]] = json.loads(v)
            elif name in cls.__dataclass_fields__:
                values[name] = json.loads(v)
        return cls(**values, deliveries=deliveries)


@dataclass(frozen=True)
class RequestResult:
    """What asking for a release came to: `accepted`, `duplicate` or `retried`."""

    event_id: str
    result: str
    release: TrackedRelease | None


class ReleaseStore:
    """Track, update, end and list releases in Redis."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds
        self._track = client.register_script(_TRACK)
        self._update = client.register_script(_UPDATE)
        self._finish = client.register_script(_FINISH)
        self._reopen = client.register_script(_REOPEN)

    @staticmethod
    def _hkey(key: str) -> str:
        return f"{PREFIX}release:{key}"

    def get(self, key: str) -> TrackedRelease | None:
        raw = self.redis.hgetall(self._hkey(key))
        # A hash without its own fields is a leftover write after the release expired.
        return TrackedRelease.from_hash(raw) if b"dataset" in raw else None

    def track(self, release: TrackedRelease) -> bool:
        """Start tracking a release unless it is tracked already; report if it was new."""
        release.updated_at = release.requested_at
        written = self._track(
            keys=[self._hkey(release.key), _ALL],
            args=[
                json.dumps(release.fields()),
                release.requested_at,
                self.ttl_seconds,
                release.key,
            ],
        )
        return bool(written)

    def forget(self, key: str) -> None:
        """Drop a release that was never handed to a worker (the enqueue failed)."""
        pipe = self.redis.pipeline()
        pipe.delete(self._hkey(key))
        for index in (_ALL, _POLLING, _NOTIFY):
            pipe.zrem(index, key)
        pipe.execute()

    def update(
        self,
        key: str,
        *,
        allowed_from: Iterable[str] = (),
        on_chain: str | None = None,
        next_poll_at: float | None = None,
        **fields: Any,
    ) -> bool:
        """Set fields if the release is in one of `allowed_from` (and on `on_chain`, if given).

        With `next_poll_at`, the release is also (re)filed in the polling index.
        """
        values = {**fields, "updated_at": time.time()}
        if next_poll_at is not None:
            values["next_poll_at"] = next_poll_at
        return bool(
            self._update(
                keys=[self._hkey(key), _POLLING],
                args=[
                    ",".join(allowed_from),
                    json.dumps({k: json.dumps(v) for k, v in values.items()}),
                    "" if next_poll_at is None else next_poll_at,
                    key,
                    self.ttl_seconds,
                    on_chain or "",
                ],
            )
        )

    def finish(self, key: str, status: str, *, notify_due: float | None, **fields: Any) -> bool:
        """End an active release; True only for the one caller that both ended it and claimed
        its notification (so that caller, and no other, sends it).
        """
        values = {**fields, "status": status, "next_poll_at": None, "updated_at": time.time()}
        ended, claimed = self._finish(
            keys=[self._hkey(key), _POLLING, _NOTIFY],
            args=[
                json.dumps({k: json.dumps(v) for k, v in values.items()}),
                "" if notify_due is None else notify_due,
                key,
                self.ttl_seconds,
            ],
        )
        return bool(ended and claimed)

    def reopen(
        self, key: str, from_statuses: Iterable[str], status: str, *, only_uncreated: bool
    ) -> bool:
        """Start a new round for an ended release; `only_uncreated`: only if Segments.ai never
        made it (a create that failed)."""
        now = time.time()
        values = {
            "status": status,
            "requested_at": now,
            "updated_at": now,
            "finished_at": None,
            "duration_seconds": None,
            "last_error": None,
            "polls": 0,
            "poll_errors": 0,
            "next_poll_at": None,
            "chain": None,
        }
        moved = self._reopen(
            keys=[self._hkey(key), _NOTIFY],
            args=[
                ",".join(from_statuses),
                json.dumps({k: json.dumps(v) for k, v in values.items()}),
                "1" if only_uncreated else "0",
                key,
            ],
        )
        if moved:
            self.redis.zadd(_ALL, {key: now})
        return bool(moved)

    def record_delivery(self, key: str, target: str, record: dict[str, Any]) -> None:
        """Note what became of one notify target's delivery (unless the release has expired)."""
        self._update(
            keys=[self._hkey(key), _POLLING],
            args=[
                "",
                json.dumps({f"{DELIVERY_PREFIX}{target}": json.dumps(record)}),
                "",
                key,
                self.ttl_seconds,
                "",
            ],
        )

    def notify_later(self, key: str, due: float) -> None:
        """Tell the sweep to look at this release's deliveries again after `due`."""
        self.redis.zadd(_NOTIFY, {key: due})

    def notify_done(self, key: str) -> None:
        self.redis.zrem(_NOTIFY, key)

    def due_polls(self, before: float, limit: int = 500) -> list[str]:
        """PENDING releases whose next poll should have happened before `before`."""
        keys = self.redis.zrangebyscore(_POLLING, "-inf", before, start=0, num=limit)
        return [k.decode() for k in keys]

    def due_notifications(self, before: float, limit: int = 500) -> list[str]:
        keys = self.redis.zrangebyscore(_NOTIFY, "-inf", before, start=0, num=limit)
        return [k.decode() for k in keys]

    def unindex(self, key: str) -> None:
        """Drop an expired release from every index."""
        pipe = self.redis.pipeline()
        for index in (_ALL, _POLLING, _NOTIFY):
            pipe.zrem(index, key)
        pipe.execute()

    def list(self, *, status: str | None = None, limit: int = 50) -> list[TrackedRelease]:
        """Newest first, optionally of one status."""
        found: list[TrackedRelease] = []
        for release in self._newest_first():
            if status is None or release.status == status:
                found.append(release)
                if len(found) >= limit:
                    break
        return found

    def _newest_first(self, page: int = 200) -> Iterator[TrackedRelease]:
        start = 0
        while True:
            keys = self.redis.zrevrange(_ALL, start, start + page - 1)
            if not keys:
                return
            pipe = self.redis.pipeline()
            for key in keys:
                pipe.hgetall(self._hkey(key.decode()))
            for raw in pipe.execute():
                if raw:
                    yield TrackedRelease.from_hash(raw)
            start += page

    def claim_slot(self, index: int, slot: str, name: str) -> bool:
        """Claim one cron slot of one schedule; False if it was claimed already."""
        key = f"{PREFIX}schedule:{index}:{slot}"
        return bool(self.redis.set(key, name, nx=True, ex=self.ttl_seconds))

    def unclaim_slot(self, index: int, slot: str) -> None:
        """Give a slot back when its release could not be asked for, so a retry may cut it."""
        self.redis.delete(f"{PREFIX}schedule:{index}:{slot}")

    def prune(self, now: float | None = None) -> int:
        """Drop index entries of releases that have expired."""
        cutoff = (time.time() if now is None else now) - self.ttl_seconds
        return self.redis.zremrangebyscore(_ALL, "-inf", cutoff)


def request_release(
    events: EventStore,
    releases: ReleaseStore,
    celery: Celery,
    *,
    dataset: str,
    name: str,
    description: str,
    origin: str,
    source: str,
    now: float | None = None,
) -> RequestResult:
    """Record a create-release event, track the release and enqueue `create_release`.

    Asking twice for one name is a duplicate, unless the first ask failed (say, the dataset did
    not exist yet): then that event is tried again.
    """
    now = time.time() if now is None else now
    key = release_key(dataset, name)
    event = Event(
        id=new_event_id(),
        source=source,
        kind="release",
        status="queued",
        created_at=now,
        updated_at=now,
        payload={"dataset": dataset, "name": name, "description": description, "origin": origin},
        dedupe_keys=[f"release:{dataset}:{name}"],
    )
    holder = events.record(event)
    if holder is not None:
        held = events.get(holder)
        failed = held is not None and held.status == "failed"
        if failed and events.requeue(holder, from_statuses=("failed",)):
            releases.reopen(key, (FAILED,), CREATING, only_uncreated=True)
            enqueue(celery, "release", holder)
            return RequestResult(holder, "retried", releases.get(key))
        return RequestResult(holder, "duplicate", releases.get(key))
    release = TrackedRelease(
        dataset=dataset,
        name=name,
        status=CREATING,
        origin=origin,
        requested_at=now,
        description=description,
        event_id=event.id,
    )
    created = releases.track(release)
    try:
        enqueue(celery, "release", event.id)
    except Exception:
        # Undo, so asking again is accepted anew rather than deduped away.
        events.forget(event)
        if created:
            releases.forget(key)
        raise
    return RequestResult(event.id, "accepted", releases.get(key))


def release_track_event(
    base: dict[str, Any],
    message_id: str | None,
    ref: ReleaseRef,
    keys: list[str],
    origin: str = "webhook",
) -> Event:
    """A queued `release_track` event: start following an existing release.

    `base` holds the event's id, source and times, as `relay.intake` builds them.
    """
    return Event(
        **base,
        kind="release_track",
        status="queued",
        message_id=message_id,
        payload={"dataset": ref.dataset, "name": ref.name, "origin": origin},
        dedupe_keys=keys,
    )
