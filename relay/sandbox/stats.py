"""Counts of API requests by method, URL rule and status."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestStats:
    """A thread-safe tally for `GET /_sandbox/stats`."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str, route: str, status: int) -> None:
        """Count one answered request."""
        with self._lock:
            self._counts[method, route, status] += 1

    def snapshot(self) -> dict[str, Any]:
        """Every count, sorted by route then method then status, and their total."""
        with self._lock:
            items = sorted(self._counts.items(), key=lambda item: by_route(*item[0]))
        return {
            "requests": [
                {"method": method, "route": route, "status": status, "count": count}
                for (method, route, status), count in items
            ],
            "total": sum(count for _, count in items),
        }

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counts.clear()


def by_route(method: str, route: str, status: int) -> tuple[str, str, int]:
    """Sort key grouping counts by route first."""
    return route, method, status
