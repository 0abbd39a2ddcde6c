"""SageMaker async inference notices through SNS: results, failures, inline bodies, bad notices."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import sagemaker
from relay.hooks.base import Delivery, DetectedObject, Handshake, Notice, Prediction, SampleRef
from tests.hooks.awsfakes import (
    CERT_URL,
    NOW,
    FakeHttpGet,
    iso_time,
    load_fixture,
    make_context,
    make_request,
    shared_test_cert,
    sign_sns,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:inference-results"
SNS_MESSAGE_ID = "9e2f5c4c-8e59-5a0c-9a54-3c1b2f0e7d11"
INFERENCE_ID = "11111111-2222-3333-4444-555555555555"
MESSAGE_ID = f"sagemaker:{INFERENCE_ID}"
SAMPLE = SampleRef(bucket="<bucket>", key="<input-directory>/input-data.csv")
ENDPOINT = "<example-endpoint>"
DETECTIONS = [{"label": "car", "score": 0.9, "bbox": [1, 2, 3, 4]}]
CAR = DetectedObject("car", "bbox", ((1.0, 2.0), (3.0, 4.0)), 0.9)


def envelope(message: dict[str, Any] | str, **changes: Any) -> dict[str, Any]:
    """An SNS Notification carrying `message` (no Subject: SageMaker sets none)."""
    return {
        "Type": "Notification",
        "MessageId": SNS_MESSAGE_ID,
        "TopicArn": TOPIC,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": iso_time(NOW - 5),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": CERT_URL,
        **changes,
    }


def receive(message: dict[str, Any] | str, **source: Any) -> Any:
    """Run sagemaker.receive on an unsigned envelope, from a source that skips SNS checks."""
    options = {"verify": False, **source}
    return sagemaker.receive(
        Source(name="sm", type="sagemaker", **options),
        make_request(envelope(message)),
        make_context(FakeHttpGet()),
    )


def notice(doc: dict[str, Any]) -> Notice:
    (only,) = receive(doc).notices
    return only


def success(**changes: Any) -> dict[str, Any]:
    return {**load_fixture("sagemaker_async_success.json"), **changes}


def error(**changes: Any) -> dict[str, Any]:
    return {**load_fixture("sagemaker_async_error.json"), **changes}


def with_request(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**doc, "requestParameters": {**doc["requestParameters"], **changes}}


def inline(content: Any) -> dict[str, Any]:
    return {k: v for k, v in success(responseBody=content).items() if k != "responseParameters"}


def b64(doc: Any) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_completed_points_the_worker_at_the_output() -> None:
    result = receive(success())
    expected = Prediction(
        sample=SAMPLE,
        model=ENDPOINT,
        output_location="s3://<bucket>/<output_directory>/prediction.out",
    )
    assert result == Delivery(
        [Notice(message_id=MESSAGE_ID, prediction=expected, event_name="InferenceResult")]
    )


def test_failed_records_the_reason() -> None:
    reason = load_fixture("sagemaker_async_error.json")["failureReason"]
    expected = Prediction(
        sample=SAMPLE, model=ENDPOINT, failed=f"sagemaker inference failed: {reason}"
    )
    assert notice(error()) == Notice(
        message_id=MESSAGE_ID, prediction=expected, event_name="InferenceResult"
    )


def test_the_message_id_is_the_inference_id_whatever_the_sns_message_id() -> None:
    first = receive(success())
    again = sagemaker.receive(
        Source(name="sm", type="sagemaker", verify=False),
        make_request(envelope(success(), MessageId="another-delivery")),
        make_context(FakeHttpGet()),
    )
    assert first.notices[0].message_id == again.notices[0].message_id == MESSAGE_ID


@pytest.mark.parametrize(
    ("location", "bucket", "key"),
    [
        pytest.param("s3://b/a%20b+c.jpg", "b", "a%20b+c.jpg", id="key not url-decoded"),
        pytest.param("s3://b/dir/x?y#z.png", "b", "dir/x?y#z.png", id="? and # stay in the key"),
        pytest.param("s3://b//lead.png", "b", "/lead.png", id="leading slash in the key"),
    ],
)
def test_input_location_key_is_kept_raw(location: str, bucket: str, key: str) -> None:
    prediction = notice(with_request(success(), inputLocation=location)).prediction
    assert prediction.sample == SampleRef(bucket=bucket, key=key)


INLINE = [
    pytest.param(
        inline({"content": b64(DETECTIONS), "encoding": "BASE64", "message": "ok"}),
        Prediction(sample=SAMPLE, model=ENDPOINT, objects=(CAR,)),
        id="base64 detection list",
    ),
    pytest.param(
        inline({"content": b64({"objects": DETECTIONS, "score": 0.5}), "encoding": "base64"}),
        Prediction(sample=SAMPLE, model=ENDPOINT, objects=(CAR,), score=0.5),
        id="base64 objects document, lower-case encoding",
    ),
    pytest.param(
        inline(json.dumps(DETECTIONS)),
        Prediction(sample=SAMPLE, model=ENDPOINT, objects=(CAR,)),
        id="plain text body",
    ),
    pytest.param(
        success(responseBody={"content": json.dumps([])}),
        Prediction(sample=SAMPLE, model=ENDPOINT),
        id="content without encoding, nothing found; no output location",
    ),
    pytest.param(
        inline(
            {"content": b64(load_fixture("roboflow_detection_response.json")), "encoding": "BASE64"}
        ),
        Prediction(
            sample=SAMPLE,
            model=ENDPOINT,
            objects=(DetectedObject("helmet", "bbox", ((108.0, 7.0), (271.0, 193.0)), 0.544),),
            image_width=400,
            image_height=300,
        ),
        id="roboflow",
    ),
    pytest.param(
        inline({"content": base64.b64encode(b"1,2,3\n").decode(), "encoding": "BASE64"}),
        Prediction(sample=SAMPLE, model=ENDPOINT, failed="sagemaker output is not JSON"),
        id="csv output",
    ),
    pytest.param(
        inline({"content": b64({"caption": "a car"}), "encoding": "BASE64"}),
        Prediction(
            sample=SAMPLE,
            model=ENDPOINT,
            failed="sagemaker output could not be imported: output: unrecognised prediction "
            "format; expected one of generic, roboflow, labelstudio, coco, detection_list",
        ),
        id="unrecognised output",
    ),
    pytest.param(
        inline({"content": b64([{"label": "car", "bbox": [3, 2, 1, 4]}]), "encoding": "BASE64"}),
        Prediction(
            sample=SAMPLE,
            model=ENDPOINT,
            failed="sagemaker output could not be imported: "
            "objects[0].bbox: needs x0 < x1 and y0 < y1",
        ),
        id="output that does not convert",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), INLINE)
def test_inline_response_body_is_converted(doc: dict[str, Any], expected: Prediction) -> None:
    assert notice(doc).prediction == expected


def _without(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != name}


MALFORMED = [
    pytest.param(
        _without(success(), "inferenceId"), "Message.inferenceId", "is missing", id="no inferenceId"
    ),
    pytest.param(
        success(inferenceId=5), "Message.inferenceId", "must be a string", id="inferenceId number"
    ),
    pytest.param(
        success(invocationStatus="InProgress"),
        "Message.invocationStatus",
        "must be Completed or Failed",
        id="unknown status",
    ),
    pytest.param(
        _without(success(), "invocationStatus"),
        "Message.invocationStatus",
        "is missing",
        id="no status",
    ),
    pytest.param(
        _without(success(), "requestParameters"),
        "Message.requestParameters",
        "is missing",
        id="no request",
    ),
    pytest.param(
        with_request(success(), inputLocation=None),
        "Message.requestParameters.inputLocation",
        "is missing",
        id="no inputLocation",
    ),
    pytest.param(
        with_request(success(), inputLocation="https://b.s3.amazonaws.com/k"),
        "Message.requestParameters.inputLocation",
        "s3://bucket/key URI",
        id="inputLocation https",
    ),
    pytest.param(
        with_request(success(), inputLocation="s3://bucket-only"),
        "Message.requestParameters.inputLocation",
        "s3://bucket/key URI",
        id="inputLocation without key",
    ),
    pytest.param(
        with_request(success(), inputLocation="s3:///key"),
        "Message.requestParameters.inputLocation",
        "s3://bucket/key URI",
        id="inputLocation without bucket",
    ),
    pytest.param(
        _without(success(), "responseParameters"),
        "Message.responseParameters",
        "is missing",
        id="completed without output",
    ),
    pytest.param(
        success(responseParameters={"outputLocation": "/tmp/out"}),
        "Message.responseParameters.outputLocation",
        "s3://bucket/key URI",
        id="outputLocation not s3",
    ),
    pytest.param(
        inline({"content": "%%%", "encoding": "BASE64"}),
        "Message.responseBody.content",
        "not base64",
        id="content not base64",
    ),
    pytest.param(
        inline({"content": "abc", "encoding": "GZIP"}),
        "Message.responseBody.encoding",
        "must be BASE64",
        id="unknown encoding",
    ),
    pytest.param(
        inline({"encoding": "BASE64"}),
        "Message.responseBody.content",
        "is missing",
        id="no content",
    ),
    pytest.param(inline(42), "Message.responseBody", "object or a string", id="body number"),
]


@pytest.mark.parametrize(("doc", "field", "message"), MALFORMED)
def test_malformed_notice_names_the_field(doc: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as caught:
        receive(doc)
    assert field in caught.value.fields
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        pytest.param("not json at all", "is not JSON", id="text"),
        pytest.param("[1, 2]", "must be a JSON object", id="list"),
    ],
)
def test_inner_message_must_be_a_json_object(message: str, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem) as caught:
        receive(message)
    assert "Message" in caught.value.fields


def test_signed_delivery_from_an_allowed_topic() -> None:
    key, pem = shared_test_cert()
    signed = sign_sns(envelope(success()), key, CERT_URL)
    source = Source(name="sm", type="sagemaker", topic_arns=(TOPIC,))
    result = sagemaker.receive(
        source, make_request(signed), make_context(FakeHttpGet({CERT_URL: pem}))
    )
    assert result.notices[0].message_id == MESSAGE_ID


@pytest.mark.parametrize(
    ("changes", "topics"),
    [
        pytest.param(
            {"Message": json.dumps(error())}, (TOPIC,), id="message swapped after signing"
        ),
        pytest.param({}, ("arn:aws:sns:us-east-1:123456789012:other",), id="topic not allowed"),
    ],
)
def test_signed_delivery_is_checked(changes: dict[str, Any], topics: tuple[str, ...]) -> None:
    key, pem = shared_test_cert()
    signed = {**sign_sns(envelope(success()), key, CERT_URL), **changes}
    source = Source(name="sm", type="sagemaker", topic_arns=topics)
    with pytest.raises(SignatureError):
        sagemaker.receive(source, make_request(signed), make_context(FakeHttpGet({CERT_URL: pem})))


def test_subscription_confirmation_is_answered() -> None:
    confirmation = {
        **load_fixture("sns_subscription_confirmation.json"),
        "Timestamp": iso_time(NOW - 5),
    }
    url = confirmation["SubscribeURL"]
    http = FakeHttpGet({url: b"<ConfirmSubscriptionResponse/>"})
    source = Source(name="sm", type="sagemaker", verify=False)
    result = sagemaker.receive(source, make_request(confirmation), make_context(http))
    assert isinstance(result, Handshake)
    assert http.calls == [url]
