"""What every sender family's module takes in and gives back.

A hooks module is pure: it gets an `InboundRequest` (the raw request, no Flask) plus the source's
config and a `HookContext` for the few side effects verification needs (fetching a signing
certificate or key set, the clock), and returns either a `Handshake` to answer as-is or a
`Delivery` of normalized notices. It raises `PayloadError` or `SignatureError` for bad input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundRequest:
    """The parts of an HTTP request a sender module may look at."""

    method: str
    url: str  # the full URL the sender called, query string included
    headers: Mapping[str, str]  # keys lower-cased
    args: Mapping[str, str]  # query parameters (first value of each)
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class StorageObject:
    """One object in a bucket, as the sender announced it (key already decoded)."""

    provider: str  # "s3", "minio", "gcs" or "azure"
    bucket: str  # bucket, or Azure "account/container"
    key: str
    size: int | None = None
    etag: str | None = None
    # Tells re-uploads of one key apart: S3/MinIO versionId or sequencer, GCS generation,
    # Azure sequencer.
    version: str | None = None
    event_time: str | None = None
    content_type: str | None = None
    url: str | None = None  # the sender's own URL for the object, when it gives one (Azure)
    event_name: str = ""  # the sender's own event name, e.g. "ObjectCreated:Put"


@dataclass(frozen=True)
class Notice:
    """One thing a delivery announced: an object to import, or something to acknowledge only."""

    message_id: str | None  # the sender's id for this notice, for dedupe (SNS MessageId, ...)
    object: StorageObject | None = None
    ignored: str | None = None  # why nothing is to be done ("object deleted", "test event", ...)
    event_name: str = ""


@dataclass(frozen=True)
class Handshake:
    """A reply the sender expects verbatim (subscription validation, abuse-protection check)."""

    status: int = 200
    body: Any = None  # JSON-serializable, or None for an empty body
    headers: Mapping[str, str] = field(default_factory=dict)
    note: str = ""  # what happened, for the log


@dataclass(frozen=True)
class Delivery:
    notices: list[Notice]


HookResult = Handshake | Delivery


@dataclass
class HookContext:
    """Side effects a sender module may need, injectable for tests."""

    # GET a URL and return the body; raises on failure. Used for SNS certificates, OIDC key
    # sets and SNS subscription confirmation. Callers restrict which hosts they pass in.
    http_get: Callable[[str], bytes]
    now: Callable[[], float] = time.time
    cache: dict[str, Any] = field(default_factory=dict)  # per-process cache (certs, key sets)
