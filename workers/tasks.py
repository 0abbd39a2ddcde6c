"""Celery tasks: thin adapters that load an event by id, run one function, record the outcome."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from celery import Task, shared_task

from relay import metrics
from relay.events import Event
from relay.queue import enqueue
from workers import predictions, releases, samples
from workers.outcome import Outcome
from workers.retry import retry_delay
from workers.runtime import Runtime, runtime

log = logging.getLogger(__name__)


def run_event(task: Task, event_id: str, work: Callable[[Runtime, Event], Outcome]) -> None:
    """Run `work` for one event: record success, schedule a retry, or fail it for good."""
    rt = runtime()
    event = rt.store.start(event_id)
    if event is None:
        log.info("event already finished or unknown; nothing to do", extra={"event_id": event_id})
        return
    try:
        outcome = work(rt, event)
    except Exception as error:  # noqa: BLE001 - every failure must land on the event, never vanish
        delay = retry_delay(
            error,
            event.attempts,
            max_attempts=rt.settings.task_max_attempts,
            cap=rt.settings.retry_max_seconds,
        )
        retry_after = getattr(error, "retry_after", None)
        if getattr(error, "status", None) == 429:
            metrics.incr(rt.redis, "relay_api_rate_limited")
            if retry_after:
                rt.limiter.pause(retry_after)
        message = _describe(error)
        if delay is None:
            log.warning("event failed: %s", message, extra={"event_id": event_id})
            rt.store.finish(event_id, "failed", error=message)
            metrics.incr(rt.redis, "relay_tasks", kind=event.kind, result="failed")
            return
        log.info(
            "attempt %d failed, retrying in %.1fs: %s",
            event.attempts,
            delay,
            message,
            extra={"event_id": event_id},
        )
        rt.store.retry_later(event_id, message, delay)
        metrics.incr(rt.redis, "relay_tasks", kind=event.kind, result="retried")
        raise task.retry(countdown=delay, max_retries=None) from None
    error = outcome.reason if outcome.status == "failed" else None
    rt.store.finish(
        event_id, outcome.status, result=outcome.result, reason=outcome.reason, error=error
    )
    metrics.incr(rt.redis, "relay_tasks", kind=event.kind, result=outcome.status)


def _describe(error: Exception) -> str:
    if hasattr(error, "retryable"):
        return str(error)
    # An unexpected error is a bug of ours: keep the traceback in the log, the type on the event.
    log.exception("unexpected error")
    return f"internal error: {type(error).__name__}: {error}"


@shared_task(bind=True, name="workers.tasks.create_sample")
def create_sample(self: Task, event_id: str) -> None:
    """Create (or adopt) the sample a storage event announced."""
    run_event(self, event_id, samples.create_sample)


@shared_task(bind=True, name="workers.tasks.upload_prediction")
def upload_prediction(self: Task, event_id: str) -> None:
    """Put a model's prediction on its sample as a PRELABELED label."""
    run_event(self, event_id, predictions.upload_prediction)


@shared_task(name="workers.tasks.reconcile_events")
def reconcile_events() -> int:
    """Re-enqueue events whose message was lost (broker restart, killed worker)."""
    rt = runtime()
    rt.store.prune()
    celery = reconcile_events.app
    count = 0
    for event_id in rt.store.overdue():
        event = rt.store.get(event_id)
        if event is None or not rt.store.requeue(event_id):
            continue
        enqueue(celery, event.kind, event_id)
        count += 1
        log.info("re-enqueued an overdue event", extra={"event_id": event_id})
    return count


@shared_task(bind=True, name="workers.tasks.create_release")
def create_release(self: Task, event_id: str) -> None:
    """Create (or adopt) the release an operator or a schedule asked for, then poll it."""
    dispatch = releases.CeleryDispatch(self.app)
    run_event(self, event_id, functools.partial(releases.create_release, dispatch=dispatch))


@shared_task(bind=True, name="workers.tasks.track_release")
def track_release(self: Task, event_id: str) -> None:
    """Start following a release made elsewhere (Segments.ai webhook, ops track call)."""
    dispatch = releases.CeleryDispatch(self.app)
    run_event(self, event_id, functools.partial(releases.track_release, dispatch=dispatch))


@shared_task(name="workers.tasks.poll_release")
def poll_release(key: str, chain: str | None = None) -> None:
    """Look at a PENDING release once; end it or schedule the next look."""
    releases.poll_release(runtime(), key, chain, dispatch=releases.CeleryDispatch(poll_release.app))


@shared_task(bind=True, name="workers.tasks.notify_release")
def notify_release(self: Task, key: str, target: str) -> None:
    """Deliver an ended release's message to one notify target, retrying transient failures."""
    delay = releases.notify_release(runtime(), key, target)
    if delay is not None:
        raise self.retry(countdown=delay, max_retries=None)


@shared_task(name="workers.tasks.cut_scheduled_release")
def cut_scheduled_release(index: int) -> None:
    """Ask for schedule `index`'s release of its latest cron slot (once per slot)."""
    releases.cut_scheduled_release(runtime(), index, celery=cut_scheduled_release.app)


@shared_task(name="workers.tasks.sweep_releases")
def sweep_releases() -> None:
    """Restart lost poll chains and resend notifications whose task was lost."""
    releases.sweep_releases(runtime(), dispatch=releases.CeleryDispatch(sweep_releases.app))
