"""GCS deliveries: Pub/Sub push envelopes and Eventarc CloudEvents, with OIDC or a shared token."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError, SignatureError
from relay.hooks import gcs
from relay.hooks.base import Delivery, HookContext, InboundRequest, Notice, StorageObject
from tests.hooks.gcpfakes import (
    AUDIENCE,
    JWKS_URL,
    KID,
    SERVICE_ACCOUNT,
    Clock,
    KeyServer,
    jwks,
    make_key,
    make_oidc_token,
)
from tests.hooks.inbound import inbound

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOW = 1_700_000_000.0
SECRET = "gcs-shared-secret"
ROTATED = "gcs-next-secret"

OIDC_SOURCE = Source(
    name="gcs-push",
    type="gcs",
    oidc_audience=AUDIENCE,
    oidc_emails=(SERVICE_ACCOUNT,),
    oidc_jwks_url=JWKS_URL,
)
TOKEN_SOURCE = Source(name="gcs-legacy", type="gcs", secrets=(SECRET, ROTATED))

SAMPLE_OBJECT = StorageObject(
    provider="gcs",
    bucket="sample-bucket",
    key="folder/Test.cs",
    size=352,
    etag="CNHZkbuF/ugCEAE=",
    version="1587627537231057",
    event_time="2020-04-23T07:38:57.230Z",
    content_type="text/plain",
    event_name="OBJECT_FINALIZE",
)
FINALIZED = "google.cloud.storage.object.v1.finalized"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_headers(name: str) -> dict[str, str]:
    """A fixture's documented headers, lower-cased, without its notes and placeholder token."""
    return {
        header.lower(): value
        for header, value in load(name).items()
        if not header.startswith("_") and header.lower() != "authorization"
    }


def post(
    body: Any,
    headers: dict[str, str] | None = None,
    args: dict[str, str] | None = None,
    method: str = "POST",
) -> InboundRequest:
    return inbound(body, headers=headers, args=args, method=method)


def push(resource: dict[str, Any] | None = None, **attributes: str) -> dict[str, Any]:
    """A push envelope like the fixture's, with the resource re-encoded and attributes changed."""
    envelope = load("gcs_pubsub_push.json")
    if resource is not None:
        envelope["message"]["data"] = base64.b64encode(json.dumps(resource).encode()).decode()
    envelope["message"]["attributes"].update(attributes)
    return envelope


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture
def ctx(key: rsa.RSAPrivateKey) -> HookContext:
    return HookContext(http_get=KeyServer(jwks((KID, key))), now=Clock(NOW))


@pytest.fixture
def bearer(key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {"authorization": f"Bearer {make_oidc_token(key, KID, now=NOW)}"}


def receive_with_token(request: InboundRequest) -> Delivery:
    """Receive on the shared-token source, which keeps payload tests free of OIDC."""
    ctx = HookContext(http_get=KeyServer({"keys": []}))
    result = gcs.receive(TOKEN_SOURCE, request, ctx)
    assert isinstance(result, Delivery)
    return result


# --- the fixtures -------------------------------------------------------------------------------


def test_pubsub_push_fixture(ctx: HookContext, bearer: dict[str, str]) -> None:
    headers = {**fixture_headers("gcs_pubsub_push_headers.json"), **bearer}
    result = gcs.receive(OIDC_SOURCE, post(load("gcs_pubsub_push.json"), headers), ctx)
    assert result == Delivery(
        [Notice(message_id="2070443601311540", object=SAMPLE_OBJECT, event_name="OBJECT_FINALIZE")]
    )


def test_eventarc_structured_fixture(ctx: HookContext, bearer: dict[str, str]) -> None:
    headers = {"content-type": "application/cloudevents+json; charset=utf-8", **bearer}
    result = gcs.receive(OIDC_SOURCE, post(load("gcs_cloudevent_structured.json"), headers), ctx)
    expected = replace(SAMPLE_OBJECT, event_name=FINALIZED)
    assert result == Delivery([Notice(message_id="1234567", object=expected, event_name=FINALIZED)])


def test_eventarc_binary_fixture(ctx: HookContext, bearer: dict[str, str]) -> None:
    headers = {**fixture_headers("gcs_eventarc_binary_headers.json"), **bearer}
    result = gcs.receive(OIDC_SOURCE, post(load("gcs_object_resource.json"), headers), ctx)
    expected = replace(SAMPLE_OBJECT, event_name=FINALIZED)
    assert result == Delivery([Notice(message_id="1234567", object=expected, event_name=FINALIZED)])


# --- object names and payload formats -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "images/red flower (1)+v2.jpg",
        "images%2Fliteral-percent.jpg",
        "/leading/slash.png",
        "データ/画像.png",
    ],
)
def test_object_name_is_kept_raw(name: str) -> None:
    resource = {**load("gcs_object_resource.json"), "name": name}
    request = post(push(resource, objectId=name), args={"token": SECRET})
    (notice,) = receive_with_token(request).notices
    assert notice.object is not None
    assert notice.object.key == name


def test_eventarc_binary_name_is_kept_raw() -> None:
    name = "images/red flower (1)+v2.jpg"
    headers = fixture_headers("gcs_eventarc_binary_headers.json")
    resource = {**load("gcs_object_resource.json"), "name": name}
    (notice,) = receive_with_token(post(resource, headers, {"token": SECRET})).notices
    assert notice.object is not None
    assert notice.object.key == name


def test_payload_format_none_reads_the_attributes() -> None:
    envelope = push(payloadFormat="NONE")
    envelope["message"]["data"] = ""
    (notice,) = receive_with_token(post(envelope, args={"token": SECRET})).notices
    assert notice.object == StorageObject(
        provider="gcs",
        bucket="sample-bucket",
        key="folder/Test.cs",
        version="1587627537231057",
        event_time="2020-04-23T07:38:57.230Z",
        event_name="OBJECT_FINALIZE",
    )


def test_numbers_may_arrive_as_numbers() -> None:
    resource = {**load("gcs_object_resource.json"), "size": 352, "generation": 7}
    (notice,) = receive_with_token(post(push(resource), args={"token": SECRET})).notices
    assert notice.object is not None
    assert (notice.object.size, notice.object.version) == (352, "7")


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("OBJECT_DELETE", "object deleted"),
        ("OBJECT_ARCHIVE", "object archived"),
        ("OBJECT_METADATA_UPDATE", "object metadata updated"),
        ("OBJECT_SOMETHING_NEW", "is not an object creation"),
    ],
)
def test_other_pubsub_events_are_ignored(event_type: str, reason: str) -> None:
    envelope = push(eventType=event_type)
    envelope["message"]["data"] = "not even base64, and not read"
    (notice,) = receive_with_token(post(envelope, args={"token": SECRET})).notices
    assert notice.object is None
    assert reason in (notice.ignored or "")
    assert (notice.message_id, notice.event_name) == ("2070443601311540", event_type)


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("google.cloud.storage.object.v1.deleted", "object deleted"),
        ("google.cloud.storage.object.v1.archived", "object archived"),
        ("google.cloud.storage.object.v1.metadataUpdated", "object metadata updated"),
        ("google.cloud.pubsub.topic.v1.messagePublished", "is not an object creation"),
    ],
)
def test_other_eventarc_events_are_ignored(event_type: str, reason: str) -> None:
    headers = {**fixture_headers("gcs_eventarc_binary_headers.json"), "ce-type": event_type}
    (notice,) = receive_with_token(post(b"", headers, {"token": SECRET})).notices
    assert notice.object is None
    assert reason in (notice.ignored or "")
    assert (notice.message_id, notice.event_name) == ("1234567", event_type)


def test_structured_batch_gives_one_notice_each() -> None:
    first = load("gcs_cloudevent_structured.json")
    second = {**first, "id": "1234568", "type": "google.cloud.storage.object.v1.deleted"}
    headers = {"content-type": "application/cloudevents-batch+json"}
    notices = receive_with_token(post([first, second], headers, {"token": SECRET})).notices
    assert [(n.message_id, n.object is not None) for n in notices] == [
        ("1234567", True),
        ("1234568", False),
    ]


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        pytest.param(None, "missing OIDC token", id="missing"),
        pytest.param("Basic dXNlcjpwYXNz", "missing OIDC token", id="basic"),
        pytest.param("Bearer ", "missing OIDC token", id="empty-bearer"),
        pytest.param("Bearer not.a.jwt", "well-formed", id="garbage"),
    ],
)
def test_oidc_source_refuses_requests_without_a_valid_token(
    ctx: HookContext, authorization: str | None, reason: str
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    with pytest.raises(SignatureError, match=reason):
        gcs.receive(OIDC_SOURCE, post(load("gcs_pubsub_push.json"), headers), ctx)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"aud": "https://other.example.com"}, "audience", id="wrong-audience"),
        pytest.param({"email": "someone@example.com"}, "service account", id="wrong-account"),
        pytest.param({"exp": NOW - 3600}, "expired", id="expired"),
    ],
)
def test_oidc_source_checks_the_token_claims(
    key: rsa.RSAPrivateKey, ctx: HookContext, claims: dict[str, Any], reason: str
) -> None:
    headers = {"authorization": f"Bearer {make_oidc_token(key, KID, now=NOW, **claims)}"}
    with pytest.raises(SignatureError, match=reason):
        gcs.receive(OIDC_SOURCE, post(load("gcs_pubsub_push.json"), headers), ctx)


def test_oidc_source_does_not_take_the_shared_secret(ctx: HookContext) -> None:
    source = replace(OIDC_SOURCE, secrets=(SECRET,))
    request = post(load("gcs_pubsub_push.json"), args={"token": SECRET})
    with pytest.raises(SignatureError, match="missing OIDC token"):
        gcs.receive(source, request, ctx)


@pytest.mark.parametrize(
    ("headers", "args"),
    [
        pytest.param({}, {"token": SECRET}, id="query"),
        pytest.param({}, {"token": ROTATED}, id="rotated-secret"),
        pytest.param({"authorization": f"Bearer {SECRET}"}, {}, id="bearer"),
        pytest.param({"x-relay-token": ROTATED}, {}, id="header"),
    ],
)
def test_token_source_accepts_either_secret(headers: dict[str, str], args: dict[str, str]) -> None:
    result = receive_with_token(post(load("gcs_pubsub_push.json"), headers, args))
    assert result.notices[0].object == SAMPLE_OBJECT


@pytest.mark.parametrize(
    ("source", "args", "reason"),
    [
        pytest.param(TOKEN_SOURCE, {}, "missing token", id="missing"),
        pytest.param(TOKEN_SOURCE, {"token": "guess"}, "does not match", id="wrong"),
        pytest.param(
            Source(name="open", type="gcs"), {"token": "anything"}, "does not match", id="no-secret"
        ),
    ],
)
def test_token_source_refuses_a_wrong_or_missing_secret(
    ctx: HookContext, source: Source, args: dict[str, str], reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        gcs.receive(source, post(load("gcs_pubsub_push.json"), args=args), ctx)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT"])
def test_only_post_is_accepted(ctx: HookContext, method: str) -> None:
    with pytest.raises(MethodNotAllowedError):
        gcs.receive(TOKEN_SOURCE, post(b"", args={"token": SECRET}, method=method), ctx)


# --- hostile bodies -----------------------------------------------------------------------------


def _envelope(**message: Any) -> dict[str, Any]:
    envelope = load("gcs_pubsub_push.json")
    envelope["message"].update(message)
    return {**envelope, "message": {k: v for k, v in envelope["message"].items() if v is not None}}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _resource(**fields: Any) -> dict[str, Any]:
    resource = {**load("gcs_object_resource.json"), **fields}
    return {k: v for k, v in resource.items() if v is not None}


_ATTRIBUTES = load("gcs_pubsub_push.json")["message"]["attributes"]
_STRUCTURED = load("gcs_cloudevent_structured.json")
_BINARY = fixture_headers("gcs_eventarc_binary_headers.json")
_CE = {"content-type": "application/cloudevents+json"}

HOSTILE_PUSH = [
    ("empty", b"", "body"),
    ("not-json", b"{not json", "body"),
    ("array", b"[]", "body"),
    ("string", b'"message"', "body"),
    ("no-message", {"subscription": "s"}, "message"),
    ("message-not-object", {"message": "hi"}, "message"),
    ("no-message-id", _envelope(messageId=None), "message.messageId"),
    ("message-id-number", _envelope(messageId=7), "message.messageId"),
    ("no-attributes", _envelope(attributes=None), "message.attributes"),
    ("attributes-list", _envelope(attributes=[]), "message.attributes"),
    (
        "no-event-type",
        _envelope(attributes={k: v for k, v in _ATTRIBUTES.items() if k != "eventType"}),
        "message.attributes.eventType",
    ),
    ("data-not-base64", _envelope(data="***"), "message.data"),
    ("data-number", _envelope(data=12), "message.data"),
    ("data-not-json", _envelope(data=_b64(b"plain text")), "message.data"),
    ("data-not-utf8", _envelope(data=_b64(b"\xff\xfe\x00{")), "message.data"),
    ("data-array", _envelope(data=_b64(b"[1, 2]")), "message.data"),
    (
        "no-name",
        _envelope(data=_b64(json.dumps(_resource(name=None)).encode())),
        "message.data.name",
    ),
    (
        "empty-name",
        _envelope(data=_b64(json.dumps(_resource(name="")).encode())),
        "message.data.name",
    ),
    (
        "bucket-number",
        _envelope(data=_b64(json.dumps(_resource(bucket=5)).encode())),
        "message.data.bucket",
    ),
    (
        "size-words",
        _envelope(data=_b64(json.dumps(_resource(size="big")).encode())),
        "message.data.size",
    ),
    (
        "size-negative",
        _envelope(data=_b64(json.dumps(_resource(size="-1")).encode())),
        "message.data.size",
    ),
    (
        "size-huge",
        _envelope(data=_b64(json.dumps(_resource(size="9" * 5000)).encode())),
        "message.data.size",
    ),
    (
        "size-bool",
        _envelope(data=_b64(json.dumps(_resource(size=True)).encode())),
        "message.data.size",
    ),
    (
        "generation-float",
        _envelope(data=_b64(json.dumps(_resource(generation=1.5)).encode())),
        "message.data.generation",
    ),
    (
        "content-type-object",
        _envelope(data=_b64(json.dumps(_resource(contentType={})).encode())),
        "message.data.contentType",
    ),
    (
        "no-payload-no-object-id",
        _envelope(
            data="",
            attributes={k: v for k, v in _ATTRIBUTES.items() if k != "objectId"},
        ),
        "message.attributes.objectId",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [pytest.param(body, field, id=name) for name, body, field in HOSTILE_PUSH]
)
def test_hostile_push_body_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        receive_with_token(post(body, args={"token": SECRET}))
    assert field in caught.value.fields


HOSTILE_CLOUDEVENTS = [
    ("structured-no-id", _CE, {**_STRUCTURED, "id": None}, "id"),
    ("structured-type-number", _CE, {**_STRUCTURED, "type": 3}, "type"),
    ("structured-spec-2", _CE, {**_STRUCTURED, "specversion": "2.0"}, "specversion"),
    ("structured-no-data", _CE, {**_STRUCTURED, "data": None}, "data"),
    ("structured-data-string", _CE, {**_STRUCTURED, "data": "{}"}, "data"),
    ("structured-no-bucket", _CE, {**_STRUCTURED, "data": _resource(bucket=None)}, "data.bucket"),
    ("structured-number", _CE, 42, "body"),
    ("batch-empty", _CE, [], "body"),
    ("batch-non-object", _CE, [_STRUCTURED, "x"], "[1]"),
    ("batch-no-source", _CE, [{**_STRUCTURED, "source": None}], "[0].source"),
    ("binary-no-id", {**_BINARY, "ce-id": ""}, _resource(), "ce-id"),
    ("binary-no-type", {**_BINARY, "ce-type": ""}, _resource(), "ce-type"),
    ("binary-no-name", _BINARY, _resource(name=None), "body.name"),
    ("binary-size-words", _BINARY, _resource(size="many"), "body.size"),
    ("binary-not-json", _BINARY, b"{oops", "body"),
    ("binary-empty", _BINARY, b"", "body"),
    ("binary-array", _BINARY, [1], "body"),
]


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [pytest.param(h, b, f, id=name) for name, h, b, f in HOSTILE_CLOUDEVENTS],
)
def test_hostile_cloudevent_names_the_field(headers: dict[str, str], body: Any, field: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(_drop_none(body)).encode()
    with pytest.raises(PayloadError) as caught:
        receive_with_token(post(raw, headers, {"token": SECRET}))
    assert field in caught.value.fields


def _drop_none(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: v for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_drop_none(item) for item in doc]
    return doc
