"""Azure Blob Storage events (source type "azure"), delivered by an Event Grid webhook.

Event Grid posts either schema a subscription chooses:
- the Event Grid schema: always a JSON array of events; a new subscription is first validated by a
  `SubscriptionValidationEvent`, answered by echoing its code;
- the CloudEvents 1.0 schema: one object (`application/cloudevents+json`) or a batch; a new
  subscription is first validated by an HTTP OPTIONS abuse-protection request.
Event Grid signs nothing, so every request, handshakes included, must present one of the
source's secrets: best as `?token=` in the subscription URL, which every request carries, or as a
static delivery header. Blobs are named by `subject`, raw (no decoding), and the storage account
by the event's topic (`source` in CloudEvents).
"""

from __future__ import annotations

import re
from typing import Any

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError
from relay.hooks import cloudevents
from relay.hooks.base import (
    Delivery,
    Handshake,
    HookContext,
    HookResult,
    InboundRequest,
    Notice,
    StorageObject,
)
from relay.hooks.cloudevents import CloudEvent
from relay.hooks.common import get_field, parse_json, require_token, size_field

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
VALIDATION_HEADER = "aeg-event-type"
VALIDATION_HEADER_VALUE = "SubscriptionValidation"
ORIGIN_HEADER = "webhook-request-origin"
IGNORED_TYPES = {
    "Microsoft.Storage.BlobDeleted": "blob deleted",
    "Microsoft.Storage.BlobTierChanged": "blob tier changed",
    "Microsoft.EventGrid.SubscriptionDeletedEvent": "subscription deleted",
}
# The operations after which a blob is completely written. ADLS Gen2 also reports CreateFile (an
# empty file about to be appended to) and SFTP reports SftpCreate: the final flush or commit is
# the event that counts.
COMPLETE_WRITES = frozenset({"PutBlob", "PutBlockList", "CopyBlob", "FlushWithClose", "SftpCommit"})
# How the Event Grid schema spells the CloudEvents attributes, so errors name the sender's fields.
EVENT_GRID_NAMES = {"type": "eventType", "source": "topic", "time": "eventTime"}
BLOB_SUBJECT = re.compile(
    r"/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)", re.DOTALL
)
# Resource ids are case-insensitive; topics have been seen in lower case.
STORAGE_ACCOUNT = re.compile(r"/storageAccounts/(?P<account>[^/]+)", re.IGNORECASE)


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> HookResult:
    """Answer Event Grid's validation handshakes, or read the blob events it delivers."""
    if request.method not in ("POST", "OPTIONS"):
        raise MethodNotAllowedError(f"an Azure source takes POST or OPTIONS, not {request.method}")
    # Anyone can send a validation request: echoing it would subscribe us to their events.
    require_token(request, source.secrets)
    if request.method == "OPTIONS":
        return grant_webhook_origin(request)
    doc = parse_json(request.body)
    if cloudevents.is_structured(request, doc):
        events = cloudevents.from_structured(doc)
    else:
        events = event_grid_events(doc)
    if request.header(VALIDATION_HEADER) == VALIDATION_HEADER_VALUE or any(
        event.type == VALIDATION_EVENT for event in events
    ):
        return validation_reply(events)
    return Delivery([event_to_notice(event) for event in events])


def grant_webhook_origin(request: InboundRequest) -> Handshake:
    """Grant the CloudEvents abuse-protection request: echo the origin, allow any rate."""
    origin = request.header(ORIGIN_HEADER).strip()
    if not origin:
        problem = "missing: an OPTIONS request is a CloudEvents webhook validation"
        raise PayloadError(
            f"WebHook-Request-Origin is {problem}", fields={"WebHook-Request-Origin": [problem]}
        )
    headers = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST"}
    return Handshake(200, None, headers, note=f"CloudEvents webhook validation from {origin}")


def validation_reply(events: list[CloudEvent]) -> Handshake:
    """Echo a SubscriptionValidationEvent's code, which completes the subscription."""
    event = next((event for event in events if event.type == VALIDATION_EVENT), None)
    if event is None:
        path = events[0].path("type")
        problem = f"must be {VALIDATION_EVENT} when aeg-event-type is {VALIDATION_HEADER_VALUE}"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    code = get_field(_data(event), event.path("data"), "validationCode", str)
    return Handshake(200, {"validationResponse": code}, note="Event Grid subscription validated")


def event_grid_events(doc: Any) -> list[CloudEvent]:
    """Read an Event Grid schema delivery (always an array) into CloudEvent shapes."""
    if not isinstance(doc, list):
        problem = "must be an array of events (the Event Grid schema)"
        raise PayloadError(f"body {problem}", fields={"body": [problem]})
    if not doc:
        raise PayloadError("the delivery holds no events", fields={"body": ["empty"]})
    return [_event_grid_event(item, f"[{index}]") for index, item in enumerate(doc)]


def _event_grid_event(item: Any, where: str) -> CloudEvent:
    if not isinstance(item, dict):
        raise PayloadError(f"{where} must be an object", fields={where: ["must be an object"]})
    return CloudEvent(
        id=get_field(item, where, "id", str),
        type=get_field(item, where, "eventType", str),
        source=get_field(item, where, "topic", str),
        subject=get_field(item, where, "subject", str, required=False),
        time=get_field(item, where, "eventTime", str, required=False),
        data=item.get("data"),
        where=where,
        names=EVENT_GRID_NAMES,
    )


def event_to_notice(event: CloudEvent) -> Notice:
    """Turn one blob event, of either schema, into an object notice or an ignored one."""
    if event.type != BLOB_CREATED:
        ignored = IGNORED_TYPES.get(event.type, f"event {event.type} is not a blob creation")
        return Notice(message_id=event.id, ignored=ignored, event_name=event.type)
    data = _data(event)
    api = get_field(data, event.path("data"), "api", str, required=False)
    if api not in COMPLETE_WRITES:
        ignored = f"incomplete write: {api or 'an unnamed operation'} is not a final commit"
        return Notice(message_id=event.id, ignored=ignored, event_name=event.type)
    return Notice(message_id=event.id, object=blob_object(event, data), event_name=event.type)


def blob_object(event: CloudEvent, data: dict[str, Any]) -> StorageObject:
    """Read the blob a BlobCreated event announces: its account, container and raw path."""
    container, blob = _blob_location(event)
    data_path = event.path("data")
    etag = get_field(data, data_path, "eTag", str, required=False)
    return StorageObject(
        provider="azure",
        bucket=f"{_storage_account(event)}/{container}",
        key=blob,
        size=size_field(data, data_path, "contentLength"),
        etag=etag.strip('"') if etag else None,
        version=get_field(data, data_path, "sequencer", str, required=False),
        event_time=event.time,
        content_type=get_field(data, data_path, "contentType", str, required=False),
        url=get_field(data, data_path, "url", str, required=False),
        event_name=event.type,
    )


def _blob_location(event: CloudEvent) -> tuple[str, str]:
    path = event.path("subject")
    if not event.subject:
        raise PayloadError(f"{path} is missing", fields={path: ["missing"]})
    match = BLOB_SUBJECT.fullmatch(event.subject)
    if match is None:
        problem = "must be /blobServices/default/containers/<container>/blobs/<path>"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    return match["container"], match["blob"]


def _storage_account(event: CloudEvent) -> str:
    match = STORAGE_ACCOUNT.search(event.source)
    if match is None:
        path = event.path("source")
        problem = "must be a storage account's resource id (.../storageAccounts/<account>)"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    return match["account"]


def _data(event: CloudEvent) -> dict[str, Any]:
    if not isinstance(event.data, dict):
        path = event.path("data")
        if event.data is None:
            raise PayloadError(f"{path} is missing", fields={path: ["missing"]})
        raise PayloadError(f"{path} must be an object", fields={path: ["must be an object"]})
    return event.data
