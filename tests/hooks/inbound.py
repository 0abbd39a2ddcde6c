"""Build the InboundRequest a sender module receives, as the relay's view would."""

from __future__ import annotations

import json
from typing import Any

from relay.hooks.base import InboundRequest


def inbound(
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    args: dict[str, str] | None = None,
    method: str = "POST",
    url: str = "https://relay.test/hooks/source",
    content_type: str | None = "application/json",
) -> InboundRequest:
    """A request carrying `body` (JSON-encoded unless bytes); header names lower-cased."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    lowered = {"content-type": content_type} if content_type else {}
    lowered.update({name.lower(): value for name, value in (headers or {}).items()})
    return InboundRequest(method=method, url=url, headers=lowered, args=args or {}, body=raw)
