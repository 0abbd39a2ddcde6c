"""What a unit of work ended as, recorded on its event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    status: str  # "succeeded", "skipped" or "failed" (a permanent failure with its reason)
    result: dict[str, Any] | None = None
    reason: str | None = None
