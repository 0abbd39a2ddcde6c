"""The relay's own prediction callback: signature, every valid shape, and every refusal by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import predictions
from relay.hooks.base import (
    Delivery,
    DetectedObject,
    HookContext,
    MaskInstance,
    Notice,
    Prediction,
    SampleRef,
)
from tests.hooks.swfakes import OTHER_SECRET, TEST_SECRET, signed_request

NOW = 1_700_000_000
UUID = "602a3eec-a61c-4a77-9fcc-3037ce5e9606"
SOURCE = Source(name="models", type="predictions", secrets=(TEST_SECRET,))
BOX = {"label": "car", "bbox": [10, 20, 110, 70], "score": 0.9}
CAR = DetectedObject("car", "bbox", ((10.0, 20.0), (110.0, 70.0)), 0.9)
MASK = {"url": "https://models.test/masks/1.png", "instances": [{"id": 1, "label": "car"}]}


def context() -> HookContext:
    def no_fetch(url: str) -> bytes:
        raise AssertionError(f"unexpected fetch of {url}")

    return HookContext(http_get=no_fetch, now=lambda: NOW)


def body(**changes: Any) -> dict[str, Any]:
    """A minimal valid callback body, with fields replaced (None removes one)."""
    doc = {"sample": {"uuid": UUID}, "objects": [BOX], **changes}
    return {name: value for name, value in doc.items() if value is not None}


def test_receive_turns_a_signed_callback_into_a_prediction_notice() -> None:
    raw = json.dumps(body(model={"name": "yolov8n", "version": "8.1"}, score=0.8))
    result = predictions.receive(
        SOURCE, signed_request(raw, msg_id="msg_1", timestamp=NOW), context()
    )
    expected = Prediction(
        sample=SampleRef(uuid=UUID),
        objects=(CAR,),
        score=0.8,
        model="yolov8n",
        model_version="8.1",
    )
    assert result == Delivery(
        [Notice(message_id="msg_1", prediction=expected, event_name="prediction")]
    )


def test_receive_accepts_the_rotated_secret() -> None:
    source = Source(name="models", type="predictions", secrets=(OTHER_SECRET, TEST_SECRET))
    result = predictions.receive(
        source, signed_request(json.dumps(body()), timestamp=NOW), context()
    )
    assert result.notices[0].message_id == "msg_test"


@pytest.mark.parametrize(
    ("request_options", "message"),
    [
        pytest.param({"secret": OTHER_SECRET}, "no webhook-signature matches", id="wrong secret"),
        pytest.param({"timestamp": NOW - 600}, "too old", id="stale"),
    ],
)
def test_receive_refuses_a_bad_signature(request_options: dict[str, Any], message: str) -> None:
    options = {"timestamp": NOW, **request_options}
    with pytest.raises(SignatureError, match=message):
        predictions.receive(SOURCE, signed_request(json.dumps(body()), **options), context())


def test_receive_checks_the_signature_before_the_body() -> None:
    request = signed_request(b"not json", secret=OTHER_SECRET, timestamp=NOW)
    with pytest.raises(SignatureError):
        predictions.receive(SOURCE, request, context())


def test_receive_refuses_a_signed_body_that_is_not_json() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        predictions.receive(SOURCE, signed_request(b"{oops", timestamp=NOW), context())


VALID = [
    pytest.param(body(), Prediction(SampleRef(uuid=UUID), objects=(CAR,)), id="uuid"),
    pytest.param(
        body(sample={"name": "frame-001.jpg"}),
        Prediction(SampleRef(name="frame-001.jpg"), objects=(CAR,)),
        id="name in the route's dataset",
    ),
    pytest.param(
        body(sample={"dataset": "jane/cars", "name": "a.jpg"}),
        Prediction(SampleRef(dataset="jane/cars", name="a.jpg"), objects=(CAR,)),
        id="dataset and name",
    ),
    pytest.param(
        body(sample={"bucket": "photos", "key": "2024/a b+c.jpg"}),
        Prediction(SampleRef(bucket="photos", key="2024/a b+c.jpg"), objects=(CAR,)),
        id="bucket and key",
    ),
    pytest.param(
        body(sample={"uuid": UUID.upper()}),
        Prediction(SampleRef(uuid=UUID), objects=(CAR,)),
        id="uuid in capitals",
    ),
    pytest.param(
        body(objects=[]),
        Prediction(SampleRef(uuid=UUID)),
        id="empty objects: the model found nothing",
    ),
    pytest.param(
        body(
            objects=[
                {
                    "label": "car",
                    "bbox": [0.5, 0.5, 0.25, 0.25],
                    "bbox_format": "xywh",
                    "normalized": True,
                },
                {"label": "road", "polygon": [[0, 0], [1, 0], [1, 1]], "normalized": True},
                {"label": "lane", "polyline": [[0, 240], [640, 240]]},
                {"label": "eye", "point": [0.5, 0.5], "normalized": True, "score": 0.4},
            ],
            image={"width": 640, "height": 480},
        ),
        Prediction(
            SampleRef(uuid=UUID),
            objects=(
                DetectedObject("car", "bbox", ((320.0, 240.0), (480.0, 360.0))),
                DetectedObject("road", "polygon", ((0.0, 0.0), (640.0, 0.0), (640.0, 480.0))),
                DetectedObject("lane", "polyline", ((0.0, 240.0), (640.0, 240.0))),
                DetectedObject("eye", "point", ((320.0, 240.0),), 0.4),
            ),
            image_width=640,
            image_height=480,
        ),
        id="every geometry, normalized and pixel",
    ),
    pytest.param(
        body(
            objects=None,
            mask={
                **MASK,
                "instances": [{"id": 1, "label": "car", "score": 0.9}, {"id": 7, "label": "bus"}],
            },
        ),
        Prediction(
            SampleRef(uuid=UUID),
            mask_url=MASK["url"],
            mask_instances=(MaskInstance(1, "car", 0.9), MaskInstance(7, "bus")),
        ),
        id="mask only",
    ),
    pytest.param(
        body(mask={"url": "http://minio:9000/masks/1.png", "instances": []}),
        Prediction(SampleRef(uuid=UUID), objects=(CAR,), mask_url="http://minio:9000/masks/1.png"),
        id="objects and a mask on an internal host",
    ),
    pytest.param(
        body(objects=None, error="CUDA out of memory", model={"name": "yolo"}, id="run-42"),
        Prediction(SampleRef(uuid=UUID), model="yolo", failed="CUDA out of memory"),
        id="failed run",
    ),
    pytest.param(
        body(error="timeout", objects=[]),
        Prediction(SampleRef(uuid=UUID), failed="timeout"),
        id="failed run with empty objects",
    ),
    pytest.param(
        body(score=1, model={"name": "m"}),
        Prediction(SampleRef(uuid=UUID), objects=(CAR,), score=1.0, model="m"),
        id="integer score",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), VALID)
def test_parse_prediction(doc: dict[str, Any], expected: Prediction) -> None:
    assert predictions.parse_prediction(doc) == expected


INVALID = [
    pytest.param(body(extra=1), "extra", "Unknown field", id="unknown field"),
    pytest.param(body(sample=None), "sample", "required", id="no sample"),
    pytest.param(body(sample={}), "sample", "exactly one of", id="empty sample"),
    pytest.param(
        body(sample={"uuid": UUID, "name": "a"}), "sample", "exactly one of", id="uuid and name"
    ),
    pytest.param(
        body(sample={"dataset": "jane/cars"}), "sample", "exactly one of", id="dataset only"
    ),
    pytest.param(body(sample={"bucket": "b"}), "sample", "exactly one of", id="bucket only"),
    pytest.param(body(sample={"uuid": "12"}), "sample.uuid", "Not a valid UUID", id="bad uuid"),
    pytest.param(
        body(sample={"dataset": "cars", "name": "a"}),
        "sample.dataset",
        "owner/name",
        id="bad dataset",
    ),
    pytest.param(body(sample={"name": ""}), "sample.name", "Shorter than minimum", id="empty name"),
    pytest.param(body(sample={"name": 5}), "sample.name", "Not a valid string", id="name number"),
    pytest.param(
        body(sample={"name": "a", "url": "x"}), "sample.url", "Unknown field", id="sample extra"
    ),
    pytest.param(body(sample="a.jpg"), "sample", "Invalid input type", id="sample string"),
    pytest.param(
        body(objects=None), "body", "give objects (possibly empty), mask or error", id="no result"
    ),
    pytest.param(body(error="x"), "error", "carries no objects or mask", id="error with objects"),
    pytest.param(body(objects=None, error=""), "error", "Shorter than minimum", id="empty error"),
    pytest.param(
        body(objects={"label": "car"}), "objects", "Not a valid list", id="objects not a list"
    ),
    pytest.param(
        body(objects=[BOX, {**BOX, "point": [1, 1]}]),
        "objects[1]",
        "has bbox and point",
        id="two geometries",
    ),
    pytest.param(
        body(objects=[{"label": "car"}]), "objects[0]", "has no geometry", id="no geometry"
    ),
    pytest.param(
        body(objects=[{**BOX, "bbox": [5, 5, 1, 1]}]),
        "objects[0].bbox",
        "x0 < x1",
        id="bad bbox order",
    ),
    pytest.param(
        body(objects=[{**BOX, "colour": "red"}]),
        "objects[0].colour",
        "unknown field",
        id="object extra",
    ),
    pytest.param(
        body(objects=[{**BOX, "bbox": [0, 0, 700, 10]}], image={"width": 640, "height": 480}),
        "objects[0].bbox",
        "x = 700 is outside the image",
        id="outside the image",
    ),
    pytest.param(
        body(objects=[{**BOX, "bbox": [0, 0, 0.5, 0.5], "normalized": True}]),
        "objects[0].normalized",
        "need the image width and height",
        id="normalized without image",
    ),
    pytest.param(
        body(objects=[{**BOX, "score": "0.9"}]), "objects[0].score", "number", id="object score str"
    ),
    pytest.param(body(score="0.9"), "score", "Not a valid number", id="score string"),
    pytest.param(body(score=True), "score", "Not a valid number", id="score bool"),
    pytest.param(body(score=1.5), "score", "less than or equal to 1.0", id="score above 1"),
    pytest.param(body(image={"width": 640}), "image.height", "required", id="image without height"),
    pytest.param(
        body(image={"width": 640.5, "height": 1}),
        "image.width",
        "Not a valid integer",
        id="width float",
    ),
    pytest.param(
        body(image={"width": 0, "height": 1}),
        "image.width",
        "greater than or equal to 1",
        id="width 0",
    ),
    pytest.param(
        body(image={"width": 10**400, "height": 1}),
        "image.width",
        "less than or equal to 2147483647",
        id="absurd width",
    ),
    pytest.param(body(model={"version": "1"}), "model.name", "required", id="model without name"),
    pytest.param(body(model="yolo"), "model", "Invalid input type", id="model string"),
    pytest.param(body(id=12), "id", "Not a valid string", id="id number"),
    pytest.param(
        body(mask={"url": "ftp://x/m.png", "instances": []}),
        "mask.url",
        "Not a valid URL",
        id="mask ftp",
    ),
    pytest.param(
        body(mask={"url": "masks/1.png", "instances": []}),
        "mask.url",
        "Not a valid URL",
        id="mask path",
    ),
    pytest.param(
        body(mask={"url": MASK["url"]}), "mask.instances", "required", id="mask no instances"
    ),
    pytest.param(
        body(mask={**MASK, "instances": [{"id": 0, "label": "car"}]}),
        "mask.instances[0].id",
        "greater than or equal to 1",
        id="instance id 0",
    ),
    pytest.param(
        body(mask={**MASK, "instances": [{"id": 2**24, "label": "car"}]}),
        "mask.instances[0].id",
        "less than or equal to 16777215",
        id="instance id beyond 24 bits",
    ),
    pytest.param(
        body(mask={**MASK, "instances": [{"id": "1", "label": "car"}]}),
        "mask.instances[0].id",
        "Not a valid integer",
        id="instance id string",
    ),
    pytest.param(
        body(mask={**MASK, "instances": [{"id": 1, "label": "a"}, {"id": 1, "label": "b"}]}),
        "mask.instances",
        "unique",
        id="duplicate instance ids",
    ),
    pytest.param(
        body(mask={**MASK, "instances": [{"id": 1}]}),
        "mask.instances[0].label",
        "required",
        id="instance no label",
    ),
]


@pytest.mark.parametrize(("doc", "field", "message"), INVALID)
def test_parse_prediction_refuses(doc: Any, field: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        predictions.parse_prediction(doc)
    error = caught.value
    assert error.status_code == 400
    assert field in error.fields, error.fields
    assert any(message in text for text in error.fields[field]), error.fields
    assert field in error.message


@pytest.mark.parametrize("doc", [[], "prediction", None])
def test_parse_prediction_needs_an_object(doc: Any) -> None:
    with pytest.raises(PayloadError, match="must be a JSON object"):
        predictions.parse_prediction(doc)


def test_reports_every_schema_problem_at_once() -> None:
    with pytest.raises(PayloadError) as caught:
        predictions.parse_prediction(body(score=2, sample={"uuid": "x"}, extra=True))
    assert set(caught.value.fields) == {"score", "sample.uuid", "extra"}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ({"a": ["x"]}, {"a": ["x"]}),
        ({"_schema": ["x"]}, {"body": ["x"]}),
        ({"a": {"_schema": ["x"], "b": ["y"]}}, {"a": ["x"], "a.b": ["y"]}),
        ({"a": {0: {"b": ["y"]}, 3: ["z"]}}, {"a[0].b": ["y"], "a[3]": ["z"]}),
    ],
)
def test_flatten_messages(messages: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert predictions.flatten_messages(messages) == expected
