"""Turn a recorded storage event into a sample, exactly once."""

from __future__ import annotations

import logging

from relay.events import Event
from workers.outcome import Outcome
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def create_sample(rt: Runtime, event: Event) -> Outcome:
    """Create the planned sample, or adopt the one that already has its name."""
    plan = event.payload
    sample, created = rt.client.create_or_get_sample(
        plan["dataset"],
        plan["name"],
        {"image": {"url": plan["image_url"]}},
        metadata=plan.get("metadata") or {},
    )
    meta = plan.get("metadata") or {}
    if meta.get("bucket") is not None and meta.get("key") is not None:
        rt.store.remember_sample(
            plan["dataset"], meta["bucket"], meta["key"], plan["image_url"], sample["uuid"]
        )
    log.info(
        "sample %s",
        "created" if created else "adopted",
        extra={"event_id": event.id, "sample_uuid": sample["uuid"], "dataset": plan["dataset"]},
    )
    return Outcome(
        "succeeded",
        result={
            "sample_uuid": sample["uuid"],
            "dataset": plan["dataset"],
            "name": plan["name"],
            "created": created,
        },
    )
