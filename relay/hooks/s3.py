"""Amazon S3 event notifications (source type "s3"): direct, through SNS, or through EventBridge.

How a delivery is recognized, and why it is trusted:
- an SNS envelope (`Type` + `TopicArn`): signed by AWS, checked by `relay.hooks.sns`; the S3 event
  is the JSON string in its `Message`;
- an EventBridge event (`detail-type`, `source` "aws.s3"), sent by an API destination;
- a bare S3 event (`Records`, or the `s3:TestEvent` S3 sends when a configuration is saved), sent
  directly or by SNS *raw message delivery* (`x-amz-sns-message-type` and `-message-id` headers).
The last two carry no signature, so they must present one of the source's secrets: a bearer token,
an `x-relay-token` header (the API-key header an EventBridge connection sends), `?token=`, or the
password of Basic auth. A source with `verify = false` and no secrets (a local emulator) accepts
them without one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import sns
from relay.hooks.base import (
    Delivery,
    HookContext,
    HookResult,
    InboundRequest,
    Notice,
    StorageObject,
)
from relay.hooks.common import (
    decode_form_key,
    get_field,
    matches_any,
    parse_json,
    require_token,
    size_field,
)

TEST_EVENT = "s3:TestEvent"
# Object sizes beyond a signed 64-bit integer are not real S3 objects (and would not fit a column).


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> HookResult:
    """Answer one S3 delivery: an SNS envelope, an EventBridge event or a bare S3 event."""
    doc = parse_json(request.body)
    # A control-message header with a non-envelope body is a broken envelope, not raw delivery.
    claims_control = request.header(sns.TYPE_HEADER) not in ("", sns.NOTIFICATION)
    if sns.is_sns_envelope(doc) or claims_control:
        envelope = sns.check_envelope(doc, request)
        return sns.receive_envelope(envelope, source, ctx, notices_from_sns_message)
    authenticate(request, source)
    return Delivery(event_to_notices(doc, raw_delivery_message_id(request)))


def authenticate(request: InboundRequest, source: Source) -> None:
    """Raise SignatureError unless an unsigned delivery presents one of the source's secrets."""
    if not source.secrets:
        if not source.verify:
            return  # a local emulator, which cannot be configured to send a token
        raise SignatureError(
            "this source accepts only signed SNS deliveries; set secret_env to also accept "
            "direct, SNS raw or EventBridge deliveries"
        )
    password = basic_auth_password(request)
    if password is not None and matches_any(password, source.secrets):
        return
    require_token(request, source.secrets)


def basic_auth_password(request: InboundRequest) -> str | None:
    """Return the password of an `Authorization: Basic` header, or None if there is none."""
    scheme, _, credentials = request.header("authorization").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


def raw_delivery_message_id(request: InboundRequest) -> str | None:
    """Return SNS's MessageId for a raw message delivery (headers only), else None."""
    if request.header(sns.TYPE_HEADER) != sns.NOTIFICATION:
        return None
    return request.header(sns.MESSAGE_ID_HEADER) or None


def notices_from_sns_message(message: str, message_id: str) -> list[Notice]:
    """Turn an SNS Notification's Message (an S3 event as a JSON string) into notices."""
    try:
        # surrogatepass: a lone surrogate ("\ud800" in the JSON) is a PayloadError, not a 500.
        return event_to_notices(parse_json(message.encode("utf-8", "surrogatepass")), message_id)
    except PayloadError as exc:
        # Name fields from the envelope down, so the sender sees where inside Message it broke.
        fields = {
            ("Message" if name == "body" else f"Message.{name}"): problems
            for name, problems in exc.fields.items()
        }
        raise PayloadError(f"SNS Message: {exc.message}", fields=fields) from None


def event_to_notices(doc: Any, message_id: str | None) -> list[Notice]:
    """Turn a parsed S3 event, S3 test event or EventBridge S3 event into notices."""
    if not isinstance(doc, dict):
        raise PayloadError("an S3 event must be a JSON object", fields={"body": ["not an object"]})
    if "detail-type" in doc:
        return [eventbridge_to_notice(doc)]
    if doc.get("Event") == TEST_EVENT:
        return [Notice(message_id=message_id, ignored="test event", event_name=TEST_EVENT)]
    if "Records" not in doc:
        raise PayloadError(
            "expected an S3 event (Records), the S3 test event, an SNS envelope "
            "or an EventBridge event",
            fields={"Records": ["missing"]},
        )
    records = get_field(doc, "", "Records", list)
    if not records:
        raise PayloadError("Records is empty", fields={"Records": ["empty"]})
    return [
        record_to_notice(
            record, f"Records[{index}]", _record_message_id(message_id, index, records)
        )
        for index, record in enumerate(records)
    ]


def _record_message_id(message_id: str | None, index: int, records: list[Any]) -> str | None:
    # Notices are deduped on message_id, so records sharing one message each get their own.
    if message_id is None or len(records) == 1:
        return message_id
    return f"{message_id}#{index}"


def record_to_notice(record: Any, path: str, message_id: str | None) -> Notice:
    """Turn one S3 notification record (at `path`, for error messages) into a notice."""
    if not isinstance(record, dict):
        raise PayloadError(f"{path} must be an object", fields={path: ["must be an object"]})
    event_source = get_field(record, path, "eventSource", str)
    if event_source != "aws:s3":
        problem = f"must be 'aws:s3', not {event_source!r}"
        raise PayloadError(
            f"{path}.eventSource {problem}", fields={f"{path}.eventSource": [problem]}
        )
    event_name = get_field(record, path, "eventName", str)
    s3 = get_field(record, path, "s3", dict)
    bucket = get_field(s3, f"{path}.s3", "bucket", dict)
    object_path = f"{path}.s3.object"
    obj = get_field(s3, f"{path}.s3", "object", dict)
    storage_object = StorageObject(
        provider="s3",
        bucket=get_field(bucket, f"{path}.s3.bucket", "name", str),
        key=decode_form_key(get_field(obj, object_path, "key", str), f"{object_path}.key"),
        size=size_field(obj, object_path),
        etag=get_field(obj, object_path, "eTag", str, required=False),
        version=(
            get_field(obj, object_path, "versionId", str, required=False)
            or get_field(obj, object_path, "sequencer", str, required=False)
        ),
        event_time=get_field(record, path, "eventTime", str, required=False),
        event_name=event_name,
    )
    return _notice(
        message_id,
        storage_object,
        created=event_name.startswith("ObjectCreated:"),
        deleted=event_name.startswith("ObjectRemoved:"),
    )


def eventbridge_to_notice(event: dict[str, Any]) -> Notice:
    """Turn an EventBridge S3 event (one object, kebab-case fields, raw key) into a notice."""
    event_source = get_field(event, "", "source", str)
    if event_source != "aws.s3":
        problem = f"must be 'aws.s3', not {event_source!r}"
        raise PayloadError(f"source {problem}", fields={"source": [problem]})
    detail_type = get_field(event, "", "detail-type", str)
    detail = get_field(event, "", "detail", dict)
    bucket = get_field(detail, "detail", "bucket", dict)
    obj = get_field(detail, "detail", "object", dict)
    storage_object = StorageObject(
        provider="s3",
        bucket=get_field(bucket, "detail.bucket", "name", str),
        # EventBridge sends the key as stored (a literal ':' or '+'); decoding would corrupt it.
        key=get_field(obj, "detail.object", "key", str),
        size=size_field(obj, "detail.object"),
        etag=get_field(obj, "detail.object", "etag", str, required=False),
        version=(
            get_field(obj, "detail.object", "version-id", str, required=False)
            or get_field(obj, "detail.object", "sequencer", str, required=False)
        ),
        event_time=get_field(event, "", "time", str, required=False),
        event_name=detail_type,
    )
    return _notice(
        get_field(event, "", "id", str),
        storage_object,
        created=detail_type == "Object Created",
        deleted=detail_type == "Object Deleted",
    )


def _notice(
    message_id: str | None, storage_object: StorageObject, *, created: bool, deleted: bool
) -> Notice:
    event_name = storage_object.event_name
    if created:
        return Notice(message_id=message_id, object=storage_object, event_name=event_name)
    ignored = "object deleted" if deleted else f"event {event_name} is not an object creation"
    return Notice(message_id=message_id, ignored=ignored, event_name=event_name)
