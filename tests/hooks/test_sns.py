"""SNS envelopes: shape, signatures, certificate URLs, freshness, topics and handshakes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.sources import Source
from relay.errors import PayloadError, SignatureError, UpstreamError
from relay.hooks import sns
from relay.hooks.base import Delivery, Handshake, Notice
from tests.hooks.awsfakes import (
    CERT_URL,
    NOW,
    FakeHttpGet,
    iso_time,
    load_fixture,
    make_context,
    make_request,
    make_test_cert,
    real_headers,
    self_signed_pem,
    sign_sns,
)

TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"
OTHER_TOPIC = "arn:aws:sns:us-west-2:999999999999:Intruder"
SUBSCRIBE_URL = load_fixture("sns_subscription_confirmation.json")["SubscribeURL"]
HEADERS = load_fixture("sns_http_headers.json")
SNS_FIXTURES = [
    "sns_notification_s3.json",
    "sns_notification_s3_test_event.json",
    "sns_subscription_confirmation.json",
    "sns_unsubscribe_confirmation.json",
]

Signer = tuple[rsa.RSAPrivateKey, bytes]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_test_cert()


@pytest.fixture(scope="module")
def stranger() -> Signer:
    return make_test_cert()


@pytest.fixture
def http(signer: Signer) -> FakeHttpGet:
    return FakeHttpGet({CERT_URL: signer[1], SUBSCRIBE_URL: b"<ConfirmSubscriptionResponse/>"})


def make_source(**changes: Any) -> Source:
    return Source(name="bucket", type="s3", **{"topic_arns": (TOPIC,), **changes})


def fresh(name: str, **changes: Any) -> dict[str, Any]:
    """A fixture envelope with a Timestamp ten seconds before the test clock."""
    return {**load_fixture(name), "Timestamp": iso_time(NOW - 10), **changes}


def signed(signer: Signer, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
    return sign_sns(message, signer[0], CERT_URL, version)


def headers_for(envelope: dict[str, Any]) -> dict[str, str]:
    return real_headers(HEADERS.get(envelope["Type"], {"x-amz-sns-message-type": envelope["Type"]}))


def no_notices(message: str, message_id: str) -> list[Notice]:
    raise AssertionError("on_message must not be called for a control message")


# --- the canonical string to sign -------------------------------------------------------------

BASE = {"Message": "hi\nthere", "MessageId": "m-1", "Timestamp": "t", "TopicArn": "arn:t"}


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        pytest.param(
            {
                **BASE,
                "Type": "Notification",
                "Subject": "S",
                "UnsubscribeURL": "u",
                "Signature": "x",
            },
            "Message\nhi\nthere\nMessageId\nm-1\nSubject\nS\nTimestamp\nt\nTopicArn\narn:t\n"
            "Type\nNotification\n",
            id="notification-with-subject",
        ),
        pytest.param(
            {**BASE, "Type": "Notification"},
            "Message\nhi\nthere\nMessageId\nm-1\nTimestamp\nt\nTopicArn\narn:t\nType\nNotification\n",
            id="notification-without-subject",
        ),
        pytest.param(
            {**BASE, "Type": "SubscriptionConfirmation", "SubscribeURL": "s", "Token": "k"},
            "Message\nhi\nthere\nMessageId\nm-1\nSubscribeURL\ns\nTimestamp\nt\nToken\nk\n"
            "TopicArn\narn:t\nType\nSubscriptionConfirmation\n",
            id="subscription-confirmation",
        ),
        pytest.param(
            {**BASE, "Type": "UnsubscribeConfirmation", "SubscribeURL": "s", "Token": "k"},
            "Message\nhi\nthere\nMessageId\nm-1\nSubscribeURL\ns\nTimestamp\nt\nToken\nk\n"
            "TopicArn\narn:t\nType\nUnsubscribeConfirmation\n",
            id="unsubscribe-confirmation",
        ),
    ],
)
def test_string_to_sign_follows_the_documented_order(envelope: dict, expected: str) -> None:
    assert sns.string_to_sign(envelope) == expected.encode()


# --- certificate and confirmation URLs -------------------------------------------------------

GOOD_CERT_URLS = [
    CERT_URL,
    "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
]
BAD_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-abc.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://s3.us-east-1.amazonaws.com/bucket/SimpleNotificationService-abc.pem",
    "https://sns.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://evilsns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=.pem",
    "https://sns.us-east-1.amazonaws.com/cert.pem#frag",
    "https://sns.us-east-1.amazonaws\n.com/SimpleNotificationService-abc.pem",
    "https://SNS.US-EAST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem",
    "",
    None,
]


@pytest.mark.parametrize("url", GOOD_CERT_URLS)
def test_cert_url_on_an_sns_endpoint_is_allowed(url: str) -> None:
    assert sns.is_cert_url_allowed(url)


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_cert_url_elsewhere_is_refused_without_fetching(
    url: str | None, signer: Signer, http: FakeHttpGet
) -> None:
    envelope = sign_sns(fresh("sns_notification_s3.json"), signer[0], url)  # type: ignore[arg-type]
    assert not sns.is_cert_url_allowed(url)
    with pytest.raises(SignatureError, match="SigningCertURL"):
        sns.verify(envelope, make_source(), make_context(http))
    assert http.calls == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        (SUBSCRIBE_URL, True),
        ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC, True),
        (SUBSCRIBE_URL.replace("https://", "http://"), False),
        (SUBSCRIBE_URL.replace("amazonaws.com/", "amazonaws.com.evil.com/"), False),
        (SUBSCRIBE_URL.replace("amazonaws.com/", "amazonaws.com:8443/"), False),
        (SUBSCRIBE_URL.replace("https://", "https://me@"), False),
        (SUBSCRIBE_URL.replace("ConfirmSubscription", "Unsubscribe"), False),
        (SUBSCRIBE_URL.replace(TOPIC, OTHER_TOPIC), False),
        (SUBSCRIBE_URL.replace("amazonaws.com/", "amazonaws.com/x/"), False),
        (SUBSCRIBE_URL + f"&TopicArn={OTHER_TOPIC}", False),
        (SUBSCRIBE_URL.replace("?", "\t?"), False),
    ],
)
def test_confirm_url_must_be_sns_confirming_this_topic(url: str, allowed: bool) -> None:
    assert sns.is_confirm_url_allowed(url, TOPIC) is allowed


# --- envelope shape --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SNS_FIXTURES)
def test_every_sns_fixture_has_a_valid_shape(name: str) -> None:
    doc = load_fixture(name)
    request = make_request(doc, headers_for(doc))
    assert sns.is_sns_envelope(doc)
    assert sns.parse_envelope(request.body, request) == doc


def _without(name: str, field: str) -> dict[str, Any]:
    doc = load_fixture(name)
    del doc[field]
    return doc


@pytest.mark.parametrize(
    ("doc", "headers", "field", "problem"),
    [
        ({"Message": "x"}, {}, "Type", "missing"),
        ({"Type": "Notify"}, {}, "Type", "must be one of"),
        ({"Type": ["Notification"]}, {}, "Type", "must be one of"),
        (
            load_fixture("sns_notification_s3.json"),
            {"x-amz-sns-message-type": "SubscriptionConfirmation"},
            "x-amz-sns-message-type",
            "says 'SubscriptionConfirmation'",
        ),
        (_without("sns_notification_s3.json", "Message"), {}, "Message", "missing"),
        (_without("sns_notification_s3.json", "MessageId"), {}, "MessageId", "missing"),
        (_without("sns_notification_s3.json", "TopicArn"), {}, "TopicArn", "missing"),
        (_without("sns_notification_s3.json", "Timestamp"), {}, "Timestamp", "missing"),
        (_without("sns_subscription_confirmation.json", "Token"), {}, "Token", "missing"),
        (
            _without("sns_subscription_confirmation.json", "SubscribeURL"),
            {},
            "SubscribeURL",
            "missing",
        ),
        (
            _without("sns_unsubscribe_confirmation.json", "SubscribeURL"),
            {},
            "SubscribeURL",
            "missing",
        ),
        (fresh("sns_notification_s3.json", Message={"Records": []}), {}, "Message", "a string"),
        (fresh("sns_notification_s3.json", MessageId=12), {}, "MessageId", "a string"),
        (fresh("sns_notification_s3.json", Subject=1e400), {}, "Subject", "a string"),
        (fresh("sns_notification_s3.json", SignatureVersion=2), {}, "SignatureVersion", "string"),
        (fresh("sns_notification_s3.json", Timestamp="yesterday"), {}, "Timestamp", "ISO 8601"),
        (
            fresh("sns_notification_s3.json", Timestamp="2012-05-02T00:54:06"),
            {},
            "Timestamp",
            "zone",
        ),
    ],
)
def test_malformed_envelope_names_the_field(
    doc: dict, headers: dict, field: str, problem: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        sns.check_envelope(doc, make_request(doc, headers))
    assert problem in caught.value.fields[field][0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"", "empty"), (b"   ", "empty"), (b"{", "invalid JSON"), (b"\x80{}", "not UTF-8")]
    + [(b"[]", "not an object"), (b'"Notification"', "not an object"), (b"1e999", "not an object")],
)
def test_hostile_body_is_a_payload_error(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        sns.parse_envelope(body, make_request(body))
    assert caught.value.fields == {"body": [problem]}


@pytest.mark.parametrize(
    ("doc", "is_envelope"),
    [
        (load_fixture("sns_notification_s3.json"), True),
        (load_fixture("s3_put.json"), False),
        (load_fixture("s3_test_event.json"), False),
        (load_fixture("sagemaker_async_success.json"), False),
        (load_fixture("eventbridge_s3_object_created.json"), False),
        ({"Type": "Something else", "TopicArn": TOPIC}, False),
        ([], False),
    ],
)
def test_envelope_is_told_from_a_raw_message(doc: Any, is_envelope: bool) -> None:
    assert sns.is_sns_envelope(doc) is is_envelope


# --- signatures, freshness and topics --------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("name", SNS_FIXTURES)
def test_signed_message_verifies(
    name: str, version: str, signer: Signer, http: FakeHttpGet
) -> None:
    sns.verify(signed(signer, fresh(name), version), make_source(), make_context(http))


def _claim_version(version: str) -> Callable[[dict], dict]:
    return lambda envelope: {**envelope, "SignatureVersion": version}


def _drop(field: str) -> Callable[[dict], dict]:
    return lambda envelope: {k: v for k, v in envelope.items() if k != field}


def _set(**changes: Any) -> Callable[[dict], dict]:
    return lambda envelope: {**envelope, **changes}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(_set(Message='{"Records": []}'), "does not match", id="message-changed"),
        pytest.param(_set(MessageId="other"), "does not match", id="message-id-changed"),
        pytest.param(_drop("Subject"), "does not match", id="subject-removed"),
        pytest.param(_set(Subject="Other"), "does not match", id="subject-changed"),
        pytest.param(_set(Subject="\ud800"), "does not match", id="subject-lone-surrogate"),
        pytest.param(
            _set(Type="SubscriptionConfirmation", SubscribeURL="x", Token="y"),
            "does not match",
            id="type-changed",
        ),
        pytest.param(_claim_version("1"), "does not match", id="version-downgraded"),
        pytest.param(_claim_version("3"), "unsupported SNS SignatureVersion '3'", id="version-3"),
        pytest.param(_drop("SignatureVersion"), "unsupported", id="version-missing"),
        pytest.param(_drop("Signature"), "no Signature", id="signature-missing"),
        pytest.param(_set(Signature="not base64!"), "not base64", id="signature-garbled"),
        pytest.param(_set(Signature="AAAA"), "does not match", id="signature-short"),
        pytest.param(_drop("SigningCertURL"), "SigningCertURL", id="cert-url-missing"),
    ],
)
def test_tampered_message_is_refused(
    tamper: Callable[[dict], dict], reason: str, signer: Signer, http: FakeHttpGet
) -> None:
    envelope = tamper(signed(signer, fresh("sns_notification_s3.json")))
    with pytest.raises(SignatureError, match=reason):
        sns.verify(envelope, make_source(), make_context(http))


def test_message_signed_by_another_key_is_refused(stranger: Signer, http: FakeHttpGet) -> None:
    envelope = signed(stranger, fresh("sns_notification_s3.json"))
    with pytest.raises(SignatureError, match="does not match"):
        sns.verify(envelope, make_source(), make_context(http))


@pytest.mark.parametrize(
    ("sent_at", "accepted"),
    [
        (NOW, True),
        (NOW - sns.MAX_MESSAGE_AGE + 1, True),
        (NOW - sns.MAX_MESSAGE_AGE - 1, False),
        (NOW - 86400 * 365 * 11, False),
        (NOW + sns.MAX_CLOCK_SKEW - 1, True),
        (NOW + sns.MAX_CLOCK_SKEW + 1, False),
    ],
)
def test_stale_or_future_message_is_refused(
    sent_at: float, accepted: bool, signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(signer, fresh("sns_notification_s3.json", Timestamp=iso_time(sent_at)))
    if accepted:
        sns.verify(envelope, make_source(), make_context(http))
    else:
        with pytest.raises(SignatureError, match="refused"):
            sns.verify(envelope, make_source(), make_context(http))


@pytest.mark.parametrize(
    ("topic_arns", "accepted"),
    [((TOPIC,), True), ((OTHER_TOPIC, TOPIC), True), ((OTHER_TOPIC,), False), ((), True)],
)
def test_topic_allowlist(
    topic_arns: tuple[str, ...], accepted: bool, signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(signer, fresh("sns_notification_s3.json"))
    source = make_source(topic_arns=topic_arns)
    if accepted:
        sns.verify(envelope, source, make_context(http))
    else:
        with pytest.raises(SignatureError, match=f"topic {TOPIC} is not in"):
            sns.verify(envelope, source, make_context(http))


def test_certificate_is_fetched_once_per_url(signer: Signer, http: FakeHttpGet) -> None:
    ctx = make_context(http)
    for name in ("sns_notification_s3.json", "sns_notification_s3_test_event.json"):
        sns.verify(signed(signer, fresh(name)), make_source(), ctx)
    assert http.calls == [CERT_URL]
    assert CERT_URL in ctx.cache


@pytest.mark.parametrize(
    ("responses", "reason"),
    [({}, "could not fetch"), ({CERT_URL: b"<html>oops</html>"}, "did not return a PEM")],
)
def test_unfetchable_certificate_asks_sns_to_retry(
    responses: dict[str, bytes], reason: str, signer: Signer
) -> None:
    ctx = make_context(FakeHttpGet(responses))
    with pytest.raises(UpstreamError, match=reason) as caught:
        sns.verify(signed(signer, fresh("sns_notification_s3.json")), make_source(), ctx)
    assert caught.value.status_code == 502
    assert ctx.cache == {}


def test_certificate_without_an_rsa_key_is_refused(signer: Signer) -> None:
    pem = self_signed_pem(ec.generate_private_key(ec.SECP256R1()))
    ctx = make_context(FakeHttpGet({CERT_URL: pem}))
    with pytest.raises(SignatureError, match="RSA"):
        sns.verify(signed(signer, fresh("sns_notification_s3.json")), make_source(), ctx)


@pytest.mark.parametrize("name", SNS_FIXTURES)
def test_unverified_source_skips_signature_time_and_topic(name: str) -> None:
    # The fixtures carry placeholder signatures, 2012 timestamps and a topic not on the list.
    source = make_source(verify=False, topic_arns=(OTHER_TOPIC,))
    http = FakeHttpGet()
    sns.verify(load_fixture(name), source, make_context(http))
    assert http.calls == []


# --- control messages ------------------------------------------------------------------------


def test_subscription_is_confirmed_by_fetching_subscribe_url(
    signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(signer, fresh("sns_subscription_confirmation.json"))
    request = make_request(envelope, headers_for(envelope))
    result = sns.receive_sns(request, make_source(), make_context(http), no_notices)
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, {"confirmed": TOPIC})
    assert http.calls == [CERT_URL, SUBSCRIBE_URL]


def test_subscription_to_a_topic_not_allowed_is_not_confirmed(
    signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(signer, fresh("sns_subscription_confirmation.json"))
    request = make_request(envelope, headers_for(envelope))
    with pytest.raises(SignatureError, match="topic"):
        sns.receive_sns(
            request, make_source(topic_arns=(OTHER_TOPIC,)), make_context(http), no_notices
        )
    assert SUBSCRIBE_URL not in http.calls


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://evil.example.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + OTHER_TOPIC,
        "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
    ],
)
def test_signed_confirmation_with_a_foreign_subscribe_url_is_not_fetched(
    subscribe_url: str, signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(
        signer, fresh("sns_subscription_confirmation.json", SubscribeURL=subscribe_url)
    )
    with pytest.raises(PayloadError) as caught:
        sns.receive_sns(make_request(envelope), make_source(), make_context(http), no_notices)
    assert "SubscribeURL" in caught.value.fields
    assert http.calls == [CERT_URL]


def test_failed_confirmation_asks_sns_to_retry_without_leaking_the_token(
    signer: Signer, http: FakeHttpGet
) -> None:
    del http.responses[SUBSCRIBE_URL]
    envelope = signed(signer, fresh("sns_subscription_confirmation.json"))
    with pytest.raises(UpstreamError) as caught:
        sns.receive_sns(make_request(envelope), make_source(), make_context(http), no_notices)
    assert caught.value.status_code == 502
    assert envelope["Token"] not in caught.value.message
    assert http.calls == [CERT_URL, SUBSCRIBE_URL]


def test_unsubscribe_is_acknowledged_not_undone(signer: Signer, http: FakeHttpGet) -> None:
    envelope = signed(signer, fresh("sns_unsubscribe_confirmation.json"))
    request = make_request(envelope, headers_for(envelope))
    result = sns.receive_sns(request, make_source(), make_context(http), no_notices)
    assert isinstance(result, Handshake)
    assert (result.status, result.body) == (200, {"unsubscribed": TOPIC})
    assert "not re-subscribing" in result.note
    assert http.calls == [CERT_URL]


@pytest.mark.parametrize(
    ("subscribe_url", "fetched"),
    [
        ("http://localhost.localstack.cloud:4566/?Action=ConfirmSubscription&Token=t", True),
        ("http://127.0.0.1:5000/moto-api/?Action=ConfirmSubscription", True),
        ("file:///etc/passwd", False),
        ("gopher://127.0.0.1:6379/_FLUSHALL", False),
    ],
)
def test_unverified_source_confirms_through_an_emulator(subscribe_url: str, fetched: bool) -> None:
    http = FakeHttpGet({subscribe_url: b"ok"})
    envelope = load_fixture("sns_subscription_confirmation.json") | {"SubscribeURL": subscribe_url}
    source = make_source(verify=False)
    if fetched:
        result = sns.receive_sns(make_request(envelope), source, make_context(http), no_notices)
        assert isinstance(result, Handshake)
        assert http.calls == [subscribe_url]
    else:
        with pytest.raises(PayloadError):
            sns.receive_sns(make_request(envelope), source, make_context(http), no_notices)
        assert http.calls == []


# --- notifications ---------------------------------------------------------------------------


class RecordingParser:
    """An on_message that remembers what it was given and returns one fixed notice."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, message: str, message_id: str) -> list[Notice]:
        self.calls.append((message, message_id))
        return [Notice(message_id=message_id, ignored="recorded")]


def test_notification_hands_the_inner_message_to_the_parser(
    signer: Signer, http: FakeHttpGet
) -> None:
    envelope = signed(signer, fresh("sns_notification_s3.json"))
    parser = RecordingParser()
    request = make_request(envelope, headers_for(envelope))
    result = sns.receive_sns(request, make_source(), make_context(http), parser)
    assert result == Delivery([Notice(message_id=envelope["MessageId"], ignored="recorded")])
    assert parser.calls == [(envelope["Message"], envelope["MessageId"])]


@pytest.mark.parametrize("name", ["sagemaker_async_success.json", "sagemaker_async_error.json"])
def test_sagemaker_result_reaches_the_parser_unchanged(
    name: str, signer: Signer, http: FakeHttpGet
) -> None:
    result_doc = load_fixture(name)
    topic = "arn:aws:sns:us-east-1:123456789012:AsyncInferenceResults"
    # SageMaker sets no Subject, so none is signed.
    envelope = signed(
        signer,
        {
            "Type": "Notification",
            "MessageId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "TopicArn": topic,
            "Message": json.dumps(result_doc),
            "Timestamp": iso_time(NOW - 1),
        },
    )
    parser = RecordingParser()
    request = make_request(envelope, {"x-amz-sns-message-type": "Notification"})
    sns.receive_sns(request, make_source(topic_arns=(topic,)), make_context(http), parser)
    [(message, message_id)] = parser.calls
    assert json.loads(message) == result_doc
    assert message_id == envelope["MessageId"]
