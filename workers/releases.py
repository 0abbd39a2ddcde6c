"""Releases in the workers: create or track one, poll it to the end, report it, cut scheduled ones,
and sweep up poll chains and notifications that were lost.

Plain functions over a `Runtime`; the Celery tasks in `workers.tasks` are thin adapters around
them. Every Segments.ai call goes through `rt.client`, whose session takes a token from the shared
rate limit first, so polling competes fairly with samples and labels. Work is handed on through a
`Dispatch` (the broker), never run inline, so a task stays short and safe to run twice.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from celery import Celery
from celery.schedules import crontab

from config import Settings
from relay.events import Event
from relay.notify import Resolver, format_duration, resolve_host, send, signed_request
from relay.releases import (
    ACTIVE,
    CREATING,
    FAILED,
    PENDING,
    SUCCEEDED,
    TIMED_OUT,
    ReleaseStore,
    RequestResult,
    TrackedRelease,
    new_chain,
    parse_time,
    release_key,
    request_release,
)
from relay.segments import backoff_delay
from relay.segments.errors import SegmentsError
from workers.outcome import Outcome
from workers.retry import retry_delay
from workers.runtime import Runtime, ThrottledError

log = logging.getLogger(__name__)

POLL_TASK = "workers.tasks.poll_release"
NOTIFY_TASK = "workers.tasks.notify_release"
SWEEP_TASK = "workers.tasks.sweep_releases"
CUT_TASK = "workers.tasks.cut_scheduled_release"
POLL_BASE_SECONDS = 2.0
POLL_FACTOR = 1.5
POLL_CAP_SECONDS = 60.0
# A poll this far behind its time means its chain was lost (worker killed, broker restarted).
SWEEP_GRACE_SECONDS = 120.0
# How long the sweep leaves a notification to its own task before sending it again.
NOTIFY_GRACE_SECONDS = 300.0
FINAL_DELIVERIES = ("delivered", "failed")


def poll_delay(polls: int) -> float:
    """Seconds before the next poll after `polls` polls: 2 s, 3 s, 4.5 s, ... up to 60 s."""
    if polls < 0:
        raise ValueError(f"polls must be >= 0, got {polls}")
    return min(POLL_CAP_SECONDS, POLL_BASE_SECONDS * POLL_FACTOR ** min(polls, 64))


class Dispatch(Protocol):
    """Where release work is handed on: the broker in the workers, a recorder in unit tests."""

    def poll(self, key: str, chain: str | None, countdown: float) -> None: ...

    def notify(self, key: str, target: str) -> None: ...


@dataclass
class CeleryDispatch:
    """Hands release work to the workers through the broker."""

    celery: Celery

    def poll(self, key: str, chain: str | None, countdown: float) -> None:
        self.celery.send_task(POLL_TASK, args=[key, chain], countdown=max(countdown, 0.0))

    def notify(self, key: str, target: str) -> None:
        self.celery.send_task(NOTIFY_TASK, args=[key, target])


def release_store(rt: Runtime) -> ReleaseStore:
    return ReleaseStore(rt.redis, ttl_seconds=rt.settings.event_ttl_days * 86400)


# -- create and track (event tasks, run through workers.tasks.run_event) ------------------------


def create_release(
    rt: Runtime, event: Event, *, dispatch: Dispatch, now: float | None = None
) -> Outcome:
    """Create the release an operator or a schedule asked for (adopting one of that name)."""
    now = time.time() if now is None else now
    plan = event.payload
    dataset, name = plan["dataset"], plan["name"]
    key = release_key(dataset, name)
    releases = release_store(rt)
    # The record is written when the release is asked for; write it again if it was lost.
    releases.track(
        TrackedRelease(
            dataset=dataset,
            name=name,
            status=CREATING,
            origin=plan.get("origin", "ops"),
            requested_at=event.created_at,
            description=plan.get("description", ""),
            event_id=event.id,
        )
    )
    # A replayed event whose create had failed starts a new round.
    releases.reopen(key, (FAILED,), CREATING, only_uncreated=True)
    try:
        body, created = rt.client.create_or_get_release(dataset, name, plan.get("description", ""))
    except Exception as error:
        _fail_if_final(rt, releases, key, error, event.attempts, dispatch, now)
        raise
    status = _observe(rt, releases, key, body, dispatch, now)
    log.info(
        "release %s",
        "created" if created else "adopted",
        extra={"event_id": event.id, "release": key, "status": status},
    )
    return Outcome(
        "succeeded",
        result={"dataset": dataset, "name": name, "created": created, "status": status},
    )


def track_release(
    rt: Runtime, event: Event, *, dispatch: Dispatch, now: float | None = None
) -> Outcome:
    """Start following a release made elsewhere (a Segments.ai webhook, an ops track call)."""
    now = time.time() if now is None else now
    plan = event.payload
    dataset, name = plan["dataset"], plan["name"]
    origin = plan.get("origin", "webhook")
    key = release_key(dataset, name)
    releases = release_store(rt)
    releases.track(
        TrackedRelease(
            dataset=dataset,
            name=name,
            status=PENDING,
            origin=origin,
            requested_at=now,
            event_id=event.id,
        )
    )
    if origin == "track":
        # An operator asking again after a timeout wants it followed again.
        releases.reopen(key, (TIMED_OUT,), PENDING, only_uncreated=False)
    current = releases.get(key)
    if current is None:
        return Outcome("failed", reason="the tracked release vanished from Redis; track it again")
    if current.status == CREATING:
        return Outcome("skipped", reason=f"the relay is creating it (event {current.event_id})")
    if current.ended:
        return Outcome("skipped", reason=f"already tracked; it ended {current.status}")
    if current.chain and (current.next_poll_at or 0) > now - SWEEP_GRACE_SECONDS:
        return Outcome("skipped", reason="already being polled")
    try:
        body = rt.client.get_release(dataset, name)
    except Exception as error:
        _fail_if_final(rt, releases, key, error, event.attempts, dispatch, now)
        raise
    status = _observe(rt, releases, key, body, dispatch, now)
    log.info("tracking release", extra={"event_id": event.id, "release": key, "status": status})
    return Outcome("succeeded", result={"dataset": dataset, "name": name, "status": status})


def _fail_if_final(
    rt: Runtime,
    releases: ReleaseStore,
    key: str,
    error: Exception,
    attempts: int,
    dispatch: Dispatch,
    now: float,
) -> None:
    """When the event will not be retried (run_event decides the same way), end the release."""
    settings = rt.settings
    final = (
        retry_delay(
            error, attempts, max_attempts=settings.task_max_attempts, cap=settings.retry_max_seconds
        )
        is None
    )
    if final:
        end_release(rt, releases, key, FAILED, dispatch, now, last_error=error_text(error))


def error_text(error: Exception) -> str:
    """What an error says on a tracked release (the API's own message for API errors)."""
    if hasattr(error, "retryable"):
        return str(error)
    return f"internal error: {type(error).__name__}: {error}"


# -- observing and ending ----------------------------------------------------------------------


def _release_fields(body: dict[str, Any]) -> dict[str, Any]:
    attributes = body.get("attributes") if isinstance(body.get("attributes"), dict) else {}
    values = {
        "uuid": body.get("uuid") if isinstance(body.get("uuid"), str) else None,
        "created_at": parse_time(body.get("created_at")),
        "export_url": attributes.get("url") if isinstance(attributes.get("url"), str) else None,
    }
    return {k: v for k, v in values.items() if v is not None}


def _failure_reason(body: dict[str, Any]) -> str:
    info = body.get("status_info")
    return info if isinstance(info, str) and info else "Segments.ai reports the release FAILED"


def _observe(
    rt: Runtime,
    releases: ReleaseStore,
    key: str,
    body: dict[str, Any],
    dispatch: Dispatch,
    now: float,
) -> str:
    """Record what the API says about a release: end it, or start a fresh poll chain."""
    status = body.get("status")
    fields = _release_fields(body)
    if status == SUCCEEDED:
        end_release(rt, releases, key, SUCCEEDED, dispatch, now, **fields)
        return status
    if status == FAILED:
        reason = _failure_reason(body)
        end_release(rt, releases, key, FAILED, dispatch, now, last_error=reason, **fields)
        return status
    chain = new_chain()
    delay = poll_delay(0)
    started = releases.update(
        key,
        allowed_from=ACTIVE,
        next_poll_at=now + delay,
        status=PENDING,
        chain=chain,
        poll_errors=0,
        **fields,
    )
    if started:
        dispatch.poll(key, chain, delay)
    return PENDING


def end_release(
    rt: Runtime,
    releases: ReleaseStore,
    key: str,
    status: str,
    dispatch: Dispatch,
    now: float,
    **fields: Any,
) -> bool:
    """End an active release and, if this call ended it, have every notify target told."""
    current = releases.get(key)
    if current is None or current.ended:
        return False
    started = fields.get("created_at") or current.created_at or current.requested_at
    targets = [target.name for target in rt.settings.notify]
    claimed = releases.finish(
        key,
        status,
        notify_due=now + NOTIFY_GRACE_SECONDS if targets else None,
        finished_at=now,
        duration_seconds=max(0.0, now - started),
        **fields,
    )
    if claimed:
        log.info("release ended %s", status, extra={"release": key, "event_id": current.event_id})
        for target in targets:
            dispatch.notify(key, target)
    return claimed


# -- polling -----------------------------------------------------------------------------------


def poll_release(
    rt: Runtime, key: str, chain: str | None, *, dispatch: Dispatch, now: float | None = None
) -> str:
    """Look at a PENDING release once; end it, or schedule the next look. Returns what it did."""
    now = time.time() if now is None else now
    releases = release_store(rt)
    current = releases.get(key)
    if current is None:
        return "unknown"
    if current.status != PENDING:
        return current.status
    if chain is not None and current.chain != chain:
        # A sweep started a new chain; this one was thought lost and must stop here.
        return "stale"
    chain = current.chain
    deadline = current.requested_at + rt.settings.release_poll_deadline_seconds
    if now >= deadline:
        waited = format_duration(now - current.requested_at)
        reason = f"still PENDING after {waited} and {current.polls} polls; gave up at the deadline"
        end_release(rt, releases, key, TIMED_OUT, dispatch, now, last_error=reason)
        return TIMED_OUT
    try:
        body = rt.client.get_release(current.dataset, current.name)
    except (SegmentsError, ThrottledError) as error:
        return _poll_failed(rt, releases, current, error, dispatch, now, deadline)
    polls = current.polls + 1
    status = body.get("status")
    fields = _release_fields(body)
    if status == SUCCEEDED:
        end_release(rt, releases, key, SUCCEEDED, dispatch, now, polls=polls, **fields)
        return SUCCEEDED
    if status == FAILED:
        reason = _failure_reason(body)
        end_release(
            rt, releases, key, FAILED, dispatch, now, polls=polls, last_error=reason, **fields
        )
        return FAILED
    delay = min(poll_delay(polls), max(deadline - now, 0.0))
    if releases.update(
        key,
        allowed_from=(PENDING,),
        on_chain=chain,
        next_poll_at=now + delay,
        polls=polls,
        poll_errors=0,
        last_error=None,
        **fields,
    ):
        dispatch.poll(key, chain, delay)
    return PENDING


def _poll_failed(
    rt: Runtime,
    releases: ReleaseStore,
    current: TrackedRelease,
    error: Exception,
    dispatch: Dispatch,
    now: float,
    deadline: float,
) -> str:
    """A transient error polls again later (until the deadline); any other ends the release."""
    text = error_text(error)
    if not getattr(error, "retryable", False):
        log.warning("polling failed: %s", text, extra={"release": current.key})
        end_release(rt, releases, current.key, FAILED, dispatch, now, last_error=text)
        return FAILED
    retry_after = getattr(error, "retry_after", None)
    if getattr(error, "status", None) == 429 and retry_after:
        rt.limiter.pause(retry_after)
    errors = current.poll_errors + 1
    backoff = retry_delay(
        error, errors - 1, max_attempts=sys.maxsize, cap=rt.settings.retry_max_seconds
    )
    delay = min(max(backoff or 0.0, poll_delay(current.polls)), max(deadline - now, 0.0))
    log.info("poll failed, again in %.1fs: %s", delay, text, extra={"release": current.key})
    if releases.update(
        current.key,
        allowed_from=(PENDING,),
        on_chain=current.chain,
        next_poll_at=now + delay,
        poll_errors=errors,
        last_error=text,
    ):
        dispatch.poll(current.key, current.chain, delay)
    return "retrying"


# -- notifications -----------------------------------------------------------------------------


def notify_release(
    rt: Runtime,
    key: str,
    target_name: str,
    *,
    now: float | None = None,
    session: requests.Session | None = None,
    resolve: Resolver = resolve_host,
) -> float | None:
    """Deliver an ended release's message to one target; the seconds to wait before trying
    again, or None when this delivery is over (delivered, or failed for good)."""
    now = time.time() if now is None else now
    releases = release_store(rt)
    current = releases.get(key)
    if current is None or not current.ended or not current.notified:
        return None
    record = current.deliveries.get(target_name) or {}
    if record.get("status") in FINAL_DELIVERIES:
        _settle(rt, releases, key)
        return None
    attempts = int(record.get("attempts", 0)) + 1
    target = next((t for t in rt.settings.notify if t.name == target_name), None)
    if target is None:
        releases.record_delivery(
            key,
            target_name,
            {
                "status": "failed",
                "attempts": attempts - 1,
                "last_error": "target removed from the config",
                "at": now,
            },
        )
        _settle(rt, releases, key)
        return None
    body, headers = signed_request(current, target.secrets, int(now))
    result = send(target, body, headers, session=session, resolve=resolve)
    entry: dict[str, Any] = {
        "attempts": attempts,
        "webhook_id": headers["webhook-id"],
        "http_status": result.status,
        "last_error": result.error,
        "at": now,
    }
    extra = {"release": key, "target": target_name, "event_id": current.event_id}
    if result.ok:
        releases.record_delivery(key, target_name, {**entry, "status": "delivered"})
        log.info("notification delivered", extra=extra)
        _settle(rt, releases, key)
        return None
    if result.retryable and attempts < rt.settings.task_max_attempts:
        delay = backoff_delay(
            attempts - 1, cap=rt.settings.retry_max_seconds, retry_after=result.retry_after
        )
        releases.record_delivery(key, target_name, {**entry, "status": "retrying"})
        releases.notify_later(key, now + delay + NOTIFY_GRACE_SECONDS)
        log.info("notification failed (%s), again in %.1fs", result.error, delay, extra=extra)
        return delay
    releases.record_delivery(key, target_name, {**entry, "status": "failed"})
    log.warning("notification failed for good: %s", result.error, extra=extra)
    _settle(rt, releases, key)
    return None


def _settle(rt: Runtime, releases: ReleaseStore, key: str) -> None:
    """Stop the sweep watching a release once every target's delivery is over."""
    current = releases.get(key)
    if current is None or not _undelivered(rt.settings, current):
        releases.notify_done(key)


def _undelivered(settings: Settings, release: TrackedRelease) -> list[str]:
    return [
        target.name
        for target in settings.notify
        if (release.deliveries.get(target.name) or {}).get("status") not in FINAL_DELIVERIES
    ]


# -- schedules and the sweep (beat tasks) ------------------------------------------------------


def cut_scheduled_release(
    rt: Runtime, index: int, *, celery: Celery, now: float | None = None
) -> RequestResult | None:
    """Ask for the release of schedule `index` for its latest cron slot, once per slot."""
    now = time.time() if now is None else now
    schedules = rt.settings.schedules
    if not 0 <= index < len(schedules):
        log.warning("no schedule #%d in the config (it changed?); nothing to cut", index)
        return None
    schedule = schedules[index]
    slot = schedule.cron.last_slot(datetime.fromtimestamp(now, UTC))
    slot_id = slot.strftime("%Y%m%dT%H%MZ")
    name = schedule.name_for(slot)
    releases = release_store(rt)
    if not releases.claim_slot(index, slot_id, name):
        log.info("schedule #%d slot %s was cut already", index, slot_id, extra={"release": name})
        return None
    try:
        result = request_release(
            rt.store,
            releases,
            celery,
            dataset=schedule.dataset,
            name=name,
            description=schedule.description_for(slot),
            origin="schedule",
            source="schedule",
            now=now,
        )
    except Exception:
        releases.unclaim_slot(index, slot_id)
        raise
    log.info(
        "scheduled release %s",
        result.result,
        extra={"event_id": result.event_id, "release": release_key(schedule.dataset, name)},
    )
    return result


def sweep_releases(rt: Runtime, *, dispatch: Dispatch, now: float | None = None) -> dict[str, int]:
    """Restart lost poll chains and resend notifications whose task was lost."""
    now = time.time() if now is None else now
    releases = release_store(rt)
    releases.prune(now)
    counts = {"polls": 0, "notifications": 0}
    for key in releases.due_polls(now - SWEEP_GRACE_SECONDS):
        if releases.get(key) is None:
            releases.unindex(key)
            continue
        chain = new_chain()
        if releases.update(key, allowed_from=(PENDING,), next_poll_at=now, chain=chain):
            dispatch.poll(key, chain, 0)
            counts["polls"] += 1
            log.info("poll chain was lost; polling again", extra={"release": key})
    for key in releases.due_notifications(now):
        current = releases.get(key)
        if current is None:
            releases.unindex(key)
            continue
        pending = _undelivered(rt.settings, current)
        if not pending:
            releases.notify_done(key)
            continue
        releases.notify_later(key, now + NOTIFY_GRACE_SECONDS)
        for target in pending:
            dispatch.notify(key, target)
            counts["notifications"] += 1
        log.info("notification task was lost; sending again", extra={"release": key})
    return counts


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery beat entries: the sweep, and one crontab entry per configured schedule."""
    entries: dict[str, dict[str, Any]] = {
        "sweep-releases": {"task": SWEEP_TASK, "schedule": settings.release_sweep_seconds},
    }
    for schedule in settings.schedules:
        entries[f"release-schedule-{schedule.index}"] = {
            "task": CUT_TASK,
            "schedule": crontab(**schedule.cron.celery_fields()),
            "args": (schedule.index,),
        }
    return entries
