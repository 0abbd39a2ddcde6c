"""Body and query checks, table-driven."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relay.sandbox.errors import ApiError, FieldError
from relay.sandbox.validation import (
    Invalid,
    label_attributes,
    label_statuses,
    paging,
    sample_attributes,
    sample_body,
    samples_bulk_body,
)


def vector(*annotations: dict) -> dict:
    return {"format_version": "0.1", "annotations": list(annotations)}


def shape(kind: str, points: list) -> dict:
    return {"id": 1, "category_id": 2, "type": kind, "points": points}


BITMAP = {"annotations": [{"id": 1, "category_id": 0}], "segmentation_bitmap": {"url": "u"}}

VALID_LABELS = [
    ("bboxes", vector(shape("bbox", [[0, 0], [1.5, 2]]))),
    ("vector", vector(shape("polygon", [[0, 0], [1, 0], [1, 1]]), shape("point", [[3, 4]]))),
    ("vector", vector(shape("polyline", [[0, 0], [1, 1]]))),
    ("keypoints", vector(shape("point", [[3, 4]]))),
    ("segmentation-bitmap", BITMAP),
    ("segmentation-bitmap-highres", {**BITMAP, "image_attributes": {"weather": "sunny"}}),
    ("pointcloud-cuboid", {"annotations": [{"anything": "goes"}]}),
]
INVALID_LABELS = [
    ("bboxes", {}, "annotations: This field is required."),
    ("bboxes", vector(shape("polygon", [[0, 0], [1, 0], [1, 1]])), "annotations[0].type"),
    (
        "bboxes",
        vector(shape("bbox", [[0, 0]])),
        "annotations[0].points: A bbox has exactly 2 points.",
    ),
    ("vector", vector(shape("point", [[0, 0], [1, 1]])), "A point has exactly 1 point."),
    ("vector", vector(shape("polygon", [[0, 0], [1, 1]])), "A polygon has at least 3 points."),
    ("vector", vector(shape("bbox", [[0, 0], [1, True]])), "annotations[0].points[1]"),
    ("vector", vector({**shape("bbox", [[0, 0], [1, 1]]), "id": "1"}), "annotations[0].id"),
    ("vector", vector(shape("bbox", "0,0,1,1")), "annotations[0].points"),
    ("vector", {"annotations": [5]}, "annotations[0]"),
    ("segmentation-bitmap", {"annotations": []}, "segmentation_bitmap: This field is required."),
    ("segmentation-bitmap", {**BITMAP, "segmentation_bitmap": {}}, "segmentation_bitmap.url: This"),
    ("segmentation-bitmap", {**BITMAP, "image_attributes": []}, "image_attributes"),
    ("pointcloud-cuboid", [], "Expected a dictionary"),
]


@pytest.mark.parametrize(("task_type", "attributes"), VALID_LABELS)
def test_valid_label_attributes_pass(task_type: str, attributes: dict) -> None:
    assert label_attributes(task_type)(attributes) == attributes


@pytest.mark.parametrize(("task_type", "attributes", "message"), INVALID_LABELS)
def test_invalid_label_attributes_say_where(task_type: str, attributes: Any, message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        label_attributes(task_type)(attributes)


@pytest.mark.parametrize(
    "attributes",
    [
        {"image": {"url": "https://x/a.jpg"}},
        {"pcd": {"url": "https://x/a.pcd", "type": "pcd"}},
        {"frames": [{"image": {"url": "https://x/1.jpg"}}, {"image": {"url": "https://x/2.jpg"}}]},
    ],
)
def test_valid_sample_attributes_pass(attributes: dict) -> None:
    assert sample_attributes(attributes) == attributes


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({}, "image: This field is required"),
        ({"image": "https://x/a.jpg"}, "image: Expected a dictionary"),
        ({"image": {"url": ""}}, "image.url: This field may not be blank."),
        ({"frames": []}, "frames: This list may not be empty."),
        ({"frames": [{"image": {}}]}, "frames[0].image.url: This field is required."),
        ({"frames": "x"}, "frames: Expected a list"),
    ],
)
def test_invalid_sample_attributes_say_where(attributes: dict, message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        sample_attributes(attributes)


def test_sample_body_reports_every_bad_field_at_once() -> None:
    with pytest.raises(FieldError) as caught:
        sample_body({"priority": "high", "metadata": None})

    assert sorted(caught.value.errors) == ["attributes", "metadata", "name", "priority"]


def test_bulk_errors_come_per_item() -> None:
    good = {"name": "a.jpg", "attributes": {"image": {"url": "u"}}}

    with pytest.raises(FieldError) as caught:
        samples_bulk_body([good, {"name": "b.jpg"}])

    assert caught.value.errors == [{}, {"attributes": ["This field is required."]}]


@pytest.mark.parametrize(
    ("args", "expected"),
    [({}, (1, 1000)), ({"page": "3", "per_page": "2"}, (3, 2)), ({"per_page": "5000"}, (1, 1000))],
)
def test_paging(args: dict, expected: tuple[int, int]) -> None:
    assert paging(args) == expected


@pytest.mark.parametrize(
    ("args", "status"),
    [({"page": "0"}, 404), ({"page": "-1"}, 404), ({"page": "²"}, 404), ({"per_page": "0"}, 400)],
)
def test_bad_paging(args: dict, status: int) -> None:
    with pytest.raises(ApiError) as caught:
        paging(args)

    assert caught.value.status == status


def test_label_statuses_split_and_check() -> None:
    assert label_statuses("LABELED, unlabeled") == ["LABELED", "UNLABELED"]
    with pytest.raises(FieldError):
        label_statuses("LABELED,DONE")
