"""Google Cloud Storage notifications (source type "gcs"): Pub/Sub push or Eventarc.

How a delivery is recognized:
- a Pub/Sub push envelope `{message: {data, attributes, messageId}, subscription}`, where `data`
  is the base64 of the JSON API object resource (empty with payload format NONE, and then the
  attributes name the object);
- an Eventarc CloudEvent in binary mode (`ce-*` headers, the body is the object resource) or in
  structured mode (`application/cloudevents+json`, the resource in `data`).
Both are trusted by the Google-signed OIDC token in `Authorization: Bearer` when the source sets
`oidc_audience`; a source without one takes a shared secret instead (`?token=`, legacy push).
Object names arrive raw (not URL-encoded) and the int64 fields `size` and `generation` as strings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError, SignatureError
from relay.hooks import cloudevents
from relay.hooks.base import (
    Delivery,
    HookContext,
    HookResult,
    InboundRequest,
    Notice,
    StorageObject,
)
from relay.hooks.common import MAX_SIZE, get_field, parse_json, require_token
from relay.hooks.oidc import verify_google_oidc

FINALIZE = "OBJECT_FINALIZE"
PUBSUB_IGNORED = {
    "OBJECT_DELETE": "object deleted",
    "OBJECT_ARCHIVE": "object archived",
    "OBJECT_METADATA_UPDATE": "object metadata updated",
}
EVENTARC_PREFIX = "google.cloud.storage.object.v1."
EVENTARC_FINALIZED = EVENTARC_PREFIX + "finalized"
EVENTARC_IGNORED = {
    EVENTARC_PREFIX + "deleted": "object deleted",
    EVENTARC_PREFIX + "archived": "object archived",
    EVENTARC_PREFIX + "metadataUpdated": "object metadata updated",
}
NO_PAYLOAD = "NONE"  # the notification's payload format when `data` is left empty
DIGITS = re.compile(r"[0-9]{1,19}")  # int64 fits in 19 digits


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> HookResult:
    """Authenticate a Pub/Sub push or Eventarc delivery and read the object it announces."""
    if request.method != "POST":
        raise MethodNotAllowedError(f"a GCS source takes POST, not {request.method}")
    authenticate(source, request, ctx)
    if cloudevents.is_binary(request):
        return Delivery([cloudevent_to_notice(cloudevents.from_binary(request))])
    doc = parse_json(request.body)
    if cloudevents.is_structured(request, doc):
        return Delivery([cloudevent_to_notice(event) for event in cloudevents.from_structured(doc)])
    return Delivery([push_to_notice(doc)])


def authenticate(source: Source, request: InboundRequest, ctx: HookContext) -> None:
    """Check the push subscription's OIDC token, or the shared secret if no audience is set."""
    if not source.oidc_audience:
        require_token(request, source.secrets)
        return
    verify_google_oidc(
        bearer_token(request),
        audience=source.oidc_audience,
        issuers=source.oidc_issuers,
        emails=source.oidc_emails,
        jwks_url=source.oidc_jwks_url,
        ctx=ctx,
    )


def bearer_token(request: InboundRequest) -> str:
    """Return the token of an `Authorization: Bearer` header; SignatureError if there is none."""
    scheme, _, token = request.header("authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureError(
            "missing OIDC token: enable authentication on the push subscription or Eventarc "
            "trigger so it sends 'Authorization: Bearer <token>'"
        )
    return token.strip()


def push_to_notice(doc: Any) -> Notice:
    """Turn a parsed Pub/Sub push envelope of a GCS notification into a notice."""
    if not isinstance(doc, dict):
        problem = "must be an object"
        raise PayloadError(f"a Pub/Sub push envelope {problem}", fields={"body": [problem]})
    message = get_field(doc, "", "message", dict)
    message_id = get_field(message, "message", "messageId", str)
    attributes = get_field(message, "message", "attributes", dict)
    event_type = get_field(attributes, "message.attributes", "eventType", str)
    if event_type != FINALIZE:
        ignored = PUBSUB_IGNORED.get(event_type, f"event {event_type} is not an object creation")
        return Notice(message_id=message_id, ignored=ignored, event_name=event_type)
    event_time = get_field(attributes, "message.attributes", "eventTime", str, required=False)
    data = get_field(message, "message", "data", str, required=False)
    if not data or attributes.get("payloadFormat") == NO_PAYLOAD:
        storage_object = attributes_object(attributes, event_time)
    else:
        resource = decode_data(data, "message.data")
        storage_object = resource_object(resource, "message.data", FINALIZE, event_time)
    return Notice(message_id=message_id, object=storage_object, event_name=FINALIZE)


def cloudevent_to_notice(event: cloudevents.CloudEvent) -> Notice:
    """Turn an Eventarc storage CloudEvent (its data is the object resource) into a notice."""
    if event.type != EVENTARC_FINALIZED:
        ignored = EVENTARC_IGNORED.get(event.type, f"event {event.type} is not an object creation")
        return Notice(message_id=event.id, ignored=ignored, event_name=event.type)
    if not isinstance(event.data, dict):
        path = event.path("data")
        problem = "must be the object resource (a JSON object)"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    storage_object = resource_object(event.data, event.path("data"), event.type, event.time)
    return Notice(message_id=event.id, object=storage_object, event_name=event.type)


def decode_data(data: str, path: str) -> dict[str, Any]:
    """Decode a push message's `data`: base64 of the object resource's JSON."""
    try:
        resource = json.loads(base64.b64decode(data, validate=True))
    except binascii.Error:
        raise PayloadError(f"{path} is not base64", fields={path: ["not base64"]}) from None
    except ValueError:  # not UTF-8, or not JSON
        problem = "not base64 of JSON"
        raise PayloadError(f"{path} is {problem}", fields={path: [problem]}) from None
    if not isinstance(resource, dict):
        problem = "must hold the object resource (a JSON object)"
        raise PayloadError(f"{path} {problem}", fields={path: [problem]})
    return resource


def resource_object(
    resource: dict[str, Any], path: str, event_name: str, event_time: str | None
) -> StorageObject:
    """Read a JSON API object resource (at `path`, for error messages)."""
    generation = _int64(resource, path, "generation")
    return StorageObject(
        provider="gcs",
        bucket=get_field(resource, path, "bucket", str),
        key=get_field(resource, path, "name", str),
        size=_int64(resource, path, "size"),
        etag=get_field(resource, path, "etag", str, required=False),
        version=None if generation is None else str(generation),
        event_time=event_time,
        content_type=get_field(resource, path, "contentType", str, required=False),
        event_name=event_name,
    )


def attributes_object(attributes: dict[str, Any], event_time: str | None) -> StorageObject:
    """Read the object a notification without payload names in its attributes."""
    path = "message.attributes"
    generation = _int64(attributes, path, "objectGeneration")
    return StorageObject(
        provider="gcs",
        bucket=get_field(attributes, path, "bucketId", str),
        key=get_field(attributes, path, "objectId", str),
        version=None if generation is None else str(generation),
        event_time=event_time,
        event_name=FINALIZE,
    )


def _int64(mapping: dict[str, Any], path: str, name: str) -> int | None:
    # The JSON API writes int64 fields as decimal strings; accept a plain number too.
    where = f"{path}.{name}"
    value = mapping.get(name)
    if value is None:
        return None
    if isinstance(value, str) and DIGITS.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        problem = "must be a non-negative int64 (a string of digits)"
        raise PayloadError(f"{where} {problem}", fields={where: [problem]})
    return value
