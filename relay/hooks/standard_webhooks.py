"""Standard Webhooks signatures (https://www.standardwebhooks.com), as Replicate and Svix send them.

A message carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
space-separated list of `v1,<base64>` entries (Svix names them `svix-id`, `svix-timestamp` and
`svix-signature`). Each entry is base64(HMAC-SHA256(key, f"{id}.{timestamp}.{raw body}")), where the
key is the base64-decoded secret without its `whsec_` prefix. A message is accepted when any `v1`
entry matches any of the source's secrets (two while rotating) and its timestamp is within the
tolerance of now, in either direction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

from relay.errors import SignatureError
from relay.hooks.base import InboundRequest

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds, the official libraries' window
HEADER_NAMES = ("id", "timestamp", "signature")
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,15}")


def signing_key(secret: str) -> bytes:
    """Decode a `whsec_` secret into its HMAC key; ValueError if it is not base64."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Some senders show the secret without base64 padding; the official libraries accept that.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        # Never echo the secret itself, not even in a configuration error.
        raise ValueError("a Standard Webhooks secret must be 'whsec_' followed by base64") from None


def expected_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """Return the base64 `v1` signature of a message, as ASCII bytes."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())


def signed_headers(request: InboundRequest) -> tuple[str, str, str]:
    """Return (id, timestamp, signature) from the webhook-* or svix-* headers."""
    values = {
        name: request.header(f"webhook-{name}") or request.header(f"svix-{name}")
        for name in HEADER_NAMES
    }
    missing = [f"webhook-{name}" for name, value in values.items() if not value]
    if missing:
        raise SignatureError(f"missing {', '.join(missing)} header (or its svix- equivalent)")
    return values["id"], values["timestamp"], values["signature"]


def check_timestamp(timestamp: str, now: float, tolerance: int) -> None:
    """Raise SignatureError unless the timestamp is an integer within `tolerance` s of now."""
    if not _TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise SignatureError("webhook-timestamp must be an integer number of seconds")
    age = now - int(timestamp)
    if age > tolerance:
        raise SignatureError(f"the message is too old: sent {age:.0f} s ago, over {tolerance} s")
    if -age > tolerance:
        raise SignatureError(
            f"the message is in the future: sent {-age:.0f} s from now, over {tolerance} s"
        )


def presented_signatures(header: str) -> list[bytes]:
    """Return the base64 parts of the header's `v1` entries (other versions are not HMAC)."""
    entries = (entry.partition(",") for entry in header.split())
    return [value.encode() for version, comma, value in entries if version == "v1" and comma]


def verify(
    request: InboundRequest,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """Check a request's Standard Webhooks signature and timestamp; return its webhook-id."""
    msg_id, timestamp, header = signed_headers(request)
    check_timestamp(timestamp, now, tolerance)
    presented = presented_signatures(header)
    if not presented:
        raise SignatureError("webhook-signature holds no v1 signature")
    if not secrets:
        raise SignatureError("this source has no signing secret configured")
    expected = [
        expected_signature(signing_key(s), msg_id, timestamp, request.body) for s in secrets
    ]
    # Compare every pair (no early exit) so timing says nothing about which one matched.
    results = [hmac.compare_digest(p, e) for p in presented for e in expected]
    if not any(results):
        raise SignatureError("no webhook-signature matches this source's secrets")
    return msg_id
