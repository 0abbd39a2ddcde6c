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
class SampleRef:
    """How a prediction names its image's sample: by uuid, by dataset and name, or by object."""

    uuid: str | None = None
    dataset: str | None = None  # "owner/name"; None: the route's dataset
    name: str | None = None
    bucket: str | None = None
    key: str | None = None
    image_url: str | None = None  # the image the model saw, when that is all we know


@dataclass(frozen=True)
class DetectedObject:
    """One predicted object in pixel coordinates of the image."""

    label: str  # the class name, mapped to the dataset's category by the worker
    type: str  # "bbox", "polygon", "polyline" or "point"
    points: tuple[tuple[float, float], ...]  # a bbox is ((x0, y0), (x1, y1))
    score: float | None = None


@dataclass(frozen=True)
class MaskInstance:
    id: int  # the pixel value of this instance in the mask PNG
    label: str
    score: float | None = None


@dataclass(frozen=True)
class Prediction:
    """A finished (or failed) model run for one image."""

    sample: SampleRef
    objects: tuple[DetectedObject, ...] = ()
    mask_url: str | None = None  # a PNG whose pixel values are instance ids
    mask_instances: tuple[MaskInstance, ...] = ()
    score: float | None = None  # overall score; None: derived from object scores
    model: str | None = None
    model_version: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    # The output lives elsewhere and the worker fetches it (SageMaker: an s3:// URI).
    output_location: str | None = None
    failed: str | None = None  # the model run failed; recorded on the event with this reason


@dataclass(frozen=True)
class ReleaseRef:
    """A release in Segments.ai, by dataset ("owner/name") and release name."""

    dataset: str
    name: str


@dataclass(frozen=True)
class Notice:
    """One thing a delivery announced: an object, a prediction, or something to acknowledge only."""

    message_id: str | None  # the sender's id for this notice, for dedupe (SNS MessageId, ...)
    object: StorageObject | None = None
    prediction: Prediction | None = None
    ignored: str | None = None  # why nothing is to be done ("object deleted", "test event", ...)
    event_name: str = ""
    release: ReleaseRef | None = None  # a release to start tracking (Segments.ai webhooks)


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
