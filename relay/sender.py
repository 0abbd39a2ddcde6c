"""Send an example or hand-made body to a running relay, authenticated as its source expects.

Used by `relay send` and `relay demo`; handy for trying a source by hand.
"""

from __future__ import annotations

import time
import uuid

import requests

from config.sources import SIGNING_TYPES, Source
from relay.hooks.standard_webhooks import expected_signature, signing_key


def delivery_headers(source: Source, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """Headers that authenticate `body` to this source the way its real senders do."""
    headers = {"Content-Type": "application/json"}
    if not source.secrets:
        return headers
    if source.type in SIGNING_TYPES:
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time() if now is None else now))
        signature = expected_signature(signing_key(source.secrets[0]), msg_id, timestamp, body)
        return {
            **headers,
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature.decode()}",
        }
    return {**headers, "X-Relay-Token": source.secrets[0]}


def send(
    relay_url: str, source: Source, body: bytes, *, query: dict | None = None
) -> requests.Response:
    """POST one body to /hooks/<source> on a running relay."""
    return requests.post(
        f"{relay_url.rstrip('/')}/hooks/{source.name}",
        data=body,
        headers=delivery_headers(source, body),
        params=query,
        timeout=10,
    )
