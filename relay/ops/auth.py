"""Bearer-token check for every /ops endpoint."""

from __future__ import annotations

import hmac

from flask import current_app, request

from relay.errors import SignatureError


def require_ops_token() -> None:
    """Refuse the request unless it carries `Authorization: Bearer $RELAY_OPS_TOKEN`."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise SignatureError("send 'Authorization: Bearer <RELAY_OPS_TOKEN>'")
    check_ops_token(header[7:].strip())


def check_ops_token(presented: str) -> None:
    """Raise SignatureError unless `presented` is the ops token (compared in constant time)."""
    expected = current_app.extensions["relay"].settings.ops_token
    if not expected:
        raise SignatureError("RELAY_OPS_TOKEN is not set on this relay; /ops is closed")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise SignatureError("the ops token is wrong")
