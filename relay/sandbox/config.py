"""The sandbox's start-up settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_USER = "demo"
DEFAULT_KEY = "sandbox-demo-key"


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox starts with; faults can be changed later at run time."""

    # API key -> username; hidden from repr because keys are secrets.
    api_keys: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_KEY: DEFAULT_USER}, repr=False
    )
    data_dir: Path | None = None
    release_seconds: float = 2.0
    latency_ms: int = 0
    fail_rate: float = 0.0
    rate_limit: int | None = None

    @property
    def usernames(self) -> list[str]:
        """Every known account, sorted."""
        return sorted(set(self.api_keys.values()))
