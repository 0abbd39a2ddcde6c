"""The Celery application: Redis broker, late acks, one message at a time, a beat schedule."""

from __future__ import annotations

from celery import Celery

from config import Settings
from workers.releases import beat_entries as release_beat_entries

# Retry countdowns must stay well below the visibility timeout, or Redis redelivers the
# delayed message to a second worker while the first still holds it.
VISIBILITY_TIMEOUT = 3600


def create_celery(settings: Settings) -> Celery:
    """Build the Celery app for these settings and make it the default app."""
    app = Celery("relay", broker=settings.broker, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="relay",
        task_time_limit=600,
        task_soft_time_limit=540,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
        },
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        beat_schedule={
            "reconcile-events": {
                "task": "workers.tasks.reconcile_events",
                "schedule": settings.reconcile_seconds,
            },
            # The release sweep, and one crontab entry per [[schedules]] table.
            **release_beat_entries(settings),
        },
    )
    app.set_default()
    return app
