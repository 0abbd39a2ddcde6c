"""S3 notifications: direct, through SNS (signed or raw), and through EventBridge."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import s3
from relay.hooks.base import Delivery, Handshake, Notice, StorageObject
from relay.hooks.common import decode_form_key
from tests.hooks.awsfakes import (
    CERT_URL,
    NOW,
    FakeHttpGet,
    iso_time,
    load_fixture,
    make_context,
    make_request,
    real_headers,
    shared_test_cert,
    sign_sns,
)

SECRET = "first-secret-0123456789"
ROTATED = "second-secret-9876543210"
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"
TOKEN = {"x-relay-token": SECRET}
SNS_HEADERS = load_fixture("sns_http_headers.json")
SUBSCRIBE_URL = load_fixture("sns_subscription_confirmation.json")["SubscribeURL"]

HAPPY_FACE = StorageObject(
    provider="s3",
    bucket="mybucket",
    key="HappyFace.jpg",
    size=1024,
    etag="d41d8cd98f00b204e9800998ecf8427e",
    version="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    event_time="1970-01-01T00:00:00.000Z",
    event_name="ObjectCreated:Put",
)
EXAMPLE_KEY = StorageObject(
    provider="s3",
    bucket="DOC-EXAMPLE-BUCKET1",
    key="example-key",
    size=5,
    etag="b1946ac92492d2347c6235b4d2611184",
    version="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
    event_time="2021-11-12T00:00:00Z",
    event_name="Object Created",
)
EXAMPLE_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
TEST_EVENT_NOTICE = Notice(message_id=None, ignored="test event", event_name="s3:TestEvent")


def make_source(**changes: Any) -> Source:
    defaults = {"secrets": (SECRET, ROTATED), "topic_arns": (TOPIC,)}
    return Source(name="bucket", type="s3", **{**defaults, **changes})


def receive(body: Any, headers: dict[str, str] | None = None, **source: Any) -> Any:
    """Run s3.receive on one request, in a context that serves the test certificate."""
    http = FakeHttpGet({CERT_URL: shared_test_cert()[1], SUBSCRIBE_URL: b"ok"})
    return s3.receive(make_source(**source), make_request(body, headers), make_context(http))


def signed_envelope(name: str, **changes: Any) -> dict[str, Any]:
    """A fixture envelope, five seconds old, signed with the test certificate's key."""
    message = {**load_fixture(name), "Timestamp": iso_time(NOW - 5), **changes}
    return sign_sns(message, shared_test_cert()[0], CERT_URL)


def s3_record(event_name: str = "ObjectCreated:Put", **object_changes: Any) -> dict[str, Any]:
    """The documented Put record, with another event name or object fields (None deletes one)."""
    record = copy.deepcopy(load_fixture("s3_put.json")["Records"][0])
    record["eventName"] = event_name
    for name, value in object_changes.items():
        if value is None:
            record["s3"]["object"].pop(name)
        else:
            record["s3"]["object"][name] = value
    return record


def eventbridge_event(detail_type: str = "Object Created", **object_changes: Any) -> dict:
    """The documented EventBridge event, with another detail-type or object fields."""
    event = load_fixture("eventbridge_s3_object_created.json")
    event["detail-type"] = detail_type
    for name, value in object_changes.items():
        if value is None:
            event["detail"]["object"].pop(name)
        else:
            event["detail"]["object"][name] = value
    return event


# --- key decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("HappyFace.jpg", "HappyFace.jpg"),
        ("images/red+flower+%281%29%2Bv2.jpg", "images/red flower (1)+v2.jpg"),
        ("uploads/2024/red+flower+%281%29%2Bv2.jpg", "uploads/2024/red flower (1)+v2.jpg"),
        ("red+flower.jpg", "red flower.jpg"),
        ("time%3A12%3A00.png", "time:12:00.png"),
        ("100%25+done.png", "100% done.png"),
        ("%E2%9C%93+caf%C3%A9.jpg", "\u2713 caf\u00e9.jpg"),
        ("/leading/slash.jpg", "/leading/slash.jpg"),
        ("a%2Fb.jpg", "a/b.jpg"),
    ],
)
def test_decode_key(encoded: str, decoded: str) -> None:
    assert decode_form_key(encoded, "key") == decoded


# --- records and events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "notice"),
    [
        pytest.param(
            s3_record(), Notice("m-1", object=HAPPY_FACE, event_name="ObjectCreated:Put"), id="put"
        ),
        pytest.param(
            s3_record("ObjectCreated:CompleteMultipartUpload", eTag="abc-3", size=10**12),
            Notice(
                "m-1",
                object=replace(
                    HAPPY_FACE,
                    etag="abc-3",
                    size=10**12,
                    event_name="ObjectCreated:CompleteMultipartUpload",
                ),
                event_name="ObjectCreated:CompleteMultipartUpload",
            ),
            id="multipart",
        ),
        pytest.param(
            s3_record(key="images/red+flower+%281%29%2Bv2.jpg", versionId=None),
            Notice(
                "m-1",
                object=replace(
                    HAPPY_FACE, key="images/red flower (1)+v2.jpg", version="0055AED6DCD90281E5"
                ),
                event_name="ObjectCreated:Put",
            ),
            id="encoded-key-unversioned-bucket",
        ),
        pytest.param(
            s3_record("ObjectCreated:Copy", size=None, eTag=None, versionId=None, sequencer=None),
            Notice(
                "m-1",
                object=replace(
                    HAPPY_FACE, size=None, etag=None, version=None, event_name="ObjectCreated:Copy"
                ),
                event_name="ObjectCreated:Copy",
            ),
            id="only-bucket-and-key",
        ),
        pytest.param(
            s3_record("ObjectRemoved:Delete", size=None),
            Notice("m-1", ignored="object deleted", event_name="ObjectRemoved:Delete"),
            id="deleted",
        ),
        pytest.param(
            s3_record("ObjectRemoved:DeleteMarkerCreated", size=None),
            Notice("m-1", ignored="object deleted", event_name="ObjectRemoved:DeleteMarkerCreated"),
            id="delete-marker",
        ),
        pytest.param(
            s3_record("ObjectRestore:Completed"),
            Notice(
                "m-1",
                ignored="event ObjectRestore:Completed is not an object creation",
                event_name="ObjectRestore:Completed",
            ),
            id="restore",
        ),
    ],
)
def test_record_to_notice(record: dict, notice: Notice) -> None:
    assert s3.record_to_notice(record, "Records[0]", "m-1") == notice


@pytest.mark.parametrize(
    ("event", "notice"),
    [
        pytest.param(
            eventbridge_event(),
            Notice(EXAMPLE_EVENT_ID, object=EXAMPLE_KEY, event_name="Object Created"),
            id="created",
        ),
        pytest.param(
            eventbridge_event(key="photos/a+b c:d%2B.jpg"),
            Notice(
                EXAMPLE_EVENT_ID,
                object=replace(EXAMPLE_KEY, key="photos/a+b c:d%2B.jpg"),
                event_name="Object Created",
            ),
            id="key-is-not-decoded",
        ),
        pytest.param(
            eventbridge_event(**{"version-id": None}),
            Notice(
                EXAMPLE_EVENT_ID,
                object=replace(EXAMPLE_KEY, version="617f08299329d189"),
                event_name="Object Created",
            ),
            id="unversioned-bucket",
        ),
        pytest.param(
            eventbridge_event("Object Deleted", size=None),
            Notice(EXAMPLE_EVENT_ID, ignored="object deleted", event_name="Object Deleted"),
            id="deleted",
        ),
        pytest.param(
            eventbridge_event("Object Restore Completed"),
            Notice(
                EXAMPLE_EVENT_ID,
                ignored="event Object Restore Completed is not an object creation",
                event_name="Object Restore Completed",
            ),
            id="restore",
        ),
    ],
)
def test_eventbridge_to_notice(event: dict, notice: Notice) -> None:
    assert s3.eventbridge_to_notice(event) == notice


# --- every fixture, end to end ---------------------------------------------------------------


def test_direct_put_event() -> None:
    result = receive(load_fixture("s3_put.json"), TOKEN)
    assert result == Delivery([Notice(None, object=HAPPY_FACE, event_name="ObjectCreated:Put")])


def test_direct_test_event_is_acknowledged() -> None:
    assert receive(load_fixture("s3_test_event.json"), TOKEN) == Delivery([TEST_EVENT_NOTICE])


def test_sns_notification_of_a_put() -> None:
    envelope = signed_envelope("sns_notification_s3.json")
    result = receive(envelope, real_headers(SNS_HEADERS["Notification"]))
    expected = Notice(envelope["MessageId"], object=HAPPY_FACE, event_name="ObjectCreated:Put")
    assert result == Delivery([expected])


def test_sns_notification_of_the_test_event() -> None:
    envelope = signed_envelope("sns_notification_s3_test_event.json")
    result = receive(envelope, {"x-amz-sns-message-type": "Notification"})
    expected = Notice(envelope["MessageId"], ignored="test event", event_name="s3:TestEvent")
    assert result == Delivery([expected])


def test_sns_subscription_confirmation() -> None:
    envelope = signed_envelope("sns_subscription_confirmation.json")
    result = receive(envelope, real_headers(SNS_HEADERS["SubscriptionConfirmation"]))
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, {"confirmed": TOPIC})


def test_sns_unsubscribe_confirmation() -> None:
    envelope = signed_envelope("sns_unsubscribe_confirmation.json")
    result = receive(envelope, {"x-amz-sns-message-type": "UnsubscribeConfirmation"})
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, {"unsubscribed": TOPIC})


def test_sns_notification_needs_a_valid_signature_not_a_token() -> None:
    # The fixture's own Signature is a placeholder: a token does not make up for it.
    envelope = {
        **load_fixture("sns_notification_s3.json"),
        "Timestamp": iso_time(NOW),
        "SigningCertURL": CERT_URL,
    }
    with pytest.raises(SignatureError, match="does not match"):
        receive(envelope, {**real_headers(SNS_HEADERS["Notification"]), **TOKEN})


def test_sns_from_an_emulator_is_accepted_unsigned() -> None:
    envelope = load_fixture("sns_notification_s3.json")
    result = receive(envelope, real_headers(SNS_HEADERS["Notification"]), verify=False, secrets=())
    expected = Notice(envelope["MessageId"], object=HAPPY_FACE, event_name="ObjectCreated:Put")
    assert result == Delivery([expected])


def test_eventbridge_api_destination() -> None:
    headers = real_headers(load_fixture("eventbridge_api_destination_headers.json"))
    # The connection's API-key header is yours to name; the relay reads x-relay-token.
    del headers["x-api-key"]
    headers["x-relay-token"] = ROTATED
    result = receive(load_fixture("eventbridge_s3_object_created.json"), headers)
    expected = Notice(EXAMPLE_EVENT_ID, object=EXAMPLE_KEY, event_name="Object Created")
    assert result == Delivery([expected])


def test_sns_raw_message_delivery_is_keyed_by_the_header_message_id() -> None:
    headers = {
        **real_headers(SNS_HEADERS["Notification"]),
        **real_headers(SNS_HEADERS["RawMessageDelivery_Notification_extra"]),
        **TOKEN,
    }
    result = receive(load_fixture("s3_put.json"), headers)
    expected = Notice(
        headers["x-amz-sns-message-id"], object=HAPPY_FACE, event_name="ObjectCreated:Put"
    )
    assert result == Delivery([expected])


def test_sns_raw_message_delivery_needs_a_token() -> None:
    headers = real_headers(SNS_HEADERS["Notification"])
    with pytest.raises(SignatureError, match="missing token"):
        receive(load_fixture("s3_put.json"), headers)


def test_records_sharing_one_message_get_their_own_ids() -> None:
    first = s3_record(key="a.jpg")
    second = s3_record(key="b.jpg")
    message = json.dumps({"Records": [first, second]})
    envelope = signed_envelope("sns_notification_s3.json", Message=message)
    result = receive(envelope)
    ids = [notice.message_id for notice in result.notices]
    keys = [notice.object.key for notice in result.notices]
    assert ids == [f"{envelope['MessageId']}#0", f"{envelope['MessageId']}#1"]
    assert keys == ["a.jpg", "b.jpg"]


# --- authentication of unsigned deliveries ---------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "args", "reason"),
    [
        pytest.param(TOKEN, {}, None, id="first-secret-header"),
        pytest.param({"Authorization": f"Bearer {ROTATED}"}, {}, None, id="rotated-secret-bearer"),
        pytest.param({}, {"token": SECRET}, None, id="query-token"),
        pytest.param(_basic("eventbridge", ROTATED), {}, None, id="basic-auth"),
        pytest.param(_basic("x", f"{SECRET}:extra"), {}, "does not match", id="basic-colon-in-pw"),
        pytest.param({}, {}, "missing token", id="no-token"),
        pytest.param({"x-relay-token": "guess"}, {}, "does not match", id="wrong-token"),
        pytest.param({"x-relay-token": SECRET[:-1]}, {}, "does not match", id="prefix-of-secret"),
        pytest.param(_basic("eventbridge", "guess"), {}, "does not match", id="basic-wrong"),
        pytest.param(_basic(SECRET, ""), {}, "does not match", id="secret-as-basic-user"),
        pytest.param({"Authorization": "Basic !!!"}, {}, "does not match", id="basic-garbled"),
        pytest.param({"x-api-key": SECRET}, {}, "missing token", id="unread-header-name"),
    ],
)
@pytest.mark.parametrize(
    "fixture", ["s3_put.json", "s3_test_event.json", "eventbridge_s3_object_created.json"]
)
def test_unsigned_delivery_needs_a_secret(
    fixture: str, headers: dict, args: dict, reason: str | None
) -> None:
    request = make_request(load_fixture(fixture), headers, args)
    ctx = make_context(FakeHttpGet())
    if reason is None:
        assert isinstance(s3.receive(make_source(), request, ctx), Delivery)
    else:
        with pytest.raises(SignatureError, match=reason):
            s3.receive(make_source(), request, ctx)


@pytest.mark.parametrize(
    ("source", "headers", "reason"),
    [
        pytest.param({"secrets": ()}, TOKEN, "only signed SNS", id="verified-without-secrets"),
        pytest.param({"secrets": (), "verify": False}, {}, None, id="emulator-without-secrets"),
        pytest.param({"verify": False}, {}, "missing token", id="emulator-with-secrets"),
        pytest.param({"verify": False}, TOKEN, None, id="emulator-with-token"),
    ],
)
def test_source_settings_decide_whether_a_token_is_needed(
    source: dict, headers: dict, reason: str | None
) -> None:
    if reason is None:
        assert isinstance(receive(load_fixture("s3_put.json"), headers, **source), Delivery)
    else:
        with pytest.raises(SignatureError, match=reason):
            receive(load_fixture("s3_put.json"), headers, **source)


# --- hostile bodies --------------------------------------------------------------------------


def _records(*records: Any) -> dict[str, Any]:
    return {"Records": list(records)}


def _bucketless() -> dict[str, Any]:
    record = s3_record()
    del record["s3"]["bucket"]["name"]
    return _records(record)


def _eventbridge_without(*path: str) -> dict[str, Any]:
    event = eventbridge_event()
    parent = event
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    return event


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        pytest.param(b"", "body", "empty", id="empty-body"),
        pytest.param(b"{", "body", "invalid JSON", id="invalid-json"),
        pytest.param(b"[]", "body", "not an object", id="json-array"),
        pytest.param(b"null", "body", "not an object", id="json-null"),
        pytest.param({}, "Records", "missing", id="empty-object"),
        pytest.param({"Records": {}}, "Records", "must be a list", id="records-object"),
        pytest.param({"Records": "[]"}, "Records", "must be a list", id="records-string"),
        pytest.param({"Records": []}, "Records", "empty", id="records-empty"),
        pytest.param(_records("x"), "Records[0]", "must be an object", id="record-string"),
        pytest.param(_records(s3_record(), None), "Records[1]", "must be an object", id="second"),
        pytest.param(
            _records({**s3_record(), "eventSource": "minio:s3"}),
            "Records[0].eventSource",
            "must be 'aws:s3'",
            id="minio-record",
        ),
        pytest.param(
            _records({**s3_record(), "eventSource": None}),
            "Records[0].eventSource",
            "missing",
            id="no-event-source",
        ),
        pytest.param(
            _records({**s3_record(), "eventName": 7}),
            "Records[0].eventName",
            "must be a string",
            id="event-name-number",
        ),
        pytest.param(
            _records({**s3_record(), "s3": []}), "Records[0].s3", "must be an object", id="s3-list"
        ),
        pytest.param(_bucketless(), "Records[0].s3.bucket.name", "missing", id="no-bucket-name"),
        pytest.param(
            _records(s3_record(key=None)), "Records[0].s3.object.key", "missing", id="no-key"
        ),
        pytest.param(
            _records(s3_record(key="")), "Records[0].s3.object.key", "empty", id="empty-key"
        ),
        pytest.param(
            _records(s3_record(key=["a"])),
            "Records[0].s3.object.key",
            "must be a string",
            id="key-list",
        ),
        pytest.param(
            _records(s3_record(key="%FF.jpg")),
            "Records[0].s3.object.key",
            "UTF-8",
            id="key-not-utf8",
        ),
        pytest.param(
            _records(s3_record(size="1024")),
            "Records[0].s3.object.size",
            "must be an integer",
            id="size-string",
        ),
        pytest.param(
            _records(s3_record(size=True)),
            "Records[0].s3.object.size",
            "must be an integer",
            id="size-bool",
        ),
        pytest.param(
            _records(s3_record(size=1.5)),
            "Records[0].s3.object.size",
            "must be an integer",
            id="size-float",
        ),
        pytest.param(
            b'{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", '
            b'"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1e400}}}]}',
            "Records[0].s3.object.size",
            "must be an integer",
            id="size-infinite",
        ),
        pytest.param(
            _records(s3_record(size=10**30)),
            "Records[0].s3.object.size",
            "between 0 and",
            id="size-huge",
        ),
        pytest.param(
            _records(s3_record(size=-1)),
            "Records[0].s3.object.size",
            "between 0 and",
            id="size-negative",
        ),
        pytest.param(
            _records(s3_record(versionId=5)),
            "Records[0].s3.object.versionId",
            "must be a string",
            id="version-number",
        ),
        pytest.param(
            {**eventbridge_event(), "source": "aws.ec2"},
            "source",
            "must be 'aws.s3'",
            id="eventbridge-other-source",
        ),
        pytest.param(_eventbridge_without("id"), "id", "missing", id="eventbridge-no-id"),
        pytest.param(
            _eventbridge_without("detail"), "detail", "missing", id="eventbridge-no-detail"
        ),
        pytest.param(
            _eventbridge_without("detail", "object", "key"),
            "detail.object.key",
            "missing",
            id="eventbridge-no-key",
        ),
        pytest.param(
            eventbridge_event(size="5"),
            "detail.object.size",
            "must be an integer",
            id="eventbridge-size-string",
        ),
    ],
)
def test_hostile_direct_body_names_the_field(body: Any, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        receive(body, TOKEN)
    assert problem in caught.value.fields[field][0]


def test_number_with_thousands_of_digits_is_a_payload_error() -> None:
    body = b'{"Records": [{"s3": {"object": {"size": 1' + b"0" * 5000 + b"}}}]}"
    with pytest.raises(PayloadError):
        receive(body, TOKEN)


@pytest.mark.parametrize(
    ("message", "field", "problem"),
    [
        pytest.param("not json", "Message", "invalid JSON", id="message-not-json"),
        pytest.param("[1]", "Message", "not an object", id="message-array"),
        pytest.param("\ud800", "Message", "invalid JSON", id="message-lone-surrogate"),
        pytest.param(
            '{"Records": [{}]}',
            "Message.Records[0].eventSource",
            "missing",
            id="message-record-empty",
        ),
        pytest.param(
            json.dumps(_records(s3_record(size="1"))),
            "Message.Records[0].s3.object.size",
            "must be an integer",
            id="message-size-string",
        ),
    ],
)
def test_hostile_sns_message_names_the_field(message: str, field: str, problem: str) -> None:
    envelope = signed_envelope("sns_notification_s3.json", Message=message)
    with pytest.raises(PayloadError) as caught:
        receive(envelope)
    assert problem in caught.value.fields[field][0]


def test_control_header_without_an_envelope_is_a_broken_envelope() -> None:
    headers = {**real_headers(SNS_HEADERS["SubscriptionConfirmation"]), **TOKEN}
    with pytest.raises(PayloadError) as caught:
        receive(load_fixture("s3_put.json"), headers)
    assert caught.value.fields == {"Type": ["missing"]}
