"""Azure Event Grid deliveries: both schemas, both validation handshakes, tokens, hostile bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.sources import Source
from relay.errors import MethodNotAllowedError, PayloadError, SignatureError
from relay.hooks import azure
from relay.hooks.base import Delivery, Handshake, HookContext, InboundRequest, Notice, StorageObject
from tests.hooks.inbound import inbound

FIXTURES = Path(__file__).parents[1] / "fixtures"
SECRET = "azure-shared-secret"
ROTATED = "azure-next-secret"
SOURCE = Source(name="blobs", type="azure", secrets=(SECRET, ROTATED))
CTX = HookContext(http_get=lambda url: b"")
TOKEN = {"token": SECRET}
BATCH = {"content-type": "application/cloudevents-batch+json; charset=utf-8"}
SINGLE = {"content-type": "application/cloudevents+json; charset=utf-8"}

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
EVENT_ID = "831e1650-001e-001b-66ab-eeb76e069631"
NEW_FILE = StorageObject(
    provider="azure",
    bucket="my-storage-account/test-container",
    key="new-file.txt",
    size=524288,
    etag="0x8D4BCC2E4835CD0",
    version="00000000000004420000000000028963",
    event_time="2017-06-26T18:41:00.9584103Z",
    content_type="text/plain",
    url="https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
    event_name=BLOB_CREATED,
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def event_grid_headers(kind: str) -> dict[str, str]:
    return {
        header.lower(): value for header, value in load("eventgrid_http_headers.json")[kind].items()
    }


def request(
    body: Any,
    headers: dict[str, str] | None = None,
    args: dict[str, str] | None = None,
    method: str = "POST",
) -> InboundRequest:
    return inbound(body, headers=headers, args=TOKEN if args is None else args, method=method)


def notices(body: Any, headers: dict[str, str] | None = None) -> list[Notice]:
    result = azure.receive(SOURCE, request(body, headers), CTX)
    assert isinstance(result, Delivery)
    return result.notices


def blob_event(**changes: Any) -> dict[str, Any]:
    """The fixture's Event Grid event with fields changed (None removes one) and data merged."""
    event = load("eventgrid_blob_created.json")[0]
    event["data"].update(changes.pop("data", {}))
    return {k: v for k, v in {**event, **changes}.items() if v is not None}


def cloud_event(**changes: Any) -> dict[str, Any]:
    event = load("cloudevents_blob_created.json")[0]
    event["data"].update(changes.pop("data", {}))
    return {k: v for k, v in {**event, **changes}.items() if v is not None}


# --- the fixtures -------------------------------------------------------------------------------


def test_event_grid_blob_created_fixture() -> None:
    body = load("eventgrid_blob_created.json")
    assert notices(body, event_grid_headers("Notification")) == [
        Notice(message_id=EVENT_ID, object=NEW_FILE, event_name=BLOB_CREATED)
    ]


@pytest.mark.parametrize(
    ("headers", "pick"),
    [
        pytest.param(BATCH, lambda events: events, id="batch"),
        pytest.param(SINGLE, lambda events: events[0], id="single"),
        pytest.param({}, lambda events: events, id="batch-as-plain-json"),
    ],
)
def test_cloudevents_blob_created_fixture(headers: dict[str, str], pick: Any) -> None:
    body = pick(load("cloudevents_blob_created.json"))
    assert notices(body, headers) == [
        Notice(message_id=EVENT_ID, object=NEW_FILE, event_name=BLOB_CREATED)
    ]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(event_grid_headers("SubscriptionValidation"), id="with-header"),
        pytest.param({}, id="body-only"),
    ],
)
def test_subscription_validation_echoes_the_code(headers: dict[str, str]) -> None:
    result = azure.receive(SOURCE, request(load("eventgrid_validation.json"), headers), CTX)
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, load("eventgrid_validation_response.json"))


def test_options_handshake_grants_the_origin() -> None:
    fixture = load("cloudevents_options_handshake.json")
    headers = {"webhook-request-origin": "eventgrid.azure.net", "webhook-request-rate": "120"}
    result = azure.receive(SOURCE, request(b"", headers, method="OPTIONS"), CTX)
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (fixture["response_grant"]["status"], None)
    assert dict(result.headers) == fixture["response_grant"]["headers"]


# --- handshakes gone wrong ----------------------------------------------------------------------


def test_options_without_origin_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as caught:
        azure.receive(SOURCE, request(b"", method="OPTIONS"), CTX)
    assert "WebHook-Request-Origin" in caught.value.fields


@pytest.mark.parametrize(
    ("method", "body", "headers"),
    [
        pytest.param(
            "OPTIONS", b"", {"webhook-request-origin": "eventgrid.azure.net"}, id="options"
        ),
        pytest.param("POST", load("eventgrid_validation.json"), {}, id="validation-event"),
    ],
)
def test_handshakes_need_the_token(method: str, body: Any, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        azure.receive(SOURCE, request(body, headers, args={}, method=method), CTX)


def test_validation_header_with_other_events_is_a_payload_error() -> None:
    headers = event_grid_headers("SubscriptionValidation")
    with pytest.raises(PayloadError) as caught:
        notices([blob_event()], headers)
    assert "[0].eventType" in caught.value.fields


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({}, "[0].data.validationCode", id="no-code"),
        pytest.param({"validationCode": 42}, "[0].data.validationCode", id="code-number"),
        pytest.param("code", "[0].data", id="data-string"),
    ],
)
def test_validation_event_without_a_code_is_a_payload_error(data: Any, field: str) -> None:
    event = {**load("eventgrid_validation.json")[0], "data": data}
    with pytest.raises(PayloadError) as caught:
        azure.receive(SOURCE, request([event]), CTX)
    assert field in caught.value.fields


# --- blob identity ------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["event-grid", "cloudevents"])
@pytest.mark.parametrize(
    "blob",
    [
        "new-file.txt",
        "images/red flower (1)+v2.jpg",
        "deep/a/b/c/d.png",
        "100%25 done.jpg",
        "データ/画像.png",
        "trailing/slash/",
    ],
)
def test_blob_path_is_kept_raw(schema: str, blob: str) -> None:
    subject = f"/blobServices/default/containers/test-container/blobs/{blob}"
    if schema == "event-grid":
        (notice,) = notices([blob_event(subject=subject)])
    else:
        (notice,) = notices(cloud_event(subject=subject), SINGLE)
    assert notice.object is not None
    assert (notice.object.bucket, notice.object.key) == (NEW_FILE.bucket, blob)


def test_lower_case_topic_still_names_the_account() -> None:
    topic = "/subscriptions/x/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acct"
    (notice,) = notices([blob_event(topic=topic)])
    assert notice.object is not None
    assert notice.object.bucket == "acct/test-container"


def test_missing_optional_data_fields_are_none() -> None:
    data = {"api": "PutBlob", "eTag": None, "contentLength": None, "sequencer": None, "url": None}
    event = blob_event()
    event["data"] = {k: v for k, v in data.items() if v is not None}
    (notice,) = notices([event])
    assert notice.object is not None
    assert (notice.object.etag, notice.object.size, notice.object.version) == (None, None, None)


@pytest.mark.parametrize(
    ("api", "imported"),
    [
        ("PutBlob", True),
        ("PutBlockList", True),
        ("CopyBlob", True),
        ("FlushWithClose", True),
        ("SftpCommit", True),
        ("CreateFile", False),
        ("SftpCreate", False),
        (None, False),
    ],
)
def test_only_completed_writes_are_imported(api: str | None, imported: bool) -> None:
    event = blob_event()
    event["data"] = {k: v for k, v in {**event["data"], "api": api}.items() if v is not None}
    (notice,) = notices([event])
    assert (notice.object is not None) is imported
    if not imported:
        assert "incomplete write" in (notice.ignored or "")


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("Microsoft.Storage.BlobDeleted", "blob deleted"),
        ("Microsoft.Storage.BlobTierChanged", "blob tier changed"),
        ("Microsoft.EventGrid.SubscriptionDeletedEvent", "subscription deleted"),
        (
            "Microsoft.Storage.DirectoryCreated",
            "event Microsoft.Storage.DirectoryCreated is not a blob creation",
        ),
    ],
)
def test_other_events_are_ignored_without_reading_them(event_type: str, reason: str) -> None:
    event = {"id": "e-1", "eventType": event_type, "topic": "/subscriptions/x", "subject": ""}
    (notice,) = notices([event])
    assert notice == Notice(message_id="e-1", ignored=reason, event_name=event_type)


def test_batch_gives_one_notice_per_event() -> None:
    second_subject = "/blobServices/default/containers/test-container/blobs/second.txt"
    body = [blob_event(), blob_event(id="second", subject=second_subject), blob_event(id="gone")]
    body[2]["eventType"] = "Microsoft.Storage.BlobDeleted"
    result = notices(body)
    assert [(n.message_id, n.object.key if n.object else n.ignored) for n in result] == [
        (EVENT_ID, "new-file.txt"),
        ("second", "second.txt"),
        ("gone", "blob deleted"),
    ]


# --- tokens and methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "args"),
    [
        pytest.param({}, {"token": SECRET}, id="query"),
        pytest.param({}, {"token": ROTATED}, id="rotated-query"),
        pytest.param({"x-relay-token": SECRET}, {}, id="delivery-header"),
        pytest.param({"x-relay-token": ROTATED}, {}, id="rotated-header"),
        pytest.param({"authorization": f"Bearer {SECRET}"}, {}, id="bearer"),
    ],
)
def test_either_secret_is_accepted(headers: dict[str, str], args: dict[str, str]) -> None:
    result = azure.receive(SOURCE, request(load("eventgrid_blob_created.json"), headers, args), CTX)
    assert isinstance(result, Delivery)
    assert result.notices[0].object == NEW_FILE


@pytest.mark.parametrize(
    ("headers", "args", "reason"),
    [
        pytest.param({}, {}, "missing token", id="missing"),
        pytest.param({}, {"token": "guess"}, "does not match", id="wrong-query"),
        pytest.param({"x-relay-token": "guess"}, {}, "does not match", id="wrong-header"),
        pytest.param({}, {"token": SECRET.upper()}, "does not match", id="case-matters"),
    ],
)
def test_wrong_or_missing_secret_is_refused(
    headers: dict[str, str], args: dict[str, str], reason: str
) -> None:
    body = load("eventgrid_blob_created.json")
    with pytest.raises(SignatureError, match=reason):
        azure.receive(SOURCE, request(body, headers, args), CTX)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_other_methods_are_refused(method: str) -> None:
    with pytest.raises(MethodNotAllowedError):
        azure.receive(SOURCE, request(b"", method=method), CTX)


# --- hostile bodies -----------------------------------------------------------------------------

_NOT_A_BLOB = "/blobServices/default/containers/test-container"

HOSTILE = [
    ("empty", {}, b"", "body"),
    ("not-json", {}, b"<xml/>", "body"),
    ("object", {}, {"id": "x"}, "body"),
    ("string", {}, "events", "body"),
    ("empty-array", {}, [], "body"),
    ("not-an-event", {}, [1], "[0]"),
    ("no-id", {}, [blob_event(id=None)], "[0].id"),
    ("id-number", {}, [blob_event(id=7)], "[0].id"),
    ("no-event-type", {}, [blob_event(eventType=None)], "[0].eventType"),
    ("no-topic", {}, [blob_event(topic=None)], "[0].topic"),
    ("topic-not-storage", {}, [blob_event(topic="/subscriptions/x")], "[0].topic"),
    ("no-subject", {}, [blob_event(subject=None)], "[0].subject"),
    ("subject-list", {}, [blob_event(subject=["a"])], "[0].subject"),
    ("subject-container-only", {}, [blob_event(subject=_NOT_A_BLOB)], "[0].subject"),
    ("subject-empty-blob", {}, [blob_event(subject=f"{_NOT_A_BLOB}/blobs/")], "[0].subject"),
    ("no-data", {}, [blob_event() | {"data": None}], "[0].data"),
    ("data-list", {}, [blob_event() | {"data": []}], "[0].data"),
    ("api-number", {}, [blob_event(data={"api": 1})], "[0].data.api"),
    ("length-string", {}, [blob_event(data={"contentLength": "5"})], "[0].data.contentLength"),
    ("length-bool", {}, [blob_event(data={"contentLength": True})], "[0].data.contentLength"),
    ("length-negative", {}, [blob_event(data={"contentLength": -1})], "[0].data.contentLength"),
    ("url-number", {}, [blob_event(data={"url": 5})], "[0].data.url"),
    ("second-event-bad", {}, [blob_event(), blob_event(subject=None)], "[1].subject"),
    ("ce-no-subject", SINGLE, cloud_event(subject=None), "subject"),
    ("ce-source-not-storage", SINGLE, cloud_event(source="/subscriptions/x"), "source"),
    ("ce-no-specversion", SINGLE, cloud_event(specversion=None), "specversion"),
    ("ce-batch-no-id", BATCH, [cloud_event(), cloud_event(id=None)], "[1].id"),
    ("ce-batch-not-events", BATCH, ["a"], "[0]"),
    ("ce-data-string", SINGLE, cloud_event() | {"data": "x"}, "data"),
]


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [pytest.param(h, b, f, id=name) for name, h, b, f in HOSTILE],
)
def test_hostile_body_names_the_field(headers: dict[str, str], body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        azure.receive(SOURCE, request(body, headers), CTX)
    assert field in caught.value.fields
