"""CloudEvents 1.0 over HTTP, read into one shape whatever the content mode.

Eventarc posts GCS events in binary mode (attributes in `ce-*` headers, the body is the data).
Event Grid's CloudEvents schema posts structured mode: one JSON object
(`application/cloudevents+json`) or, with batching, an array (`application/cloudevents-batch+json`).
The families (`gcs`, `azure`) decide what an event's type and data mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.errors import PayloadError
from relay.hooks.base import InboundRequest
from relay.hooks.common import get_field, join_path, parse_json

STRUCTURED_TYPES = ("application/cloudevents+json", "application/cloudevents-batch+json")
SPEC_MAJOR = "1"
# In binary mode the attributes are headers and the data is the body; errors name them so.
BINARY_HEADERS = {
    "id": "ce-id",
    "source": "ce-source",
    "specversion": "ce-specversion",
    "type": "ce-type",
    "subject": "ce-subject",
    "time": "ce-time",
}
BINARY_NAMES = {**BINARY_HEADERS, "data": "body"}


@dataclass(frozen=True)
class CloudEvent:
    """The attributes every family reads, plus where each came from for error messages."""

    id: str
    type: str
    source: str
    subject: str | None
    time: str | None
    data: Any
    where: str = ""  # the event's own path: "" for a single event, "[2]" inside a batch
    names: Mapping[str, str] = field(default_factory=dict)  # the sender's spelling of attributes

    def path(self, attribute: str) -> str:
        """Name an attribute as the sender wrote it, e.g. "[0].subject" or the header "ce-id"."""
        return join_path(self.where, self.names.get(attribute, attribute))


def is_binary(request: InboundRequest) -> bool:
    """Tell a binary-mode CloudEvent (attributes in `ce-*` headers) from everything else."""
    return bool(request.header("ce-specversion"))


def is_structured(request: InboundRequest, doc: Any) -> bool:
    """Tell structured or batched CloudEvents by content type, or by shape if a proxy changed it."""
    if _media_type(request) in STRUCTURED_TYPES:
        return True
    first = doc[0] if isinstance(doc, list) and doc else doc
    return isinstance(first, dict) and "specversion" in first


def from_binary(request: InboundRequest) -> CloudEvent:
    """Read a binary-mode CloudEvent: attributes from `ce-*` headers, data from the JSON body."""
    headers = {header: request.header(header) or None for header in BINARY_HEADERS.values()}
    data = parse_json(request.body) if request.body.strip() else None
    return _event(headers, data, where="", names=BINARY_NAMES)


def from_structured(doc: Any) -> list[CloudEvent]:
    """Read one structured CloudEvent (an object) or a batch (an array of them)."""
    if isinstance(doc, dict):
        return [_event(doc, doc.get("data"), where="", names={})]
    if not isinstance(doc, list):
        problem = "must be a CloudEvent object or an array of them"
        raise PayloadError(f"body {problem}", fields={"body": [problem]})
    if not doc:
        raise PayloadError("the batch holds no events", fields={"body": ["empty"]})
    return [_structured_item(item, f"[{index}]") for index, item in enumerate(doc)]


def _structured_item(item: Any, where: str) -> CloudEvent:
    if not isinstance(item, dict):
        raise PayloadError(f"{where} must be an object", fields={where: ["must be an object"]})
    return _event(item, item.get("data"), where=where, names={})


def _event(
    attributes: dict[str, Any], data: Any, *, where: str, names: Mapping[str, str]
) -> CloudEvent:
    def read(attribute: str, *, required: bool = True) -> Any:
        return get_field(attributes, where, names.get(attribute, attribute), str, required=required)

    version = read("specversion")
    if version.split(".")[0] != SPEC_MAJOR:
        path = join_path(where, names.get("specversion", "specversion"))
        problem = f"must be 1.x, not {version!r}"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    return CloudEvent(
        id=read("id"),
        type=read("type"),
        source=read("source"),
        subject=read("subject", required=False),
        time=read("time", required=False),
        data=data,
        where=where,
        names=names,
    )


def _media_type(request: InboundRequest) -> str:
    return request.header("content-type").split(";")[0].strip().lower()
