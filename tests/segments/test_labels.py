"""Unit tests for the label-attribute builders, their validation, and the bitmap PNG codec."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from relay.segments.labels import (
    MAX_INSTANCE_ID,
    LabelError,
    bbox,
    bboxes_attributes,
    bitmap_png,
    point,
    polygon,
    polyline,
    read_bitmap_png,
    segmentation_bitmap_attributes,
    vector_attributes,
)

URL = "https://example.com/assets/jane/label.png"
BOX = {"id": 1, "category_id": 0, "type": "bbox", "points": [[1, 2], [30, 40]]}
TRIANGLE = {"id": 2, "category_id": 1, "type": "polygon", "points": [[0, 0], [10, 0], [5, 8]]}


class TestBuilders:
    @pytest.mark.parametrize(
        ("built", "expected"),
        [
            (
                bbox(1, 0, 10, 20, 110, 220),
                {
                    "id": 1,
                    "category_id": 0,
                    "type": "bbox",
                    "points": [[10.0, 20.0], [110.0, 220.0]],
                },
            ),
            (
                polygon(2, 1, [(0, 0), (10, 0), (5, 8.5)]),
                {
                    "id": 2,
                    "category_id": 1,
                    "type": "polygon",
                    "points": [[0.0, 0.0], [10.0, 0.0], [5.0, 8.5]],
                },
            ),
            (
                polyline(3, 4, [[0, 0], [3, 4]]),
                {"id": 3, "category_id": 4, "type": "polyline", "points": [[0.0, 0.0], [3.0, 4.0]]},
            ),
            (
                point(4, 2, 7, 9.25),
                {"id": 4, "category_id": 2, "type": "point", "points": [[7.0, 9.25]]},
            ),
            (
                bbox(5, 1, 0, 0, 1, 1, attributes={"occluded": True}),
                {
                    "id": 5,
                    "category_id": 1,
                    "type": "bbox",
                    "points": [[0.0, 0.0], [1.0, 1.0]],
                    "attributes": {"occluded": True},
                },
            ),
            (
                polygon(np.int64(6), np.int32(0), np.array([[0, 0], [2, 0], [1, 1]])),
                {
                    "id": 6,
                    "category_id": 0,
                    "type": "polygon",
                    "points": [[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]],
                },
            ),
        ],
    )
    def test_shapes_match_format_0_1(self, built: dict, expected: dict) -> None:
        assert built == expected
        assert all(type(v) is float for pair in built["points"] for v in pair)
        assert type(built["id"]) is int
        assert type(built["category_id"]) is int

    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (lambda: bbox(0, 0, 0, 0, 1, 1), "bbox.id must be a positive integer, got 0"),
            (lambda: bbox(-1, 0, 0, 0, 1, 1), "bbox.id must be a positive integer"),
            (lambda: bbox(1.0, 0, 0, 0, 1, 1), "bbox.id must be a positive integer, got 1.0"),
            (lambda: bbox(True, 0, 0, 0, 1, 1), "bbox.id must be a positive integer, got True"),
            (lambda: bbox("1", 0, 0, 0, 1, 1), "bbox.id must be a positive integer"),
            (lambda: bbox(1, -1, 0, 0, 1, 1), "bbox.category_id must be a non-negative integer"),
            (lambda: bbox(1, None, 0, 0, 1, 1), "bbox.category_id must be a non-negative"),
            (lambda: bbox(1, 0, 5, 0, 5, 1), "bbox x0 must be less than x1, got x0=5.0 x1=5.0"),
            (lambda: bbox(1, 0, 9, 0, 5, 1), "bbox x0 must be less than x1"),
            (lambda: bbox(1, 0, 0, 9, 1, 5), "bbox y0 must be less than y1, got y0=9.0 y1=5.0"),
            (lambda: bbox(1, 0, math.nan, 0, 1, 1), "bbox.points[0][0] must be a finite number"),
            (lambda: bbox(1, 0, 0, 0, math.inf, 1), "bbox.points[1][0] must be a finite"),
            (lambda: bbox(1, 0, 0, "0", 1, 1), "bbox.points[0][1] must be a finite number"),
            (lambda: bbox(1, 0, 0, False, 1, 1), "bbox.points[0][1] must be a finite number"),
            (lambda: polygon(1, 0, [[0, 0], [1, 1]]), "a polygon needs at least 3 points, got 2"),
            (lambda: polygon(1, 0, []), "a polygon needs at least 3 points, got 0"),
            (lambda: polygon(1, 0, "abc"), "polygon.points must be a list of [x, y] pairs"),
            (lambda: polygon(1, 0, [[0, 0], [1, 1], [2]]), "polygon.points[2] must be an [x, y]"),
            (lambda: polygon(1, 0, [[0, 0], [1, 1], 5]), "polygon.points[2] must be an [x, y]"),
            (lambda: polyline(1, 0, [[0, 0]]), "a polyline needs at least 2 points, got 1"),
            (lambda: point(1, 0, None, 0), "point.points[0][0] must be a finite number"),
            (lambda: point(1, 0, 0, 0, attributes=[1]), "point.attributes must be an object"),
        ],
    )
    def test_rejects_bad_values(self, build: Any, message: str) -> None:
        with pytest.raises(LabelError, match=re.escape(message)):
            build()

    def test_label_error_is_a_value_error(self) -> None:
        assert issubclass(LabelError, ValueError)


class TestVectorAttributes:
    def test_wraps_annotations_in_format_0_1(self) -> None:
        annotations = [bbox(1, 0, 1, 2, 3, 4), polygon(2, 1, [[0, 0], [1, 0], [1, 1]])]
        assert vector_attributes(annotations) == {
            "format_version": "0.1",
            "annotations": annotations,
        }

    def test_normalises_plain_dicts(self) -> None:
        attributes = vector_attributes([BOX, TRIANGLE], {"weather": "sunny"})
        assert attributes == {
            "format_version": "0.1",
            "annotations": [bbox(1, 0, 1, 2, 30, 40), polygon(2, 1, [[0, 0], [10, 0], [5, 8]])],
            "image_attributes": {"weather": "sunny"},
        }

    def test_empty_label_is_allowed(self) -> None:
        assert vector_attributes([]) == {"format_version": "0.1", "annotations": []}

    def test_points_on_the_image_border_are_inside(self) -> None:
        attributes = vector_attributes([bbox(1, 0, 0, 0, 640, 480)], width=640, height=480)
        assert attributes["annotations"][0]["points"] == [[0.0, 0.0], [640.0, 480.0]]

    @pytest.mark.parametrize(
        ("annotations", "options", "message"),
        [
            ({"id": 1}, {}, "annotations must be a list, got dict"),
            ([BOX, "bbox"], {}, "annotations[1] must be an object, got str"),
            ([{**BOX, "id": 0}], {}, "annotations[0].id must be a positive integer, got 0"),
            (
                [BOX, {**TRIANGLE, "id": 1}],
                {},
                "annotations[1].id 1 is already used by annotations[0]",
            ),
            ([{**BOX, "category_id": -2}], {}, "annotations[0].category_id must be a non-negative"),
            (
                [{k: v for k, v in BOX.items() if k != "points"}],
                {},
                "annotations[0].points is required",
            ),
            (
                [{k: v for k, v in BOX.items() if k != "type"}],
                {},
                "annotations[0].type is required",
            ),
            ([{**BOX, "track_id": 3}], {}, "annotations[0].track_id is not a field"),
            (
                [{**BOX, "type": "keypoint"}],
                {},
                "annotations[0].type must be one of 'bbox', 'polygon'",
            ),
            (
                [{**BOX, "points": [[0, 0], [1, 1], [2, 2]]}],
                {},
                "a bbox needs exactly 2 points, got 3",
            ),
            (
                [{**BOX, "points": [[5, 0], [1, 1]]}],
                {},
                "annotations[0].points: bbox x0 must be less",
            ),
            (
                [{**BOX, "type": "point"}],
                {},
                "annotations[0].points: a point needs exactly 1 point, got 2",
            ),
            (
                [TRIANGLE, {**BOX, "id": 9, "points": [[0, 0], [1, math.nan]]}],
                {},
                "annotations[1].points[1][1] must be a finite number, got nan",
            ),
            ([BOX], {"width": 20}, "annotations[0].points[1][0] = 30.0 is outside the width 0..20"),
            ([BOX], {"height": 39.5}, "annotations[0].points[1][1] = 40.0 is outside the height"),
            (
                [{**TRIANGLE, "points": [[-1, 0], [1, 0], [1, 1]]}],
                {"width": 20},
                "annotations[0].points[0][0] = -1.0 is outside the width",
            ),
            ([BOX], {"width": 0}, "width must be a positive number, got 0"),
            ([BOX], {"height": "480"}, "height must be a positive number"),
            ([{**BOX, "attributes": "x"}], {}, "annotations[0].attributes must be an object"),
        ],
    )
    def test_rejects_bad_annotations(self, annotations: Any, options: dict, message: str) -> None:
        with pytest.raises(LabelError, match=re.escape(message)):
            vector_attributes(annotations, **options)

    def test_image_attributes_must_be_an_object(self) -> None:
        with pytest.raises(LabelError, match="image_attributes must be an object"):
            vector_attributes([BOX], ["sunny"])


class TestBboxesAttributes:
    def test_accepts_bboxes(self) -> None:
        attributes = bboxes_attributes([BOX], width=100, height=100)
        assert attributes == {"format_version": "0.1", "annotations": [bbox(1, 0, 1, 2, 30, 40)]}

    @pytest.mark.parametrize(
        "annotation",
        [TRIANGLE, polyline(2, 0, [[0, 0], [1, 1]]), point(2, 0, 1, 1)],
    )
    def test_rejects_other_types(self, annotation: dict) -> None:
        with pytest.raises(
            LabelError, match=re.escape("annotations[1].type must be one of 'bbox', got")
        ):
            bboxes_attributes([BOX, annotation])


class TestSegmentationBitmapAttributes:
    def test_shape(self) -> None:
        annotations = [
            {"id": 1, "category_id": 0},
            {"id": 2, "category_id": 3, "attributes": {"a": 1}},
        ]
        assert segmentation_bitmap_attributes(annotations, URL, {"weather": "rain"}) == {
            "format_version": "0.1",
            "annotations": annotations,
            "segmentation_bitmap": {"url": URL},
            "image_attributes": {"weather": "rain"},
        }

    @pytest.mark.parametrize(
        ("annotations", "url", "message"),
        [
            ([{"id": 1, "category_id": 0}], "", "bitmap_url must be a non-empty URL"),
            ([{"id": 1, "category_id": 0}], None, "bitmap_url must be a non-empty URL"),
            ([{"id": 0, "category_id": 0}], URL, "annotations[0].id must be a positive integer"),
            ([{"id": 1, "category_id": 1.5}], URL, "annotations[0].category_id must be a non-neg"),
            ([{"id": 1}], URL, "annotations[0].category_id is required"),
            (
                [{"id": 1, "category_id": 0, "type": "bbox"}],
                URL,
                "annotations[0].type is not a field",
            ),
            (
                [{"id": 1, "category_id": 0}, {"id": 1, "category_id": 2}],
                URL,
                "annotations[1].id 1 is already used by annotations[0]",
            ),
            ("nope", URL, "annotations must be a list"),
        ],
    )
    def test_rejects_bad_input(self, annotations: Any, url: Any, message: str) -> None:
        with pytest.raises(LabelError, match=re.escape(message)):
            segmentation_bitmap_attributes(annotations, url)


class TestBitmapPng:
    @pytest.mark.parametrize(
        "ids",
        [
            [[0]],
            [[0, 1, 2], [3, 255, 256]],
            [[65535, 65536], [70000, MAX_INSTANCE_ID]],
            np.arange(64, dtype=np.uint16).reshape(8, 8),
            np.full((3, 5), 7, dtype=np.int64),
        ],
    )
    def test_round_trip(self, ids: Any) -> None:
        decoded = read_bitmap_png(bitmap_png(ids))
        assert decoded.dtype == np.uint32
        np.testing.assert_array_equal(decoded, np.asarray(ids))

    def test_is_an_rgba_png_with_the_id_in_rgb_and_opaque_alpha(self) -> None:
        with Image.open(io.BytesIO(bitmap_png([[1, 256, 65536 + 2]]))) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (3, 1))
            pixels = np.asarray(image).tolist()
        assert pixels == [[[1, 0, 0, 255], [0, 1, 0, 255], [2, 0, 1, 255]]]

    def test_matches_the_official_sdk_encoder(self) -> None:
        utils = pytest.importorskip("segments.utils")
        ids = np.array([[0, 1, 2], [300, 70000, MAX_INSTANCE_ID]], dtype=np.uint32)
        with (
            Image.open(utils.bitmap2file(ids)) as theirs,
            Image.open(io.BytesIO(bitmap_png(ids))) as ours,
        ):
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))

    def test_reads_rgb_pngs_too(self) -> None:
        buffer = io.BytesIO()
        Image.fromarray(np.array([[[5, 1, 0], [0, 0, 0]]], dtype=np.uint8)).save(buffer, "PNG")
        np.testing.assert_array_equal(read_bitmap_png(buffer.getvalue()), [[261, 0]])

    @pytest.mark.parametrize(
        ("ids", "message"),
        [
            ([1, 2, 3], "non-empty 2-D grid, got shape (3,)"),
            ([[[1]]], "non-empty 2-D grid, got shape (1, 1, 1)"),
            ([[]], "non-empty 2-D grid, got shape (1, 0)"),
            ([[1, 2], [3]], "instance_ids must be a 2-D grid"),
            ([[1.0, 2.0]], "instance_ids must be integers, got dtype float64"),
            ([[True, False]], "instance_ids must be integers, got dtype bool"),
            ([[-1, 0]], "instance ids must be within 0..16777215, got -1..0"),
            ([[0, MAX_INSTANCE_ID + 1]], "instance ids must be within 0..16777215"),
        ],
    )
    def test_rejects_bad_grids(self, ids: Any, message: str) -> None:
        with pytest.raises(LabelError, match=re.escape(message)):
            bitmap_png(ids)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"not a png", "not a readable PNG"),
            (bitmap_png([[1, 2]])[:40], "not a readable PNG"),
        ],
    )
    def test_read_rejects_unreadable_data(self, data: bytes, message: str) -> None:
        with pytest.raises(LabelError, match=re.escape(message)):
            read_bitmap_png(data)

    @pytest.mark.parametrize(("mode", "fmt"), [("L", "PNG"), ("P", "PNG"), ("RGBA", "BMP")])
    def test_read_rejects_other_images(self, mode: str, fmt: str) -> None:
        buffer = io.BytesIO()
        Image.new(mode, (2, 2)).save(buffer, fmt)
        with pytest.raises(LabelError, match=re.escape("expected an RGB(A) PNG")):
            read_bitmap_png(buffer.getvalue())
