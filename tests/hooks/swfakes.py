"""Standard Webhooks signing for tests, as Replicate, Svix or any other sender would do it.

Written out from the spec rather than imported from relay.hooks.standard_webhooks, so a mistake in
the relay's verification cannot hide behind the same mistake here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from relay.hooks.base import InboundRequest

# A valid `whsec_` secret: the prefix plus base64 of 32 bytes.
TEST_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def signature(secret: str, body: bytes | str, msg_id: str, timestamp: int | str) -> str:
    """Return one `v1,<base64>` signature entry for a message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    raw = body.encode() if isinstance(body, str) else body
    content = f"{msg_id}.{timestamp}.".encode() + raw
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secret: str, body: bytes | str, msg_id: str, timestamp: int | str) -> dict[str, str]:
    """Return the three `webhook-*` headers a Standard Webhooks sender attaches to `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, body, msg_id, timestamp),
    }


def signed_request(
    body: bytes | str,
    *,
    secret: str = TEST_SECRET,
    msg_id: str = "msg_test",
    timestamp: int = 1_700_000_000,
    args: dict[str, str] | None = None,
) -> InboundRequest:
    """An InboundRequest POSTing `body` with valid Standard Webhooks headers."""
    raw = body.encode() if isinstance(body, str) else body
    return InboundRequest(
        method="POST",
        url="https://relay.test/hooks/model",
        headers=sign(secret, raw, msg_id, timestamp),
        args=args or {},
        body=raw,
    )
