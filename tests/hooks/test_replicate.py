"""Replicate webhooks: statuses, outputs, how the sample is named, and the signature."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import replicate
from relay.hooks.base import Delivery, DetectedObject, HookContext, Notice, Prediction, SampleRef
from tests.hooks.swfakes import OTHER_SECRET, TEST_SECRET, signed_request

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOW = 1_694_189_975
UUID = "602a3eec-a61c-4a77-9fcc-3037ce5e9606"
SOURCE = Source(name="replicate", type="replicate", secrets=(TEST_SECRET,))
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
DETECTIONS = [
    {"label": "dog", "score": 0.8, "bbox": [10, 20, 30, 40]},
    {"label": "cat", "score": 0.6, "bbox": [0, 0, 5, 5]},
]
DOG = DetectedObject("dog", "bbox", ((10.0, 20.0), (30.0, 40.0)), 0.8)
CAT = DetectedObject("cat", "bbox", ((0.0, 0.0), (5.0, 5.0)), 0.6)
IMAGE_URL = "https://replicate.delivery/pbxt/input/dog.jpg"


def context() -> HookContext:
    def no_fetch(url: str) -> bytes:
        raise AssertionError(f"unexpected fetch of {url}")

    return HookContext(http_get=no_fetch, now=lambda: NOW)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def succeeded(**changes: Any) -> dict[str, Any]:
    """The documented succeeded prediction, with fields replaced."""
    return {**json.loads(fixture_bytes("replicate_succeeded.json")), **changes}


def receive(body: bytes | dict[str, Any], args: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = signed_request(raw, msg_id="msg_r1", timestamp=NOW, args=args)
    return replicate.receive(SOURCE, request, context())


@pytest.mark.parametrize(
    ("fixture", "notice"),
    [
        pytest.param(
            "replicate_starting.json",
            Notice(
                message_id="msg_r1",
                ignored="prediction is starting; only finished predictions are imported",
                event_name="prediction.starting",
            ),
            id="starting",
        ),
        pytest.param(
            "replicate_succeeded.json",
            Notice(
                message_id="msg_r1",
                ignored="output is not a detection list or objects",
                event_name="prediction.succeeded",
            ),
            id="succeeded with text output",
        ),
        pytest.param(
            "cog_webhook_succeeded.json",
            Notice(
                message_id="msg_r1",
                ignored="output is not a detection list or objects",
                event_name="prediction.succeeded",
            ),
            id="succeeded with a data: URL output",
        ),
        pytest.param(
            "replicate_failed.json",
            Notice(
                message_id="msg_r1",
                prediction=Prediction(
                    sample=SampleRef(uuid=UUID),
                    model="replicate/hello-world",
                    model_version=VERSION,
                    failed="replicate prediction failed: CUDA out of memory",
                ),
                event_name="prediction.failed",
            ),
            id="failed",
        ),
    ],
)
def test_fixtures(fixture: str, notice: Notice) -> None:
    result = receive(fixture_bytes(fixture), {"sample_uuid": UUID})
    assert result == Delivery([notice])


def test_ignored_outputs_need_no_sample() -> None:
    result = receive(fixture_bytes("replicate_starting.json"))
    assert result.notices[0].ignored


def test_succeeded_detection_list_into_a_named_sample() -> None:
    result = receive(succeeded(output=DETECTIONS), {"dataset": "jane/pets", "sample": "dog.jpg"})
    expected = Prediction(
        sample=SampleRef(dataset="jane/pets", name="dog.jpg"),
        objects=(DOG, CAT),
        model="replicate/hello-world",
        model_version=VERSION,
    )
    assert result == Delivery(
        [Notice(message_id="msg_r1", prediction=expected, event_name="prediction.succeeded")]
    )


def test_succeeded_objects_document_normalized_with_size_from_the_url() -> None:
    output = {"objects": [{"label": "dog", "point": [0.5, 0.5], "normalized": True}], "score": 0.7}
    args = {"sample": "dog.jpg", "image_width": "640", "image_height": "480"}
    prediction = receive(succeeded(output=output), args).notices[0].prediction
    assert prediction.objects == (DetectedObject("dog", "point", ((320.0, 240.0),)),)
    assert (prediction.score, prediction.image_width, prediction.image_height) == (0.7, 640, 480)


def test_succeeded_output_that_does_not_convert_is_a_failed_prediction() -> None:
    output = [{"label": "dog", "bbox": [30, 20, 10, 40]}]
    prediction = receive(succeeded(output=output), {"sample": "dog.jpg"}).notices[0].prediction
    assert prediction.objects == ()
    assert prediction.failed == (
        "replicate output could not be imported: objects[0].bbox: needs x0 < x1 and y0 < y1"
    )


def test_canceled_without_error() -> None:
    doc = succeeded(status="canceled", output=None, error=None, model=None)
    prediction = receive(doc, {"sample_uuid": UUID}).notices[0].prediction
    assert (prediction.failed, prediction.model) == ("replicate prediction canceled", VERSION)


SAMPLES = [
    pytest.param({"sample_uuid": UUID.upper()}, {}, SampleRef(uuid=UUID), id="sample_uuid"),
    pytest.param({"sample": "a.jpg"}, {}, SampleRef(name="a.jpg"), id="sample"),
    pytest.param(
        {"dataset": "jane/pets", "sample": "a.jpg", "token": "t"},
        {},
        SampleRef(dataset="jane/pets", name="a.jpg"),
        id="dataset and sample, other params ignored",
    ),
    pytest.param(
        {"bucket": "photos", "key": "a/b c.jpg"},
        {},
        SampleRef(bucket="photos", key="a/b c.jpg"),
        id="bucket and key",
    ),
    pytest.param(
        {"sample": "a.jpg"}, {"image": IMAGE_URL}, SampleRef(name="a.jpg"), id="query wins"
    ),
    pytest.param(
        {},
        {"image": IMAGE_URL, "image_url": "https://x.test/b.jpg"},
        SampleRef(image_url=IMAGE_URL),
        id="input.image",
    ),
    pytest.param(
        {},
        {"image_url": IMAGE_URL, "prompt": "dogs"},
        SampleRef(image_url=IMAGE_URL),
        id="input.image_url",
    ),
    pytest.param(
        {},
        {"image": "data:image/png;base64,AAAA", "threshold": 0.5, "photo": IMAGE_URL},
        SampleRef(image_url=IMAGE_URL),
        id="first http(s) input",
    ),
]


@pytest.mark.parametrize(("args", "inputs", "sample"), SAMPLES)
def test_sample(args: dict[str, str], inputs: dict[str, Any], sample: SampleRef) -> None:
    prediction = receive(succeeded(output=DETECTIONS, input=inputs), args).notices[0].prediction
    assert prediction.sample == sample


BAD = [
    pytest.param(
        {},
        {"text": "Alice"},
        "sample_uuid",
        "cannot tell which sample: add ?sample_uuid=",
        id="no sample",
    ),
    pytest.param(
        {}, {"image": "s3://bucket/a.jpg"}, "sample_uuid", "cannot tell which sample", id="s3 input"
    ),
    pytest.param({"sample_uuid": "12"}, {}, "sample_uuid", "is not a UUID", id="bad uuid"),
    pytest.param(
        {"dataset": "pets", "sample": "a"}, {}, "dataset", "must be 'owner/name'", id="bad dataset"
    ),
    pytest.param(
        {"dataset": "jane/pets"}, {}, "dataset", "use sample_uuid, or sample", id="dataset only"
    ),
    pytest.param({"bucket": "b"}, {}, "bucket", "use sample_uuid, or sample", id="bucket only"),
    pytest.param(
        {"sample_uuid": UUID, "sample": "a"},
        {},
        "sample",
        "has sample, sample_uuid",
        id="two forms",
    ),
    pytest.param(
        {"sample": "a", "image_width": "wide"},
        {},
        "image_width",
        "positive integer",
        id="width word",
    ),
    pytest.param(
        {"sample": "a", "image_height": "0"}, {}, "image_height", "positive integer", id="height 0"
    ),
    pytest.param(
        {"sample": "a", "image_height": "9" * 5000},
        {},
        "image_height",
        "positive integer",
        id="huge",
    ),
    pytest.param(
        {"sample": "a", "image_width": "\u0663"},
        {},
        "image_width",
        "positive integer",
        id="arabic 3",
    ),
    pytest.param(
        {"dataset": "", "sample": "a", "image_width": "-1"},
        {},
        "image_width",
        "positive integer",
        id="negative",
    ),
]


@pytest.mark.parametrize(("args", "inputs", "field", "message"), BAD)
def test_refuses(args: dict[str, str], inputs: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace("?", r"\?")) as caught:
        receive(succeeded(output=DETECTIONS, input=inputs), args)
    assert field in caught.value.fields


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        pytest.param(succeeded(status="done"), "status", id="unknown status"),
        pytest.param(succeeded(status=None), "status", id="no status"),
        pytest.param(succeeded(status="failed", error=["x"]), "error", id="error not a string"),
        pytest.param(succeeded(output=DETECTIONS, version=3), "version", id="version not a string"),
        pytest.param([succeeded()], "body", id="not an object"),
    ],
)
def test_refuses_a_malformed_prediction(doc: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        receive(doc, {"sample": "a.jpg"})
    assert field in caught.value.fields


@pytest.mark.parametrize(
    ("secret", "timestamp", "message"),
    [
        pytest.param(OTHER_SECRET, NOW, "no webhook-signature matches", id="wrong secret"),
        pytest.param(TEST_SECRET, NOW + 301, "in the future", id="future"),
    ],
)
def test_refuses_a_bad_signature(secret: str, timestamp: int, message: str) -> None:
    request = signed_request(
        fixture_bytes("replicate_failed.json"), secret=secret, timestamp=timestamp
    )
    with pytest.raises(SignatureError, match=message):
        replicate.receive(SOURCE, request, context())


def test_the_signature_covers_the_exact_body_bytes() -> None:
    raw = fixture_bytes("replicate_failed.json")
    request = signed_request(raw, timestamp=NOW, args={"sample": "a"})
    tampered = replace(request, body=json.dumps(json.loads(raw)).encode())
    assert replicate.receive(SOURCE, request, context()).notices[0].prediction.failed
    with pytest.raises(SignatureError):
        replicate.receive(SOURCE, tampered, context())
