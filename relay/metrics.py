"""Counters kept in Redis, so every gunicorn and Celery process adds to the same numbers.

Prometheus reads them through `RedisCollector` at scrape time. Labels are small fixed sets
(source names from the config, statuses, outcomes): never keys, ids or secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
COUNTERS_KEY = "relay:metrics:counters"

COUNTERS = {
    "relay_hook_requests": ("Requests to /hooks/<source> by outcome", ("source", "outcome")),
    "relay_notices": ("Notices received, by what became of them", ("source", "result")),
    "relay_tasks": (
        "Task attempts by kind and result (succeeded, skipped, failed, retried)",
        ("kind", "result"),
    ),
    "relay_api_rate_limited": ("429 answers from the Segments.ai API", ()),
}


def incr(client: redis.Redis, name: str, amount: int = 1, **labels: str) -> None:
    """Add to a counter; a metrics failure never fails the request or task."""
    field = json.dumps([name, sorted(labels.items())])
    try:
        client.hincrby(COUNTERS_KEY, field, amount)
    except redis.RedisError:
        log.warning("could not update metric %s", name)


class RedisCollector(Collector):
    """Expose the Redis counters plus event counts by status."""

    def __init__(self, client: redis.Redis, counts_by_status) -> None:
        self.client = client
        self.counts_by_status = counts_by_status

    def collect(self) -> Iterator:
        families = {
            name: CounterMetricFamily(name, doc, labels=list(labels))
            for name, (doc, labels) in COUNTERS.items()
        }
        raw = self.client.hgetall(COUNTERS_KEY)
        for field, value in raw.items():
            name, pairs = json.loads(field)
            family = families.get(name)
            if family is not None:
                labels = dict(pairs)
                family.add_metric([labels.get(k, "") for k in COUNTERS[name][1]], int(value))
        yield from families.values()
        events = GaugeMetricFamily(
            "relay_events", "Events in the store by status", labels=["status"]
        )
        for status, count in self.counts_by_status().items():
            events.add_metric([status], count)
        yield events
