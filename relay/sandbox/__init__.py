"""A local stand-in for the Segments.ai REST API, faithful enough for the official SDK."""

from relay.sandbox.app import create_sandbox_app
from relay.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_sandbox_app"]
