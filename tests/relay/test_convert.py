"""Prediction format converters: every format into pixel DetectedObjects, and every refusal."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from relay.convert import (
    ConversionError,
    ConvertedOutput,
    convert_output,
    detect_format,
    from_coco,
    from_detection_list,
    from_generic,
    from_labelstudio,
    from_roboflow,
)
from relay.hooks.base import DetectedObject

FIXTURES = Path(__file__).parents[1] / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def box(
    label: str, x0: float, y0: float, x1: float, y1: float, score: float | None = None
) -> DetectedObject:
    return DetectedObject(label=label, type="bbox", points=((x0, y0), (x1, y1)), score=score)


def approx(objects: list[DetectedObject] | tuple[DetectedObject, ...]) -> list[tuple]:
    """Objects as comparable tuples, coordinates rounded to 1e-6 px."""
    return [
        (o.label, o.type, tuple((round(x, 6), round(y, 6)) for x, y in o.points), o.score)
        for o in objects
    ]


# --- generic -------------------------------------------------------------------------------------

GENERIC_OK = [
    pytest.param(
        {"label": "car", "bbox": [10, 20, 110, 70], "score": 0.9},
        {},
        box("car", 10, 20, 110, 70, 0.9),
        id="bbox xyxy (default)",
    ),
    pytest.param(
        {"label": "car", "bbox": [10, 20, 100, 50], "bbox_format": "xywh"},
        {},
        box("car", 10, 20, 110, 70),
        id="bbox xywh",
    ),
    pytest.param(
        {"label": "car", "bbox": [0.1, 0.25, 0.5, 0.75], "normalized": True},
        {"image_width": 200, "image_height": 100},
        box("car", 20, 25, 100, 75),
        id="bbox normalized",
    ),
    pytest.param(
        {"label": "car", "bbox": [0.1, 0.2, 0.3, 0.4], "bbox_format": "xywh", "normalized": True},
        {"image_width": 100, "image_height": 100},
        box("car", 10, 20, 40, 60),
        id="bbox xywh normalized",
    ),
    pytest.param(
        {"label": "lane", "polygon": [[0, 0], [10, 0], [10, 10]], "score": 1},
        {"image_width": 10, "image_height": 10},
        DetectedObject("lane", "polygon", ((0, 0), (10, 0), (10, 10)), 1.0),
        id="polygon on the image edges",
    ),
    pytest.param(
        {"label": "lane", "polygon": [[0.5, 0], [1, 1], [0, 1]], "normalized": True},
        {"image_width": 640, "image_height": 480},
        DetectedObject("lane", "polygon", ((320, 0), (640, 480), (0, 480))),
        id="polygon normalized",
    ),
    pytest.param(
        {"label": "wire", "polyline": [[1, 2], [3.5, 4]]},
        {},
        DetectedObject("wire", "polyline", ((1, 2), (3.5, 4))),
        id="polyline",
    ),
    pytest.param(
        {"label": "eye", "point": [5, 6], "score": 0},
        {},
        DetectedObject("eye", "point", ((5, 6),), 0.0),
        id="point",
    ),
    pytest.param(
        {"label": "eye", "point": [0.25, 0.5], "normalized": True},
        {"image_width": 40, "image_height": 20},
        DetectedObject("eye", "point", ((10, 10),)),
        id="point normalized",
    ),
    pytest.param(
        {"label": "car", "bbox": [-0.4, 0, 640.5, 480.2]},
        {"image_width": 640, "image_height": 480},
        box("car", 0, 0, 640, 480),
        id="within half a pixel of the edge: clamped",
    ),
    pytest.param(
        {"label": "car", "bbox": [1e6, 1e6, 2e6, 2e6], "score": None, "normalized": False},
        {},
        box("car", 1e6, 1e6, 2e6, 2e6),
        id="no image size: no bounds",
    ),
]


@pytest.mark.parametrize(("item", "size", "expected"), GENERIC_OK)
def test_from_generic(item: dict[str, Any], size: dict[str, int], expected: DetectedObject) -> None:
    assert approx(from_generic([item], **size)) == approx([expected])


def test_from_generic_of_nothing_is_nothing() -> None:
    assert from_generic([]) == []


GENERIC_BAD = [
    pytest.param({"bbox": [0, 0, 1, 1]}, {}, "objects[0].label", "non-empty string", id="no label"),
    pytest.param(
        {"label": "", "bbox": [0, 0, 1, 1]}, {}, "objects[0].label", "non-empty", id="empty label"
    ),
    pytest.param(
        {"label": 3, "bbox": [0, 0, 1, 1]}, {}, "objects[0].label", "string", id="label number"
    ),
    pytest.param({"label": "car"}, {}, "objects[0]", "has no geometry", id="no geometry"),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "point": [0, 0]},
        {},
        "objects[0]",
        "has bbox and point; give exactly one",
        id="two geometries",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "bbox_fromat": "xywh"},
        {},
        "objects[0].bbox_fromat",
        "unknown field",
        id="typo is an unknown field",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1]}, {}, "objects[0].bbox", "list of 4", id="3 numbers"
    ),
    pytest.param(
        {"label": "car", "bbox": "0,0,1,1"}, {}, "objects[0].bbox", "list of 4", id="bbox string"
    ),
    pytest.param(
        {"label": "car", "bbox": [5, 0, 1, 1]}, {}, "objects[0].bbox", "x0 < x1", id="x inverted"
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 5, 1, 5]}, {}, "objects[0].bbox", "y0 < y1", id="zero height"
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 0, 5], "bbox_format": "xywh"},
        {},
        "objects[0].bbox",
        "positive width and height",
        id="xywh zero width",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "bbox_format": "cxcywh"},
        {},
        "objects[0].bbox_format",
        "xyxy, xywh",
        id="unknown bbox_format",
    ),
    pytest.param(
        {"label": "car", "point": [1, 1], "bbox_format": "xywh"},
        {},
        "objects[0].bbox_format",
        "bbox only",
        id="bbox_format on a point",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, float("nan"), 1]},
        {},
        "objects[0].bbox[2]",
        "finite",
        id="NaN",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, math.inf, 1]},
        {},
        "objects[0].bbox[2]",
        "finite",
        id="infinity",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, True, 1, 1]}, {}, "objects[0].bbox[1]", "number", id="bool"
    ),
    pytest.param(
        {"label": "car", "bbox": [0, "1", 1, 1]}, {}, "objects[0].bbox[1]", "number", id="string"
    ),
    pytest.param(
        {"label": "car", "point": [1, None]}, {}, "objects[0].point[1]", "number", id="null"
    ),
    pytest.param(
        {"label": "car", "point": [1, 2, 3]}, {}, "objects[0].point", "list of 2", id="3D point"
    ),
    pytest.param(
        {"label": "car", "polygon": [[0, 0], [1, 1]]},
        {},
        "objects[0].polygon",
        "at least 3",
        id="2-gon",
    ),
    pytest.param(
        {"label": "car", "polyline": [[0, 0]]},
        {},
        "objects[0].polyline",
        "at least 2",
        id="1-point line",
    ),
    pytest.param(
        {"label": "car", "polygon": [[0, 0], [1, 1], [1]]},
        {},
        "objects[0].polygon[2]",
        "list of 2",
        id="short polygon point",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "score": 1.5},
        {},
        "objects[0].score",
        "0 and 1",
        id="score>1",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "score": "0.5"},
        {},
        "objects[0].score",
        "number",
        id="score str",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "normalized": "yes"},
        {},
        "objects[0].normalized",
        "true or false",
        id="normalized not bool",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1, 1], "normalized": True},
        {"image_width": 100},
        "objects[0].normalized",
        "need the image width and height",
        id="normalized without image height",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 641, 10]},
        {"image_width": 640, "image_height": 480},
        "objects[0].bbox",
        "x = 641 is outside the image (0 to 640)",
        id="beyond the right edge",
    ),
    pytest.param(
        {"label": "car", "point": [10, -1]},
        {"image_width": 640, "image_height": 480},
        "objects[0].point",
        "y = -1 is outside",
        id="above the top edge",
    ),
    pytest.param(
        {"label": "car", "bbox": [0, 0, 1.2, 0.5], "normalized": True},
        {"image_width": 100, "image_height": 100},
        "objects[0].bbox",
        "x = 120 is outside",
        id="normalized beyond 1",
    ),
    pytest.param("car", {}, "objects[0]", "must be an object", id="not an object"),
]


@pytest.mark.parametrize(("item", "size", "field", "message"), GENERIC_BAD)
def test_from_generic_refuses(item: Any, size: dict[str, int], field: str, message: str) -> None:
    with pytest.raises(ConversionError, match=re.escape(message)) as caught:
        from_generic([item], **size)
    assert caught.value.field == field


def test_from_generic_names_the_failing_index() -> None:
    good = {"label": "ok", "point": [1, 1]}
    with pytest.raises(ConversionError) as caught:
        from_generic([good, good, {"label": "bad", "point": [1]}])
    assert caught.value.field == "objects[2].point"
    assert str(caught.value).startswith("objects[2].point: must be a list of 2 numbers")


def test_from_generic_needs_a_list() -> None:
    with pytest.raises(ConversionError, match="must be a list") as caught:
        from_generic({"label": "car"})
    assert caught.value.field == "objects"


# --- Roboflow ------------------------------------------------------------------------------------


def test_roboflow_fixture_centre_becomes_corners() -> None:
    result = from_roboflow(fixture("roboflow_detection_response.json"))
    assert approx(result.objects) == approx([box("helmet", 108, 7, 271, 193, 0.544)])
    assert (result.image_width, result.image_height) == (400, 300)


ROBOFLOW_BAD = [
    pytest.param({"x": "10"}, "predictions[0].x", "number", id="x string"),
    pytest.param({"width": 0}, "predictions[0]", "positive width", id="zero width"),
    pytest.param({"class": None}, "predictions[0].class", "non-empty string", id="no class"),
    pytest.param({"confidence": 2}, "predictions[0].confidence", "0 and 1", id="confidence>1"),
    pytest.param({"x": 390}, "predictions[0]", "x = 471.5 is outside", id="beyond the image"),
]


@pytest.mark.parametrize(("changes", "field", "message"), ROBOFLOW_BAD)
def test_roboflow_refuses(changes: dict[str, Any], field: str, message: str) -> None:
    doc = fixture("roboflow_detection_response.json")
    doc["predictions"][0].update(changes)
    with pytest.raises(ConversionError, match=re.escape(message)) as caught:
        from_roboflow(doc)
    assert caught.value.field == field


def test_roboflow_without_image_size_is_unbounded() -> None:
    doc = {"predictions": [{"x": 5, "y": 5, "width": 2, "height": 4, "class": "a"}]}
    assert approx(from_roboflow(doc).objects) == approx([box("a", 4, 3, 6, 7)])


# --- Label Studio --------------------------------------------------------------------------------

# The fixtures' first rectangle: x 4.98 %, y 12.82 %, 32.52 % x 44.91 % of 600 x 403 px.
AIRPLANE_BOX = box("Airplane", 29.88, 51.6646, 225.0, 232.6519, 0.93)
AIRPLANE_POLYGON = DetectedObject(
    "Airplane",
    "polygon",
    ((152.82, 66.6159), (112.02, 119.8119), (103.2, 153.14), (179.22, 191.3041)),
    0.77,
)


def test_labelstudio_ml_backend_response() -> None:
    result = from_labelstudio(fixture("labelstudio_ml_predict_response.json"))
    assert approx(result.objects) == approx([AIRPLANE_BOX, AIRPLANE_POLYGON])
    assert result.skipped == ("results[0].result[2]: brushlabels regions are not converted",)
    assert (result.score, result.model_version) == (0.87, "yolov8n-2024-05-01")
    assert (result.image_width, result.image_height) == (600, 403)


def test_labelstudio_task_predictions() -> None:
    result = from_labelstudio(fixture("labelstudio_task_with_predictions.json"))
    car = box("Car", 452.82, 331.7899, 487.26, 361.6119, 0.81)
    assert approx(result.objects) == approx([AIRPLANE_BOX, car])
    assert result.skipped == ("predictions[0].result[2]: choices regions are not converted",)
    assert result.score == 0.87


def test_labelstudio_bare_result_list_and_keypoint() -> None:
    region = {
        "type": "keypointlabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"x": 50, "y": 25, "width": 1, "keypointlabels": ["nose", "face"]},
        "score": 0.5,
    }
    result = from_labelstudio([region])
    assert result.objects == (DetectedObject("nose", "point", ((100.0, 25.0),), 0.5),)
    assert (result.score, result.model_version, result.skipped) == (None, None, ())


def ls_rectangle(**value_changes: Any) -> dict[str, Any]:
    doc = fixture("labelstudio_ml_predict_response.json")
    region = doc["results"][0]["result"][0]
    region["value"].update(value_changes)
    return doc


def ls_with(region_changes: dict[str, Any]) -> dict[str, Any]:
    doc = fixture("labelstudio_ml_predict_response.json")
    doc["results"][0]["result"][0].update(region_changes)
    return doc


R0 = "results[0].result[0]"
LABELSTUDIO_BAD = [
    pytest.param(
        ls_rectangle(rotation=30), f"{R0}.value.rotation", "rotated rectangles", id="rotation"
    ),
    pytest.param(
        ls_with({"image_rotation": 90}),
        f"{R0}.image_rotation",
        "rotated images",
        id="image rotated",
    ),
    pytest.param(
        ls_with({"original_width": None}),
        f"{R0}.original_width",
        "integer from 1 to",
        id="no width",
    ),
    pytest.param(
        ls_rectangle(rectanglelabels=[]), f"{R0}.value.rectanglelabels", "non-empty", id="no labels"
    ),
    pytest.param(ls_rectangle(x="5"), f"{R0}.value.x", "number", id="x string"),
    pytest.param(ls_rectangle(width=0), f"{R0}.value", "positive width", id="zero width"),
    pytest.param(
        ls_rectangle(x=90), f"{R0}.value", "x = 735.12 is outside", id="beyond 100 percent"
    ),
    pytest.param(ls_with({"score": 9}), f"{R0}.score", "0 and 1", id="score"),
    pytest.param(ls_with({"type": None}), f"{R0}.type", "string", id="no type"),
    pytest.param({"results": []}, "results", "holds 0 predictions", id="no prediction"),
    pytest.param(
        {"predictions": [{"result": []}, {"result": []}]},
        "predictions",
        "holds 2",
        id="two predictions",
    ),
    pytest.param(
        {"results": [{"result": {}}]}, "results[0].result", "must be a list", id="result dict"
    ),
    pytest.param({"result": [], "model_version": 3}, "model_version", "string", id="model_version"),
    pytest.param("nope", "body", "must be an object", id="not a document"),
]


@pytest.mark.parametrize(("doc", "field", "message"), LABELSTUDIO_BAD)
def test_labelstudio_refuses(doc: Any, field: str, message: str) -> None:
    with pytest.raises(ConversionError, match=re.escape(message)) as caught:
        from_labelstudio(doc)
    assert caught.value.field == field


def test_labelstudio_polygon_needs_three_points() -> None:
    doc = fixture("labelstudio_ml_predict_response.json")
    doc["results"][0]["result"][1]["value"]["points"] = [[1, 1], [2, 2]]
    with pytest.raises(ConversionError, match="at least 3") as caught:
        from_labelstudio(doc)
    assert caught.value.field == "results[0].result[1].value.points"


# --- COCO and detection lists --------------------------------------------------------------------

COCO_OK = [
    pytest.param(
        [{"bbox": [10, 20, 30, 40], "category_id": 3, "score": 0.5}],
        {3: "car"},
        [box("car", 10, 20, 40, 60, 0.5)],
        id="category_id",
    ),
    pytest.param(
        [{"bbox": [0, 0, 1, 1], "category_name": "dog", "category_id": 7, "image_id": 1}],
        None,
        [box("dog", 0, 0, 1, 1)],
        id="category_name wins",
    ),
    pytest.param(
        [{"bbox": [1, 2, 3, 4], "label": "cat"}], None, [box("cat", 1, 2, 4, 6)], id="label"
    ),
]


@pytest.mark.parametrize(("annotations", "categories", "expected"), COCO_OK)
def test_from_coco(
    annotations: list[Any], categories: dict[int, str] | None, expected: list
) -> None:
    assert approx(from_coco(annotations, categories)) == approx(expected)


COCO_BAD = [
    pytest.param(
        {"bbox": [0, 0, 1, 1], "category_id": 9},
        "annotations[0].category_id",
        "no name",
        id="unknown id",
    ),
    pytest.param(
        {"bbox": [0, 0, 1, 1], "category_id": "1"},
        "annotations[0].category_id",
        "integer",
        id="id str",
    ),
    pytest.param({"bbox": [0, 0, 1, 1]}, "annotations[0].category_id", "integer", id="no category"),
    pytest.param(
        {"bbox": [0, 0, 0, 1], "label": "a"},
        "annotations[0].bbox",
        "positive width",
        id="zero width",
    ),
    pytest.param(
        {"bbox": [0, 0, 1], "label": "a"}, "annotations[0].bbox", "list of 4", id="short bbox"
    ),
    pytest.param(
        {"bbox": [0, 0, 1, 1], "label": "a", "score": -0.1},
        "annotations[0].score",
        "0 and 1",
        id="score",
    ),
    pytest.param(
        {"bbox": [95, 0, 10, 10], "label": "a"}, "annotations[0].bbox", "x = 105", id="beyond image"
    ),
]


@pytest.mark.parametrize(("item", "field", "message"), COCO_BAD)
def test_from_coco_refuses(item: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConversionError, match=re.escape(message)) as caught:
        from_coco([item], {1: "car"}, image_width=100, image_height=100)
    assert caught.value.field == field


DETECTIONS_OK = [
    pytest.param(
        {"label": "car", "score": 0.5, "bbox": [1, 2, 3, 4]},
        box("car", 1, 2, 3, 4, 0.5),
        id="label bbox",
    ),
    pytest.param(
        {
            "name": "person",
            "class": 0,
            "confidence": 0.87,
            "box": {"x1": 1, "y1": 2, "x2": 3, "y2": 4},
        },
        box("person", 1, 2, 3, 4, 0.87),
        id="ultralytics (class index, name)",
    ),
    pytest.param(
        {"class": "dog", "xyxy": [0, 0, 5, 5]},
        box("dog", 0, 0, 5, 5),
        id="class xyxy",
    ),
    pytest.param(
        {
            "class_name": "cat",
            "bbox": {"xmin": 1, "ymin": 1, "xmax": 2, "ymax": 2},
            "confidence": 1,
        },
        box("cat", 1, 1, 2, 2, 1.0),
        id="class_name xmin dict",
    ),
]


@pytest.mark.parametrize(("item", "expected"), DETECTIONS_OK)
def test_from_detection_list(item: dict[str, Any], expected: DetectedObject) -> None:
    assert approx(from_detection_list([item])) == approx([expected])


DETECTIONS_BAD = [
    pytest.param(
        {"class": 3, "bbox": [0, 0, 1, 1]}, "objects[0]", "has no label", id="class index only"
    ),
    pytest.param({"label": "a"}, "objects[0]", "has no box", id="no box"),
    pytest.param(
        {"label": "a", "box": {"x": 1, "y": 1}}, "objects[0].box", "x1, y1, x2, y2", id="dict keys"
    ),
    pytest.param(
        {"label": "a", "box": {"x1": 0, "y1": 0, "x2": "1", "y2": 1}},
        "objects[0].box.x2",
        "number",
        id="x2 str",
    ),
    pytest.param({"label": "a", "bbox": [2, 0, 1, 1]}, "objects[0].bbox", "x0 < x1", id="inverted"),
    pytest.param(
        {"label": "a", "bbox": [0, 0, 1, 1], "confidence": 7},
        "objects[0].confidence",
        "0 and 1",
        id="confidence",
    ),
    pytest.param(
        {"label": "a", "bbox": [0, 0, 1, 11]},
        "objects[0].bbox",
        "y = 11 is outside",
        id="beyond image",
    ),
]


@pytest.mark.parametrize(("item", "field", "message"), DETECTIONS_BAD)
def test_from_detection_list_refuses(item: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConversionError, match=re.escape(message)) as caught:
        from_detection_list([item], image_width=10, image_height=10)
    assert caught.value.field == field


# --- recognising formats -------------------------------------------------------------------------

FORMATS = [
    pytest.param({"objects": []}, "generic", id="generic document"),
    pytest.param([], "generic", id="empty list"),
    pytest.param(
        [{"label": "car", "bbox": [0, 0, 1, 1], "score": 0.5}], "generic", id="label+bbox list"
    ),
    pytest.param([{"label": "car", "polygon": [], "extra": 1}], "generic", id="generic-only key"),
    pytest.param(fixture("roboflow_detection_response.json"), "roboflow", id="roboflow"),
    pytest.param(
        fixture("labelstudio_ml_predict_response.json"), "labelstudio", id="ls ml backend"
    ),
    pytest.param(fixture("labelstudio_task_with_predictions.json"), "labelstudio", id="ls task"),
    pytest.param({"result": [], "score": 0.3}, "labelstudio", id="ls prediction"),
    pytest.param([{"type": "choices", "value": {}}], "labelstudio", id="ls regions"),
    pytest.param([{"bbox": [0, 0, 1, 1], "category_id": 1}], "coco", id="coco"),
    pytest.param(
        [{"bbox": [0, 0, 1, 1], "label": "a", "category_name": "a"}], "coco", id="coco name"
    ),
    pytest.param([{"name": "a", "class": 0, "box": {}}], "detection_list", id="ultralytics"),
    pytest.param(
        [{"label": "a", "bbox": [0, 0, 1, 1], "confidence": 0.2}], "detection_list", id="confidence"
    ),
    pytest.param("hello Alice", None, id="text"),
    pytest.param("data:image/png;base64,iVBORw0KGgo=", None, id="data URL"),
    pytest.param(["https://replicate.delivery/out.png"], None, id="list of URLs"),
    pytest.param({"caption": "a dog"}, None, id="other object"),
    pytest.param([{"text": "hi"}], None, id="other list"),
    pytest.param(None, None, id="null"),
    pytest.param(42, None, id="number"),
]


@pytest.mark.parametrize(("doc", "expected"), FORMATS)
def test_detect_format(doc: Any, expected: str | None) -> None:
    assert detect_format(doc) == expected


CONVERTED = [
    pytest.param(
        {
            "objects": [{"label": "a", "bbox": [0.5, 0.5, 1, 1], "normalized": True}],
            "score": 0.7,
            "image": {"width": 10, "height": 20},
        },
        {},
        ConvertedOutput((box("a", 5, 10, 10, 20),), score=0.7, image_width=10, image_height=20),
        id="generic document with image",
    ),
    pytest.param(
        {"objects": [{"label": "a", "point": [0.5, 0.5], "normalized": True}]},
        {"image_width": 100, "image_height": 50},
        ConvertedOutput(
            (DetectedObject("a", "point", ((50, 25),)),), image_width=100, image_height=50
        ),
        id="generic document sized by the caller",
    ),
    pytest.param(
        [{"label": "a", "bbox": [1, 1, 2, 2]}],
        {},
        ConvertedOutput((box("a", 1, 1, 2, 2),)),
        id="generic list",
    ),
    pytest.param(
        [{"bbox": [1, 1, 2, 2], "category_name": "a", "score": 0.1}],
        {"image_width": 3, "image_height": 3},
        ConvertedOutput((box("a", 1, 1, 3, 3, 0.1),), image_width=3, image_height=3),
        id="coco",
    ),
    pytest.param(
        [{"class": "a", "box": [1, 1, 2, 2]}],
        {},
        ConvertedOutput((box("a", 1, 1, 2, 2),)),
        id="detection list",
    ),
    pytest.param(
        fixture("roboflow_detection_response.json"),
        {"image_width": 1, "image_height": 1},
        ConvertedOutput(
            (box("helmet", 108, 7, 271, 193, 0.544),), image_width=400, image_height=300
        ),
        id="roboflow's own size wins",
    ),
]


@pytest.mark.parametrize(("doc", "size", "expected"), CONVERTED)
def test_convert_output(doc: Any, size: dict[str, int], expected: ConvertedOutput) -> None:
    result = convert_output(doc, **size)
    assert approx(result.objects) == approx(expected.objects)
    assert result == ConvertedOutput(**{**vars(expected), "objects": result.objects})


def test_convert_output_labelstudio_keeps_score_version_and_skips() -> None:
    result = convert_output(fixture("labelstudio_ml_predict_response.json"))
    assert (result.score, result.model_version, len(result.objects), len(result.skipped)) == (
        0.87,
        "yolov8n-2024-05-01",
        2,
        1,
    )


@pytest.mark.parametrize("doc", ["hello Alice", {"caption": "x"}, None])
def test_convert_output_refuses_unrecognised(doc: Any) -> None:
    with pytest.raises(ConversionError, match="unrecognised prediction format; expected one of"):
        convert_output(doc)


@pytest.mark.parametrize(
    ("image", "field"),
    [
        ({"width": 0, "height": 5}, "image.width"),
        ({"width": 5, "height": 10**400}, "image.height"),
        ({"width": 5.0, "height": 5}, "image.width"),
        ({"width": 5}, "image.height"),
        ("640x480", "image"),
    ],
)
def test_convert_output_checks_the_generic_document_image(image: Any, field: str) -> None:
    with pytest.raises(ConversionError) as caught:
        convert_output({"objects": [], "image": image})
    assert caught.value.field == field


def test_conversion_error_is_a_value_error_with_field_and_message() -> None:
    error = ConversionError("objects[2].bbox", "needs x0 < x1 and y0 < y1")
    assert isinstance(error, ValueError)
    assert (error.field, error.message, str(error)) == (
        "objects[2].bbox",
        "needs x0 < x1 and y0 < y1",
        "objects[2].bbox: needs x0 < x1 and y0 < y1",
    )


def test_converters_do_not_change_their_input() -> None:
    doc = fixture("labelstudio_ml_predict_response.json")
    before = copy.deepcopy(doc)
    from_labelstudio(doc)
    assert doc == before
