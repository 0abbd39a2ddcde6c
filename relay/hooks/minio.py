"""MinIO bucket notifications (source type "minio"), sent by a `notify_webhook` target.

MinIO POSTs `{EventName, Key, Records}` with one S3-style record per request and no signature:
it is trusted by the `auth_token` it sends as `Authorization: Bearer <token>` (verbatim when the
token has a space). MinIO gives no delivery id, so notices carry none; the object's identity
(bucket, key, versionId or sequencer) is what dedupes.
"""

from __future__ import annotations

from typing import Any

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError
from relay.hooks.base import (
    Delivery,
    Handshake,
    HookContext,
    HookResult,
    InboundRequest,
    Notice,
    StorageObject,
)
from relay.hooks.common import decode_form_key, get_field, parse_json, require_token, size_field

PROBE_METHODS = ("GET", "HEAD")
CREATED = "ObjectCreated"
# MinIO files tag, retention and legal-hold changes under ObjectCreated; the bytes are unchanged.
METADATA_ONLY = frozenset({"PutTagging", "DeleteTagging", "PutRetention", "PutLegalHold"})
IGNORED_KINDS = {"ObjectRemoved": "object removed", "ObjectAccessed": "object read"}
# The versionId of an object in an unversioned bucket; the sequencer tells its uploads apart.
UNVERSIONED = "null"


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> HookResult:
    """Answer MinIO's reachability probe, or authenticate a notification and read its records."""
    if request.method in PROBE_METHODS:
        # Older MinIO checks a target with HEAD when it is configured and counts any reply as
        # online; newer MinIO only dials TCP. An empty 200 tells a caller nothing a 401 would
        # not, so it needs no token (and works whether or not the probe carries one).
        return Handshake(200, note="MinIO reachability check")
    if request.method != "POST":
        raise MethodNotAllowedError(f"a MinIO source takes POST, GET or HEAD, not {request.method}")
    require_token(request, source.secrets)
    return Delivery(notification_to_notices(parse_json(request.body)))


def notification_to_notices(doc: Any) -> list[Notice]:
    """Turn a parsed MinIO notification (`{EventName, Key, Records}`) into notices."""
    if not isinstance(doc, dict):
        problem = "must be an object"
        raise PayloadError(f"a MinIO notification {problem}", fields={"body": [problem]})
    records = get_field(doc, "", "Records", list)
    if not records:
        raise PayloadError("Records is empty", fields={"Records": ["empty"]})
    return [record_to_notice(record, f"Records[{index}]") for index, record in enumerate(records)]


def record_to_notice(record: Any, path: str) -> Notice:
    """Turn one record (at `path`, for error messages) into an object notice or an ignored one."""
    if not isinstance(record, dict):
        raise PayloadError(f"{path} must be an object", fields={path: ["must be an object"]})
    event_name = get_field(record, path, "eventName", str)
    kind, _, action = event_name.removeprefix("s3:").partition(":")
    if kind != CREATED:
        ignored = IGNORED_KINDS.get(kind, f"event {event_name} is not an object creation")
        return Notice(message_id=None, ignored=ignored, event_name=event_name)
    if action in METADATA_ONLY:
        ignored = f"{action} changes metadata only"
        return Notice(message_id=None, ignored=ignored, event_name=event_name)
    storage_object = record_object(record, path, event_name)
    return Notice(message_id=None, object=storage_object, event_name=event_name)


def record_object(record: dict[str, Any], path: str, event_name: str) -> StorageObject:
    """Read the object an ObjectCreated record announces."""
    s3 = get_field(record, path, "s3", dict)
    bucket = get_field(s3, f"{path}.s3", "bucket", dict)
    object_path = f"{path}.s3.object"
    obj = get_field(s3, f"{path}.s3", "object", dict)
    version_id = get_field(obj, object_path, "versionId", str, required=False)
    if version_id == UNVERSIONED:
        version_id = None
    return StorageObject(
        provider="minio",
        bucket=get_field(bucket, f"{path}.s3.bucket", "name", str),
        key=decode_form_key(get_field(obj, object_path, "key", str), f"{object_path}.key"),
        size=size_field(obj, object_path),
        etag=get_field(obj, object_path, "eTag", str, required=False),
        version=version_id or get_field(obj, object_path, "sequencer", str, required=False),
        event_time=get_field(record, path, "eventTime", str, required=False),
        content_type=get_field(obj, object_path, "contentType", str, required=False),
        event_name=event_name,
    )
