"""GET /openapi.json: the OpenAPI 3 document of every endpoint, built with apispec.

No authentication: it describes the interface, never the secrets. The document is built once per
app from its settings, so each configured source also gets a concrete `/hooks/<name>` path showing
what its sender type posts. Request schemas are the marshmallow schemas the endpoints validate
with (the prediction callback's is `relay.hooks.predictions.PredictionSchema` itself); senders'
own formats (S3, SNS, Pub/Sub, Event Grid, ...) are described as JSON Schema, loosely: the relay
reads the fields it needs and names any wrong one in a 400.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields

from config import Settings
from relay.hooks import predictions
from relay.ops import events as event_ops
from relay.ops import releases as release_ops
from relay.ops.dashboard import TOKEN_QUERY
from relay.releases import STATUSES as RELEASE_STATUSES

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"
TITLE = "Segments Relay"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- schemas of answers (documentation only: the views build these with jsonify) -------------


class ErrorSchema(Schema):
    """Every error answer: a stable code, a message for humans, and the fields at fault."""

    error = fields.String(required=True, metadata={"example": "invalid_payload"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "problems by field path, e.g. `Records[0].s3.object.key`"},
    )


class NoteSchema(Schema):
    id = fields.String(required=True)
    reason = fields.String(required=True, allow_none=True)


class HookAnswerSchema(Schema):
    """What became of each notice in a delivery."""

    accepted = fields.List(fields.String(), required=True, metadata={"description": "new ids"})
    duplicates = fields.List(
        fields.String(), required=True, metadata={"description": "ids already holding them"}
    )
    ignored = fields.List(fields.Nested(NoteSchema), required=True)
    failed = fields.List(
        fields.Nested(NoteSchema),
        required=True,
        metadata={"description": "recorded as failed at once (a failed model run)"},
    )


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"description": "ready or unavailable"})
    redis = fields.String(required=True, metadata={"description": "ok or unreachable"})
    sources = fields.List(fields.String(), metadata={"description": "configured source names"})


class ReleaseSchema(Schema):
    """A tracked release as `TrackedRelease.to_json` shows it."""

    key = fields.String(required=True, metadata={"example": "owner/dataset/v1.0"})
    dataset = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(RELEASE_STATUSES)})
    origin = fields.String(required=True, metadata={"description": "ops, schedule, webhook, track"})
    requested_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    description = fields.String()
    event_id = fields.String(allow_none=True)
    uuid = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    finished_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    duration_seconds = fields.Float(allow_none=True)
    export_url = fields.String(allow_none=True)
    polls = fields.Integer()
    next_poll_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_error = fields.String(allow_none=True)
    generation = fields.Integer()
    updated_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    notified = fields.Boolean()
    deliveries = fields.Dict(
        keys=fields.String(), values=fields.Dict(), metadata={"description": "by notify target"}
    )


class ReleaseAnswerSchema(Schema):
    event = fields.String(required=True, metadata={"description": "the event doing the work"})
    result = fields.String(required=True, metadata={"description": "accepted, duplicate, retried"})
    url = fields.String(required=True, metadata={"description": "where to follow the release"})
    release = fields.Nested(ReleaseSchema, allow_none=True, required=True)


class ReleasePageSchema(Schema):
    releases = fields.List(fields.Nested(ReleaseSchema), required=True)


# --- senders' own formats, as JSON Schema ------------------------------------------------------

_STRING = {"type": "string"}
_OBJECT = {"type": "object"}

S3_RECORD = {
    "type": "object",
    "description": "One S3 event record; the key is URL-form-encoded (`+` for a space).",
    "properties": {
        "eventName": {"type": "string", "example": "ObjectCreated:Put"},
        "eventTime": {"type": "string", "format": "date-time"},
        "awsRegion": _STRING,
        "s3": {
            "type": "object",
            "required": ["bucket", "object"],
            "properties": {
                "bucket": {"type": "object", "properties": {"name": _STRING}},
                "object": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": _STRING,
                        "size": {"type": "integer"},
                        "eTag": _STRING,
                        "versionId": _STRING,
                        "sequencer": _STRING,
                    },
                },
            },
        },
    },
    "required": ["eventName", "s3"],
}

SENDER_SCHEMAS: dict[str, dict[str, Any]] = {
    "S3Record": S3_RECORD,
    "S3Event": {
        "type": "object",
        "description": "An S3 event notification, or the `s3:TestEvent` S3 sends on setup.",
        "properties": {
            "Records": {"type": "array", "items": _ref("S3Record")},
            "Event": {"type": "string", "enum": ["s3:TestEvent"]},
            "Service": _STRING,
            "Bucket": _STRING,
        },
    },
    "SnsEnvelope": {
        "type": "object",
        "description": "An SNS HTTPS delivery (sent as text/plain); `Message` is the inner JSON.",
        "required": ["Type", "MessageId", "TopicArn", "Timestamp"],
        "properties": {
            "Type": {
                "type": "string",
                "enum": ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"],
            },
            "MessageId": _STRING,
            "TopicArn": _STRING,
            "Subject": _STRING,
            "Message": {"type": "string", "description": "an S3 event or SageMaker notice"},
            "Timestamp": {"type": "string", "format": "date-time"},
            "SignatureVersion": {"type": "string", "enum": ["1", "2"]},
            "Signature": _STRING,
            "SigningCertURL": {"type": "string", "format": "uri"},
            "SubscribeURL": {"type": "string", "format": "uri"},
            "Token": _STRING,
        },
    },
    "EventBridgeS3Event": {
        "type": "object",
        "description": 'An EventBridge "Object Created" event from an API destination.',
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "id": _STRING,
            "detail-type": {"type": "string", "example": "Object Created"},
            "source": {"type": "string", "enum": ["aws.s3"]},
            "time": {"type": "string", "format": "date-time"},
            "detail": {
                "type": "object",
                "properties": {
                    "bucket": {"type": "object", "properties": {"name": _STRING}},
                    "object": {
                        "type": "object",
                        "properties": {
                            "key": _STRING,
                            "size": {"type": "integer"},
                            "etag": _STRING,
                            "version-id": _STRING,
                            "sequencer": _STRING,
                        },
                    },
                },
            },
        },
    },
    "MinioEvent": {
        "type": "object",
        "description": "A MinIO webhook target notification: one S3-style record.",
        "required": ["Records"],
        "properties": {
            "EventName": {"type": "string", "example": "s3:ObjectCreated:Put"},
            "Key": {"type": "string", "description": "bucket/key"},
            "Records": {"type": "array", "items": _ref("S3Record")},
        },
    },
    "PubSubPush": {
        "type": "object",
        "description": "A Pub/Sub push envelope of a GCS notification (OBJECT_FINALIZE).",
        "required": ["message"],
        "properties": {
            "message": {
                "type": "object",
                "properties": {
                    "data": {
                        "type": "string",
                        "format": "byte",
                        "description": "base64 of the object resource (JSON_API_V1)",
                    },
                    "attributes": {
                        "type": "object",
                        "additionalProperties": _STRING,
                        "example": {"eventType": "OBJECT_FINALIZE", "bucketId": "b"},
                    },
                    "messageId": _STRING,
                    "publishTime": {"type": "string", "format": "date-time"},
                },
            },
            "subscription": _STRING,
        },
    },
    "GcsObject": {
        "type": "object",
        "description": "A GCS object resource; int64 fields arrive as strings.",
        "required": ["bucket", "name"],
        "properties": {
            "bucket": _STRING,
            "name": _STRING,
            "generation": _STRING,
            "size": _STRING,
            "etag": _STRING,
            "contentType": _STRING,
            "timeCreated": {"type": "string", "format": "date-time"},
        },
    },
    "CloudEvent": {
        "type": "object",
        "description": "A CloudEvents 1.0 event in structured mode.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "enum": ["1.0"]},
            "id": _STRING,
            "source": _STRING,
            "type": {"type": "string", "example": "Microsoft.Storage.BlobCreated"},
            "subject": _STRING,
            "time": {"type": "string", "format": "date-time"},
            "data": _OBJECT,
        },
    },
    "EventGridEvent": {
        "type": "object",
        "description": "An Event Grid schema event (Event Grid posts an array of them).",
        "required": ["id", "eventType", "subject"],
        "properties": {
            "id": _STRING,
            "topic": _STRING,
            "subject": {"type": "string", "example": "/blobServices/default/containers/c/blobs/k"},
            "eventType": {
                "type": "string",
                "example": "Microsoft.Storage.BlobCreated",
                "description": "or Microsoft.EventGrid.SubscriptionValidationEvent",
            },
            "eventTime": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "properties": {
                    "url": _STRING,
                    "contentLength": {"type": "integer"},
                    "eTag": _STRING,
                    "sequencer": _STRING,
                    "validationCode": _STRING,
                },
            },
        },
    },
    "ReplicatePrediction": {
        "type": "object",
        "description": "A Replicate prediction object; only finished ones are imported.",
        "required": ["status"],
        "properties": {
            "id": _STRING,
            "model": _STRING,
            "version": _STRING,
            "status": {
                "type": "string",
                "enum": ["starting", "processing", "succeeded", "failed", "canceled"],
            },
            "input": _OBJECT,
            "output": {"description": "a detection list or generic objects"},
            "error": {"type": "string", "nullable": True},
        },
    },
    "SageMakerNotice": {
        "type": "object",
        "description": "A SageMaker async inference notice: the `Message` of an SNS envelope.",
        "required": ["inferenceId", "invocationStatus", "requestParameters"],
        "properties": {
            "inferenceId": _STRING,
            "invocationStatus": {"type": "string", "enum": ["Completed", "Failed"]},
            "failureReason": _STRING,
            "requestParameters": {
                "type": "object",
                "properties": {
                    "endpointName": _STRING,
                    "inputLocation": {"type": "string", "example": "s3://bucket/key.jpg"},
                },
            },
            "responseParameters": {
                "type": "object",
                "properties": {"outputLocation": _STRING, "contentType": _STRING},
            },
            "responseBody": {"description": '{"content": base64, "encoding": "BASE64"} or text'},
        },
    },
    "SegmentsWebhook": {
        "type": "object",
        "description": "A Segments.ai webhook (Svix); `release.created` starts tracking.",
        "required": ["event_type"],
        "properties": {
            "event_type": {"type": "string", "example": "release.created"},
            "created_at": _STRING,
            "api_version": _STRING,
            "dataset": {"type": "string", "example": "owner/name"},
            "object": _OBJECT,
            "text": _STRING,
        },
    },
    "PredictionObject": {
        "type": "object",
        "description": "One predicted object; exactly one geometry. Unknown keys are refused.",
        "required": ["label"],
        "additionalProperties": False,
        "properties": {
            "label": _STRING,
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "bbox_format": {"type": "string", "enum": ["xyxy", "xywh"], "default": "xyxy"},
            "polygon": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "polyline": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "point": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "normalized": {
                "type": "boolean",
                "description": "coordinates are fractions of `image` width and height",
            },
        },
    },
}


# --- sender types ---------------------------------------------------------------------------


def _header(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": required,
        "schema": _STRING,
        "description": description,
    }


def _query(name: str, description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": _STRING, "description": description}


TOKEN_PARAMS = [
    _header("X-Relay-Token", "the source's shared token (or send it as a bearer token)"),
    _query("token", "the source's shared token, in the URL"),
]
SNS_PARAMS = [
    _header("x-amz-sns-message-type", "Notification, SubscriptionConfirmation, ..."),
    _header("x-amz-sns-message-id", "SNS's message id (raw message delivery)"),
]
SIGNATURE_PARAMS = [
    _header("webhook-id", "Standard Webhooks: the message id (dedupes retries)"),
    _header("webhook-timestamp", "Standard Webhooks: Unix seconds, within 5 minutes of now"),
    _header("webhook-signature", "Standard Webhooks: `v1,<base64 HMAC-SHA256>` entries"),
]
SVIX_PARAMS = [
    _header("svix-id", "the message id"),
    _header("svix-timestamp", "Unix seconds"),
    _header("svix-signature", "`v1,<base64 HMAC-SHA256>` entries"),
]
CE_PARAMS = [
    _header(f"ce-{name}", f"binary-mode CloudEvent `{name}` (Eventarc)")
    for name in ("specversion", "id", "source", "type", "subject", "time")
]


@dataclass(frozen=True)
class SenderType:
    """What one source type's senders post, and how they prove who they are."""

    summary: str
    auth: str
    bodies: tuple[str, ...]
    content_types: tuple[str, ...] = ("application/json",)
    parameters: tuple[dict[str, Any], ...] = ()
    handshake: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # other methods -> what they answer


SENDER_TYPES: dict[str, SenderType] = {
    "s3": SenderType(
        summary="Amazon S3 event notifications: direct, through SNS, or through EventBridge",
        auth="SNS envelopes: AWS's RSA signature (v1/v2) and the source's `topic_arns`. Direct, "
        "raw-SNS and EventBridge deliveries: a source token as `X-Relay-Token`, bearer, "
        "Basic password or `?token=`.",
        bodies=("S3Event", "SnsEnvelope", "EventBridgeS3Event"),
        content_types=("application/json", "text/plain"),
        parameters=(*TOKEN_PARAMS, *SNS_PARAMS),
        handshake="SNS SubscriptionConfirmation / UnsubscribeConfirmation: 200 once handled.",
    ),
    "minio": SenderType(
        summary="MinIO bucket notifications from a notify_webhook target",
        auth="`Authorization: Bearer <auth_token>` (MinIO's auth_token, a source secret).",
        bodies=("MinioEvent",),
        parameters=tuple(TOKEN_PARAMS),
        extra={"head": "MinIO's reachability probe: an empty 200", "get": "the same probe"},
    ),
    "gcs": SenderType(
        summary="Google Cloud Storage: Pub/Sub push envelopes or Eventarc CloudEvents",
        auth="The push subscription's Google-signed OIDC token as a bearer token (audience, "
        "issuer, email checked); a source without `oidc_audience` takes a shared token.",
        bodies=("PubSubPush", "CloudEvent", "GcsObject"),
        content_types=("application/json", "application/cloudevents+json"),
        parameters=(*TOKEN_PARAMS, *CE_PARAMS),
    ),
    "azure": SenderType(
        summary="Azure Blob Storage events from Event Grid (Event Grid or CloudEvents schema)",
        auth="A source token, best as `?token=` in the subscription URL, or `X-Relay-Token`.",
        bodies=("EventGridEvents", "CloudEvent", "CloudEventBatch"),
        content_types=(
            "application/json",
            "application/cloudevents+json",
            "application/cloudevents-batch+json",
        ),
        parameters=(
            *TOKEN_PARAMS,
            _header("aeg-event-type", "`SubscriptionValidation` for the validation handshake"),
        ),
        handshake='A SubscriptionValidationEvent: 200 `{"validationResponse": <code>}`.',
        extra={
            "options": "CloudEvents abuse protection: 200 with `WebHook-Allowed-Origin` "
            "echoing `WebHook-Request-Origin` (token required)"
        },
    ),
    "predictions": SenderType(
        summary="The relay's generic prediction callback, signed with Standard Webhooks",
        auth="Standard Webhooks signature with one of the source's `whsec_` secrets.",
        bodies=("Prediction",),
        parameters=tuple(SIGNATURE_PARAMS),
    ),
    "replicate": SenderType(
        summary="Replicate prediction webhooks (signed with Standard Webhooks)",
        auth="Standard Webhooks signature with the source's `whsec_` secret. The webhook URL's "
        "query names the sample.",
        bodies=("ReplicatePrediction",),
        parameters=(
            *SIGNATURE_PARAMS,
            _query("sample_uuid", "the sample's uuid"),
            _query("dataset", "owner/name, with `sample`"),
            _query("sample", "the sample's name (the route's dataset unless `dataset`)"),
            _query("bucket", "with `key`: the sample of this storage object"),
            _query("key", "with `bucket`"),
            _query("image_width", "image width, for outputs in normalized coordinates"),
            _query("image_height", "image height, for outputs in normalized coordinates"),
        ),
    ),
    "sagemaker": SenderType(
        summary="SageMaker asynchronous inference results, through SNS",
        auth="AWS's SNS signature and the source's `topic_arns`.",
        bodies=("SnsEnvelope",),
        content_types=("text/plain", "application/json"),
        parameters=tuple(SNS_PARAMS),
        handshake="SNS SubscriptionConfirmation / UnsubscribeConfirmation: 200 once handled.",
    ),
    "segments": SenderType(
        summary="Segments.ai webhooks (Svix); `release.created` starts tracking the release",
        auth="Svix (Standard Webhooks) signature with the endpoint's `whsec_` secret.",
        bodies=("SegmentsWebhook",),
        parameters=tuple(SVIX_PARAMS),
    ),
}

ARRAY_BODIES = {
    "EventGridEvents": {"type": "array", "items": _ref("EventGridEvent")},
    "CloudEventBatch": {"type": "array", "items": _ref("CloudEvent")},
}


def _body_schema(names: tuple[str, ...]) -> dict[str, Any]:
    schemas = [ARRAY_BODIES.get(name) or _ref(name) for name in names]
    return schemas[0] if len(schemas) == 1 else {"oneOf": schemas}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ErrorSchema}}}


HOOK_ERRORS = {
    "400": _error("the body is not what this sender type sends; `fields` names what is wrong"),
    "401": _error("a missing or bad token, signature or OIDC token (never echoed)"),
    "404": _error("no source of that name is configured"),
    "405": _error("a method this source type does not take"),
    "413": _error("a body over the source's (or RELAY_MAX_BODY_BYTES) limit"),
    "502": _error("a signing certificate, key set or confirmation URL could not be fetched"),
    "503": _error("Redis or the broker is unavailable; nothing was recorded, retry"),
}
OPS_ERRORS = {
    "401": _error("no or a wrong ops token"),
    "503": _error("Redis or the broker is unavailable; retry"),
}
BAD_REQUEST = {"400": _error("a wrong query or body; `fields` names each wrong field")}


def _hook_operation(kinds: list[str], operation_id: str, source: str | None) -> dict[str, Any]:
    """The POST of /hooks/<source> for these sender types."""
    types = [SENDER_TYPES[k] for k in kinds]
    bodies = tuple(dict.fromkeys(b for t in types for b in t.bodies))
    content_types = tuple(dict.fromkeys(c for t in types for c in t.content_types))
    parameters = list({p["name"]: p for t in types for p in t.parameters}.values())
    lines = [
        f"- **{k}**: {t.summary}. *Authentication*: {t.auth}"
        + (f" *Handshake*: {t.handshake}" if t.handshake else "")
        for k, t in zip(kinds, types, strict=True)
    ]
    where = f"the source `{source}`" if source else "a source named in RELAY_CONFIG"
    description = (
        f"Verify, parse, record and enqueue a delivery to {where}. The relay answers before any "
        "Segments.ai call; an event is stored before the 2xx.\n\n" + "\n".join(lines)
    )
    schema = _body_schema(bodies)
    return {
        "operationId": operation_id,
        "summary": types[0].summary if len(types) == 1 else "Receive a sender's delivery",
        "description": description,
        "tags": ["hooks"],
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {ctype: {"schema": schema} for ctype in content_types},
        },
        "responses": {
            "202": {
                "description": "notices received: accepted, duplicate, ignored or failed",
                "content": {"application/json": {"schema": HookAnswerSchema}},
            },
            "200": {"description": "a handshake, answered as the sender expects"},
            **HOOK_ERRORS,
        },
    }


def _extra_operations(kinds: list[str], prefix: str) -> dict[str, Any]:
    """HEAD/GET (MinIO probes) and OPTIONS (CloudEvents abuse protection), where taken."""
    found: dict[str, Any] = {}
    for kind in kinds:
        for method, answer in SENDER_TYPES[kind].extra.items():
            found.setdefault(
                method,
                {
                    "operationId": f"{prefix}_{method}",
                    "summary": f"{kind}: {answer.split(':')[0]}",
                    "description": f"Only for {kind} sources: {answer}. Other types answer 405.",
                    "tags": ["hooks"],
                    "responses": {
                        "200": {"description": answer},
                        "401": HOOK_ERRORS["401"],
                        "404": HOOK_ERRORS["404"],
                        "405": HOOK_ERRORS["405"],
                    },
                },
            )
    return found


# --- the document ---------------------------------------------------------------------------

SCHEMA_PREFIXES = {predictions.__name__: "Prediction", release_ops.__name__: "Release"}


def schema_name(schema: Any) -> str:
    """A component name: predictions' `_SampleSchema` -> PredictionSample."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__.lstrip("_").removesuffix("Schema")
    prefix = SCHEMA_PREFIXES.get(cls.__module__, "")
    return name if name.startswith(prefix) else prefix + name


def _version() -> str:
    try:
        return metadata.version("segments-relay")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: `/ops/events/<event_id>` -> `/ops/events/{event_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "in": "path",
        "name": name,
        "required": True,
        "schema": _STRING,
        "description": description,
    }


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ops(operation: dict[str, Any], *, tag: str, errors: dict[str, Any] | None = None) -> dict:
    responses = {**operation.pop("responses"), **OPS_ERRORS, **(errors or {})}
    return {"tags": [tag], "security": [{"opsToken": []}], **operation, "responses": responses}


def _path(spec: APISpec, path: str, **parts: Any) -> None:
    """Add a path; copies first, as apispec resolves references in the dicts it is given."""
    parts = copy.deepcopy(parts)
    for operation in parts["operations"].values():
        operation["responses"] = dict(sorted(operation["responses"].items()))
    spec.path(path=path, **parts)


def build_spec(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document for a relay with these settings."""
    spec = APISpec(
        title=TITLE,
        version=_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=schema_name)],
        info={
            "description": "Storage and model webhooks into Segments.ai API calls, and the "
            "operator endpoints that show what happened. Errors are always JSON "
            '`{"error", "message", "fields"}`, never HTML or a traceback.'
        },
        tags=[
            {"name": "hooks", "description": "senders' webhooks"},
            {"name": "health", "description": "probes and metrics (no authentication)"},
            {"name": "events", "description": "recorded events and replay"},
            {"name": "releases", "description": "release requests and tracking"},
            {"name": "dashboard", "description": "the operators' page"},
        ],
    )
    spec.components.security_scheme(
        "opsToken",
        {"type": "http", "scheme": "bearer", "description": "`RELAY_OPS_TOKEN`"},
    )
    spec.components.security_scheme(
        "opsTokenQuery",
        {
            "type": "apiKey",
            "in": "query",
            "name": TOKEN_QUERY,
            "description": "`RELAY_OPS_TOKEN` in the URL: the dashboard page only, because a "
            "browser following a link cannot set a header",
        },
    )
    for name, component in SENDER_SCHEMAS.items():
        spec.components.schema(name, component)
    spec.components.schema("Prediction", schema=predictions.PredictionSchema)
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("Event", schema=event_ops.EventSchema)

    _add_hooks(spec, settings)
    _add_health(spec)
    _add_events(spec)
    _add_releases(spec)
    _path(
        spec,
        path="/ops/dashboard",
        operations={
            "get": {
                "operationId": "dashboard",
                "summary": "The operators' page (HTML)",
                "description": "Counts by status, sources (never secrets), recent and failed "
                "events with replay buttons, tracked releases. Self-contained: no external "
                "assets. Takes the ops token as a bearer header or `?token=`.",
                "tags": ["dashboard"],
                "security": [{"opsToken": []}, {"opsTokenQuery": []}],
                "responses": {
                    "200": {
                        "description": "the page",
                        "content": {"text/html": {"schema": _STRING}},
                    },
                    **OPS_ERRORS,
                },
            }
        },
    )
    document = spec.to_dict()
    # PredictionSchema lets `relay.convert` check objects; show readers what one looks like.
    objects = document["components"]["schemas"]["Prediction"]["properties"].get("objects")
    if objects is not None:
        objects["items"] = _ref("PredictionObject")
    return document


def _add_hooks(spec: APISpec, settings: Settings) -> None:
    kinds = list(SENDER_TYPES)
    source_param = _path_param("source_name", "a source named in the config")
    configured = ", ".join(f"`{s.name}` ({s.type})" for s in settings.sources.values())
    source_param["description"] += f"; this relay has {configured or 'none'}"
    _path(
        spec,
        path="/hooks/{source_name}",
        parameters=[source_param],
        operations={
            "post": _hook_operation(kinds, "receive_hook", None),
            **_extra_operations(kinds, "hook"),
        },
    )
    for source in sorted(settings.sources.values(), key=lambda s: s.name):
        if source.type not in SENDER_TYPES:
            continue
        ident = re.sub(r"\W", "_", source.name)
        _path(
            spec,
            path=f"/hooks/{source.name}",
            operations={
                "post": _hook_operation([source.type], f"receive_hook_{ident}", source.name),
                **_extra_operations([source.type], f"hook_{ident}"),
            },
        )


def _add_health(spec: APISpec) -> None:
    _path(
        spec,
        path="/healthz",
        operations={
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process is up (touches nothing)",
                "tags": ["health"],
                "responses": {"200": _json(HealthSchema, "alive")},
            }
        },
    )
    _path(
        spec,
        path="/readyz",
        operations={
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: Redis (event store and broker) answers",
                "tags": ["health"],
                "responses": {
                    "200": _json(ReadySchema, "ready"),
                    "503": _json(ReadySchema, "Redis is unreachable"),
                },
            }
        },
    )
    _path(
        spec,
        path="/metrics",
        operations={
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "description": "`relay_hook_requests_total{source,outcome}`, "
                "`relay_notices_total{source,result}`, `relay_tasks_total{kind,result}`, "
                "`relay_api_rate_limited_total`, `relay_events{status}`.",
                "tags": ["health"],
                "responses": {
                    "200": {
                        "description": "the exposition format",
                        "content": {"text/plain": {"schema": _STRING}},
                    },
                    "503": {
                        "description": "Redis is unreachable",
                        "content": {"text/plain": {"schema": _STRING}},
                    },
                },
            }
        },
    )
    _path(
        spec,
        path="/openapi.json",
        operations={
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["health"],
                "responses": {"200": _json(_OBJECT, "the OpenAPI 3 document")},
            }
        },
    )


def _add_events(spec: APISpec) -> None:
    event_id = _path_param("event_id", "an event id, e.g. `evt_0190a1b2c3d4e5f6a7b8c9`")
    unknown = {"404": _error("no such event (unknown or expired)")}
    _path(
        spec,
        path="/ops/events",
        operations={
            "get": _ops(
                {
                    "operationId": "list_events",
                    "summary": "Recorded events, newest first",
                    "description": "Filters combine. Page on with `before` = the previous "
                    "page's `next_before`. Filtering by source or kind looks at up to 5000 "
                    "events per call; `next_before` then continues where it stopped.",
                    "parameters": [{"in": "query", "schema": event_ops.EventsQuerySchema}],
                    "responses": {"200": _json(event_ops.EventPageSchema, "a page of events")},
                },
                tag="events",
                errors=BAD_REQUEST,
            )
        },
    )
    _path(
        spec,
        path="/ops/events/stats",
        operations={
            "get": _ops(
                {
                    "operationId": "event_stats",
                    "summary": "Counts by status and the most recent failures",
                    "responses": {"200": _json(event_ops.EventStatsSchema, "the numbers")},
                },
                tag="events",
            )
        },
    )
    _path(
        spec,
        path="/ops/events/{event_id}",
        parameters=[event_id],
        operations={
            "get": _ops(
                {
                    "operationId": "get_event",
                    "summary": "One event: payload, attempts, last error, result",
                    "responses": {"200": _json(event_ops.EventSchema, "the event")},
                },
                tag="events",
                errors=unknown,
            )
        },
    )
    _path(
        spec,
        path="/ops/events/{event_id}/replay",
        parameters=[event_id],
        operations={
            "post": _ops(
                {
                    "operationId": "replay_event",
                    "summary": "Queue one finished (failed, succeeded, skipped) event again",
                    "description": "The event goes back to queued with a fresh attempt budget "
                    "and its task is enqueued; tasks are idempotent, so replaying a succeeded "
                    "event only re-checks its effect. No body.",
                    "responses": {"202": _json(event_ops.ReplayedEventSchema, "queued again")},
                },
                tag="events",
                errors={
                    **unknown,
                    "409": _error(
                        "not replayable, with the reason: queued or running already, an "
                        "ignored notice, a failed model run"
                    ),
                },
            )
        },
    )
    _path(
        spec,
        path="/ops/events/replay",
        operations={
            "post": _ops(
                {
                    "operationId": "replay_events",
                    "summary": "Queue many finished events again",
                    "description": 'Either `{"ids": [...]}` or a selection such as '
                    '`{"status": "failed", "source": "s3", "limit": 100}` (newest first). '
                    "Events that cannot be replayed are listed in `skipped` with the reason.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": event_ops.ReplayRequestSchema}},
                    },
                    "responses": {"200": _json(event_ops.ReplayResultSchema, "what was done")},
                },
                tag="events",
                errors=BAD_REQUEST,
            )
        },
    )


def _add_releases(spec: APISpec) -> None:
    unknown = {"404": _error("no tracked release of that name")}
    answer = _json(ReleaseAnswerSchema, "recorded; a worker does the rest")
    _path(
        spec,
        path="/ops/releases",
        operations={
            "post": _ops(
                {
                    "operationId": "create_release",
                    "summary": "Ask for a release; the relay creates it and polls it until it ends",
                    "description": "An unknown dataset shows up moments later as a FAILED "
                    "release with the API's message, not as an error here.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": release_ops._CreateSchema}},
                    },
                    "responses": {"202": answer},
                },
                tag="releases",
                errors=BAD_REQUEST,
            ),
            "get": _ops(
                {
                    "operationId": "list_releases",
                    "summary": "Tracked releases, newest first",
                    "parameters": [{"in": "query", "schema": release_ops._ListSchema}],
                    "responses": {"200": _json(ReleasePageSchema, "the releases")},
                },
                tag="releases",
                errors=BAD_REQUEST,
            ),
        },
    )
    _path(
        spec,
        path="/ops/releases/track",
        operations={
            "post": _ops(
                {
                    "operationId": "track_release",
                    "summary": "Follow a release made elsewhere until it ends, and report it",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": release_ops._TrackSchema}},
                    },
                    "responses": {"202": answer},
                },
                tag="releases",
                errors=BAD_REQUEST,
            )
        },
    )
    _path(
        spec,
        path="/ops/releases/{owner}/{dataset}/{name}",
        parameters=[
            _path_param("owner", "the dataset's owner"),
            _path_param("dataset", "the dataset's name"),
            _path_param("name", "the release's name"),
        ],
        operations={
            "get": _ops(
                {
                    "operationId": "get_release",
                    "summary": "One tracked release: status, times, duration, export URL",
                    "responses": {"200": _json(ReleaseSchema, "the release")},
                },
                tag="releases",
                errors=unknown,
            )
        },
    )


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """The OpenAPI document, built once per app."""
    document = current_app.extensions.get("relay_openapi")
    if document is None:
        document = build_spec(current_app.extensions["relay"].settings)
        current_app.extensions["relay_openapi"] = document
    return jsonify(document)
