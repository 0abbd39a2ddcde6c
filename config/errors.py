"""The one error raised while loading configuration."""

from __future__ import annotations


class ConfigError(Exception):
    """Every problem found in the configuration, reported together."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems
