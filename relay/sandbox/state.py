"""The running sandbox's parts, reachable from any view."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from relay.sandbox.config import SandboxConfig
from relay.sandbox.faults import FaultController
from relay.sandbox.stats import RequestStats
from relay.sandbox.store import Store

EXTENSION = "sandbox"


@dataclass(frozen=True)
class SandboxState:
    """Config, state, faults and request counts of one sandbox app."""

    config: SandboxConfig
    store: Store
    faults: FaultController
    stats: RequestStats

    def user_for_key(self, key: str) -> str | None:
        """The account an API key belongs to, or None."""
        return self.config.api_keys.get(key)

    def is_account(self, username: str) -> bool:
        """Whether `username` is a known user."""
        return username in self.config.usernames


def sandbox() -> SandboxState:
    """The sandbox of the current app."""
    return current_app.extensions[EXTENSION]
