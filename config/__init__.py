"""Configuration: process settings from RELAY_* variables and sources from a TOML file."""

from config.errors import ConfigError
from config.settings import Settings
from config.sources import Route, Source

__all__ = ["ConfigError", "Route", "Settings", "Source"]
