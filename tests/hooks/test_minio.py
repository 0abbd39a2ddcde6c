"""MinIO deliveries: the reachability probe, tokens, key decoding, event kinds, hostile bodies."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError, SignatureError
from relay.hooks import minio
from relay.hooks.base import Delivery, Handshake, HookContext, InboundRequest, Notice, StorageObject
from tests.hooks.inbound import inbound

FIXTURES = Path(__file__).parents[1] / "fixtures"
SECRET = "minio-auth-token"
ROTATED = "minio-next-token"
SPACED = "Token with spaces"  # MinIO sends a token containing a space verbatim
SOURCE = Source(name="minio", type="minio", secrets=(SECRET, ROTATED))
CTX = HookContext(http_get=lambda url: b"")
PUT = "s3:ObjectCreated:Put"

MYPHOTO = StorageObject(
    provider="minio",
    bucket="images",
    key="myphoto.jpg",
    size=6474,
    etag="430f89010c77aa34fc8760696da62d08-1",
    version="1",
    event_time="2019-09-10T17:41:54Z",
    content_type="image/jpeg",
    event_name=PUT,
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def request(
    body: Any, headers: dict[str, str] | None = None, method: str = "POST", **args: str
) -> InboundRequest:
    return inbound(body, headers=headers, args=args, method=method)


def signed(body: Any, token: str = SECRET) -> InboundRequest:
    """A request with the headers MinIO sends (minio_http_headers.json) for `token`."""
    headers = {
        name.lower(): value.replace("<auth_token>", token)
        for name, value in load("minio_http_headers.json").items()
        if not name.startswith("_")
    }
    return request(body, headers)


def notices(body: Any) -> list[Notice]:
    result = minio.receive(SOURCE, signed(body), CTX)
    assert isinstance(result, Delivery)
    return result.notices


def put(event_name: str = PUT, record: dict[str, Any] | None = None, **obj: Any) -> dict[str, Any]:
    """The fixture's notification with the record's fields and its object's fields changed."""
    doc = load("minio_put.json")
    doc["Records"][0].update({"eventName": event_name, **(record or {})})
    s3_object = doc["Records"][0]["s3"]["object"]
    s3_object.update(obj)
    doc["Records"][0]["s3"]["object"] = {k: v for k, v in s3_object.items() if v is not None}
    return doc


# --- the fixture --------------------------------------------------------------------------------


def test_put_fixture() -> None:
    assert notices(load("minio_put.json")) == [
        Notice(message_id=None, object=MYPHOTO, event_name=PUT)
    ]


# --- keys and versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("images%2Fred+flower+%281%29%2Bv2.jpg", "images/red flower (1)+v2.jpg"),
        ("photos%2F%E6%97%A5%E6%9C%AC.png", "photos/日本.png"),
        ("100%25+done.jpg", "100% done.jpg"),
        ("%2Fleading-slash.jpg", "/leading-slash.jpg"),
        ("plain.jpg", "plain.jpg"),
    ],
)
def test_key_is_query_unescaped(raw: str, key: str) -> None:
    (notice,) = notices(put(key=raw))
    assert notice.object is not None
    assert notice.object.key == key


@pytest.mark.parametrize(
    ("version_id", "version"),
    [
        ("3f1a-version", "3f1a-version"),
        ("null", "15C32494527B46C5"),
        ("", "15C32494527B46C5"),
        (None, "15C32494527B46C5"),
    ],
)
def test_version_is_version_id_else_sequencer(version_id: str | None, version: str) -> None:
    (notice,) = notices(put(versionId=version_id))
    assert notice.object is not None
    assert notice.object.version == version


def test_remove_event_fields_may_be_absent() -> None:
    (notice,) = notices(put(size=None, eTag=None, contentType=None, userMetadata=None))
    assert notice.object == replace(MYPHOTO, size=None, etag=None, content_type=None)


# --- event kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_name",
    [
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
    ],
)
def test_object_created_events_are_imported(event_name: str) -> None:
    (notice,) = notices(put(event_name))
    assert notice.object is not None
    assert notice.event_name == event_name


@pytest.mark.parametrize(
    ("event_name", "reason"),
    [
        ("s3:ObjectRemoved:Delete", "object removed"),
        ("s3:ObjectRemoved:DeleteMarkerCreated", "object removed"),
        ("s3:ObjectAccessed:Get", "object read"),
        ("s3:ObjectCreated:PutTagging", "PutTagging changes metadata only"),
        ("s3:ObjectCreated:PutRetention", "PutRetention changes metadata only"),
        ("s3:ObjectCreated:PutLegalHold", "PutLegalHold changes metadata only"),
        ("s3:ObjectCreated:DeleteTagging", "DeleteTagging changes metadata only"),
        (
            "s3:Replication:OperationCompletedReplication",
            "event s3:Replication:OperationCompletedReplication is not an object creation",
        ),
    ],
)
def test_other_events_are_ignored_without_reading_them(event_name: str, reason: str) -> None:
    doc = {"EventName": event_name, "Records": [{"eventName": event_name}]}
    assert notices(doc) == [Notice(message_id=None, ignored=reason, event_name=event_name)]


# --- the probe, tokens and methods --------------------------------------------------------------


@pytest.mark.parametrize("method", ["HEAD", "GET"])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"authorization": f"Bearer {SECRET}"}, id="token"),
        pytest.param({"authorization": "Bearer wrong"}, id="wrong-token"),
    ],
)
def test_reachability_probe_is_answered_without_a_token(
    method: str, headers: dict[str, str]
) -> None:
    result = minio.receive(SOURCE, request(b"", headers, method=method), CTX)
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, None)


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE"])
def test_other_methods_are_refused(method: str) -> None:
    with pytest.raises(MethodNotAllowedError):
        minio.receive(SOURCE, request(b"", method=method), CTX)


@pytest.mark.parametrize(
    ("source", "req"),
    [
        pytest.param(SOURCE, signed(load("minio_put.json")), id="bearer"),
        pytest.param(SOURCE, signed(load("minio_put.json"), ROTATED), id="rotated-secret"),
        pytest.param(
            Source(name="m", type="minio", secrets=(SPACED,)),
            request(load("minio_put.json"), {"authorization": SPACED}),
            id="verbatim-token-with-space",
        ),
        pytest.param(SOURCE, request(load("minio_put.json"), token=SECRET), id="query"),
    ],
)
def test_token_is_accepted(source: Source, req: InboundRequest) -> None:
    result = minio.receive(source, req, CTX)
    assert isinstance(result, Delivery)
    assert result.notices[0].object == MYPHOTO


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        pytest.param(request(load("minio_put.json")), "missing token", id="missing"),
        pytest.param(signed(load("minio_put.json"), "guess"), "does not match", id="wrong"),
        pytest.param(
            request(load("minio_put.json"), {"authorization": f"Basic {SECRET}"}),
            "does not match",
            id="other-scheme",
        ),
    ],
)
def test_wrong_or_missing_token_is_refused(req: InboundRequest, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        minio.receive(SOURCE, req, CTX)


# --- hostile bodies -----------------------------------------------------------------------------


def _record(**fields: Any) -> dict[str, Any]:
    record = {**load("minio_put.json")["Records"][0], **fields}
    return {"Records": [{k: v for k, v in record.items() if v is not None}]}


def _s3(**fields: Any) -> dict[str, Any]:
    s3 = {**load("minio_put.json")["Records"][0]["s3"], **fields}
    return _record(s3={k: v for k, v in s3.items() if v is not None})


HOSTILE = [
    ("empty", b"", "body"),
    ("whitespace", b"  \n", "body"),
    ("not-json", b"EventName=put", "body"),
    ("not-utf8", b"\xff\xfe", "body"),
    ("array", [load("minio_put.json")], "body"),
    ("no-records", {"EventName": PUT, "Key": "images/a.jpg"}, "Records"),
    ("records-object", {"Records": {}}, "Records"),
    ("records-empty", {"Records": []}, "Records"),
    ("record-string", {"Records": ["x"]}, "Records[0]"),
    ("no-event-name", _record(eventName=None), "Records[0].eventName"),
    ("event-name-number", _record(eventName=1), "Records[0].eventName"),
    ("no-s3", _record(s3=None), "Records[0].s3"),
    ("s3-string", _record(s3="s3"), "Records[0].s3"),
    ("no-bucket", _s3(bucket=None), "Records[0].s3.bucket"),
    ("no-bucket-name", _s3(bucket={"arn": "x"}), "Records[0].s3.bucket.name"),
    ("no-object", _s3(object=None), "Records[0].s3.object"),
    ("no-key", put(key=None), "Records[0].s3.object.key"),
    ("empty-key", put(key=""), "Records[0].s3.object.key"),
    ("key-number", put(key=5), "Records[0].s3.object.key"),
    ("key-not-utf8", put(key="%FF.jpg"), "Records[0].s3.object.key"),
    ("size-string", put(size="6474"), "Records[0].s3.object.size"),
    ("size-negative", put(size=-1), "Records[0].s3.object.size"),
    ("size-huge", put(size=2**64), "Records[0].s3.object.size"),
    ("etag-number", put(eTag=1), "Records[0].s3.object.eTag"),
    ("event-time-number", put(record={"eventTime": 0}), "Records[0].eventTime"),
]


@pytest.mark.parametrize(
    ("body", "field"), [pytest.param(body, field, id=name) for name, body, field in HOSTILE]
)
def test_hostile_body_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        minio.receive(SOURCE, signed(body), CTX)
    assert field in caught.value.fields
