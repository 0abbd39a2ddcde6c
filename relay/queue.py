"""Hand an event id to the workers: the one place that knows which task serves which kind."""

from __future__ import annotations

from celery import Celery

TASK_FOR_KIND = {
    "sample": "workers.tasks.create_sample",
    "prediction": "workers.tasks.upload_prediction",
    "release": "workers.tasks.create_release",
    "release_track": "workers.tasks.track_release",
}


def enqueue(celery: Celery, kind: str, event_id: str) -> None:
    """Publish the task for an event; raises if the broker cannot take it."""
    celery.send_task(TASK_FOR_KIND[kind], args=[event_id])
