"""Replay events: put finished ones back to queued and hand them to the workers again.

One plain function used by `POST /ops/events/.../replay` and by `relay replay`. A replayed event
keeps its id, payload and history, gets a fresh attempt budget, and runs its kind's task again;
the tasks are safe to run twice, so replaying a succeeded event only re-checks its effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from relay.events import Event, EventStore
from relay.queue import TASK_FOR_KIND, enqueue

log = logging.getLogger(__name__)

# Finished events that can run again; queued and running ones are already on their way.
REPLAYABLE_STATUSES = ("failed", "succeeded", "skipped")


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str


@dataclass
class ReplayResult:
    """Which events were queued again, and why the others were not."""

    replayed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "replayed": list(self.replayed),
            "skipped": [{"id": s.id, "reason": s.reason} for s in self.skipped],
        }


def refusal(event: Event) -> str | None:
    """Why this event cannot be replayed, or None when it can."""
    if event.status in ("queued", "running"):
        return f"the event is {event.status} already; it will run without a replay"
    if event.status == "ignored":
        why = f": {event.reason}" if event.reason else ""
        return f"the event was ignored, so there is nothing to run{why}"
    if event.kind not in TASK_FOR_KIND:
        return f"no task runs {event.kind} events"
    if event.status not in REPLAYABLE_STATUSES:
        return f"a {event.status} event cannot be replayed"
    prediction = event.payload.get("prediction") if event.kind == "prediction" else None
    if isinstance(prediction, dict) and prediction.get("failed"):
        return "the model run itself failed; running it again changes nothing (send a new result)"
    return None


def replay_events(store: EventStore, celery: Celery, ids: Iterable[str]) -> ReplayResult:
    """Queue each replayable event again and enqueue its task; skip the rest with a reason.

    Broker errors propagate: an event already moved to queued by then is not lost, as the
    reconciler re-enqueues queued events whose message never arrived.
    """
    result = ReplayResult()
    seen: set[str] = set()
    for event_id in ids:
        if event_id in seen:
            continue
        seen.add(event_id)
        event = store.get(event_id)
        if event is None:
            result.skipped.append(Skipped(event_id, "no such event (unknown or expired)"))
            continue
        reason = refusal(event)
        if reason is None and not store.rerun(event_id, from_statuses=REPLAYABLE_STATUSES):
            # Someone else (another replay, the reconciler) moved it since we looked.
            current = store.get(event_id)
            reason = f"the event changed meanwhile (now {current.status if current else 'gone'})"
        if reason is not None:
            result.skipped.append(Skipped(event_id, reason))
            continue
        enqueue(celery, event.kind, event_id)
        result.replayed.append(event_id)
        log.info("event replayed", extra={"event_id": event_id, "kind": event.kind})
    return result
