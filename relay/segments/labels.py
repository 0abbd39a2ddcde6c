"""Label attributes in Segments.ai's format_version "0.1", built and checked before upload.

Image task types only: `vector` and `bboxes` labels list annotations with points in pixels;
`segmentation-bitmap` labels list {id, category_id} and point at a PNG whose RGB value is the id.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from PIL import Image

FORMAT_VERSION = "0.1"
# Minimum and maximum point counts per vector annotation type (None: no maximum).
POINT_COUNTS: dict[str, tuple[int, int | None]] = {
    "bbox": (2, 2),
    "polygon": (3, None),
    "polyline": (2, None),
    "point": (1, 1),
}
# The bitmap stores an instance id in the 24 RGB bits of each pixel.
MAX_INSTANCE_ID = 2**24 - 1

# Required fields per annotation; "attributes" (per-object attributes) is optional everywhere.
_VECTOR_FIELDS = frozenset({"id", "category_id", "type", "points"})
_BITMAP_FIELDS = frozenset({"id", "category_id"})


class LabelError(ValueError):
    """Label attributes that Segments.ai would reject or misread."""


def bbox(
    id: int,
    category_id: int,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> dict:
    """Return a bounding box annotation from its top-left (x0, y0) and bottom-right (x1, y1)."""
    return _vector_annotation(id, category_id, "bbox", [[x0, y0], [x1, y1]], attributes)


def polygon(
    id: int,
    category_id: int,
    points: Sequence[Sequence[float]],
    *,
    attributes: Mapping[str, Any] | None = None,
) -> dict:
    """Return a closed polygon annotation from at least three [x, y] points."""
    return _vector_annotation(id, category_id, "polygon", points, attributes)


def polyline(
    id: int,
    category_id: int,
    points: Sequence[Sequence[float]],
    *,
    attributes: Mapping[str, Any] | None = None,
) -> dict:
    """Return an open polyline annotation from at least two [x, y] points."""
    return _vector_annotation(id, category_id, "polyline", points, attributes)


def point(
    id: int,
    category_id: int,
    x: float,
    y: float,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> dict:
    """Return a single-point annotation."""
    return _vector_annotation(id, category_id, "point", [[x, y]], attributes)


def vector_attributes(
    annotations: Sequence[Mapping[str, Any]],
    image_attributes: Mapping[str, Any] | None = None,
    *,
    width: float | None = None,
    height: float | None = None,
) -> dict:
    """Return checked attributes for a `vector` label; points must lie in the image when sized."""
    return _vector_label(annotations, image_attributes, tuple(POINT_COUNTS), width, height)


def bboxes_attributes(
    annotations: Sequence[Mapping[str, Any]],
    image_attributes: Mapping[str, Any] | None = None,
    *,
    width: float | None = None,
    height: float | None = None,
) -> dict:
    """Return checked attributes for a `bboxes` label, which allows bbox annotations only."""
    return _vector_label(annotations, image_attributes, ("bbox",), width, height)


def segmentation_bitmap_attributes(
    annotations: Sequence[Mapping[str, Any]],
    bitmap_url: str,
    image_attributes: Mapping[str, Any] | None = None,
) -> dict:
    """Return checked attributes for a `segmentation-bitmap` label whose PNG is at `bitmap_url`."""
    if not isinstance(bitmap_url, str) or not bitmap_url.strip():
        raise LabelError(f"bitmap_url must be a non-empty URL, got {bitmap_url!r}")
    checked = [
        _bitmap_annotation(annotation, f"annotations[{index}]")
        for index, annotation in enumerate(_annotation_list(annotations))
    ]
    _check_unique_ids(checked)
    attributes = {
        "format_version": FORMAT_VERSION,
        "annotations": checked,
        "segmentation_bitmap": {"url": bitmap_url},
    }
    return _with_image_attributes(attributes, image_attributes)


def bitmap_png(instance_ids: Sequence[Sequence[int]] | np.ndarray) -> bytes:
    """Encode a 2-D grid of instance ids as the RGBA PNG Segments.ai expects (0 = unlabeled)."""
    try:
        ids = np.asarray(instance_ids)
    except ValueError as exc:  # ragged rows
        raise LabelError(f"instance_ids must be a 2-D grid: {exc}") from exc
    if ids.ndim != 2 or ids.size == 0:
        raise LabelError(f"instance_ids must be a non-empty 2-D grid, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise LabelError(f"instance_ids must be integers, got dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() > MAX_INSTANCE_ID:
        raise LabelError(
            f"instance ids must be within 0..{MAX_INSTANCE_ID}, got {ids.min()}..{ids.max()}"
        )
    ids = ids.astype(np.uint32)
    # Byte order is explicit (R = low byte) so the result does not depend on the host's endianness.
    rgba = np.empty((*ids.shape, 4), dtype=np.uint8)
    rgba[..., 0] = ids & 0xFF
    rgba[..., 1] = (ids >> 8) & 0xFF
    rgba[..., 2] = (ids >> 16) & 0xFF
    rgba[..., 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return buffer.getvalue()


def read_bitmap_png(data: bytes) -> np.ndarray:
    """Decode a segmentation bitmap PNG into a 2-D uint32 array of instance ids."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG" or image.mode not in ("RGB", "RGBA"):
                raise LabelError(f"expected an RGB(A) PNG, got {image.format} {image.mode}")
            rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
    except OSError as exc:  # Pillow's "cannot identify image file" and truncated data
        raise LabelError(f"not a readable PNG: {exc}") from exc
    return rgba[..., 0] | (rgba[..., 1] << 8) | (rgba[..., 2] << 16)


def _vector_annotation(
    id: int,
    category_id: int,
    type: str,
    points: Any,
    attributes: Mapping[str, Any] | None,
) -> dict:
    annotation = {"id": id, "category_id": category_id, "type": type, "points": points}
    if attributes is not None:
        annotation["attributes"] = attributes
    return _checked_vector_annotation(annotation, type, tuple(POINT_COUNTS), None, None)


def _vector_label(
    annotations: Sequence[Mapping[str, Any]],
    image_attributes: Mapping[str, Any] | None,
    types: tuple[str, ...],
    width: float | None,
    height: float | None,
) -> dict:
    for name, size in (("width", width), ("height", height)):
        if size is not None and not (_is_number(size) and size > 0):
            raise LabelError(f"{name} must be a positive number, got {size!r}")
    checked = [
        _checked_vector_annotation(annotation, f"annotations[{index}]", types, width, height)
        for index, annotation in enumerate(_annotation_list(annotations))
    ]
    _check_unique_ids(checked)
    attributes = {"format_version": FORMAT_VERSION, "annotations": checked}
    return _with_image_attributes(attributes, image_attributes)


def _checked_vector_annotation(
    annotation: Any,
    where: str,
    types: tuple[str, ...],
    width: float | None,
    height: float | None,
) -> dict:
    checked = _checked_ids(annotation, where, _VECTOR_FIELDS)
    kind = annotation.get("type")
    if kind not in types:
        allowed = ", ".join(repr(t) for t in types)
        raise LabelError(f"{where}.type must be one of {allowed}, got {kind!r}")
    points = _checked_points(annotation.get("points"), kind, where)
    if kind == "bbox":
        _check_bbox_corners(points, where)
    _check_within_image(points, where, width, height)
    checked.update(type=kind, points=points)
    if "attributes" in annotation:
        checked["attributes"] = _checked_object(annotation["attributes"], f"{where}.attributes")
    return checked


def _bitmap_annotation(annotation: Any, where: str) -> dict:
    checked = _checked_ids(annotation, where, _BITMAP_FIELDS)
    if "attributes" in annotation:
        checked["attributes"] = _checked_object(annotation["attributes"], f"{where}.attributes")
    return checked


def _checked_ids(annotation: Any, where: str, required: frozenset[str]) -> dict:
    if not isinstance(annotation, Mapping):
        raise LabelError(f"{where} must be an object, got {type(annotation).__name__}")
    missing = sorted(required - set(annotation))
    if missing:
        raise LabelError(f"{where}.{missing[0]} is required")
    unknown = sorted(str(key) for key in set(annotation) - required - {"attributes"})
    if unknown:
        raise LabelError(f"{where}.{unknown[0]} is not a field of this label type")
    annotation_id, category_id = annotation["id"], annotation["category_id"]
    if not _is_integer(annotation_id) or annotation_id < 1:
        raise LabelError(f"{where}.id must be a positive integer, got {annotation_id!r}")
    if not _is_integer(category_id) or category_id < 0:
        raise LabelError(f"{where}.category_id must be a non-negative integer, got {category_id!r}")
    return {"id": int(annotation_id), "category_id": int(category_id)}


def _checked_points(points: Any, kind: str, where: str) -> list[list[float]]:
    if isinstance(points, np.ndarray):
        points = points.tolist()
    if not isinstance(points, list | tuple):
        raise LabelError(f"{where}.points must be a list of [x, y] pairs, got {points!r}")
    fewest, most = POINT_COUNTS[kind]
    if len(points) < fewest or (most is not None and len(points) > most):
        wanted = f"exactly {fewest}" if fewest == most else f"at least {fewest}"
        noun = "point" if fewest == 1 else "points"
        raise LabelError(f"{where}.points: a {kind} needs {wanted} {noun}, got {len(points)}")
    checked = []
    for index, pair in enumerate(points):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise LabelError(f"{where}.points[{index}] must be an [x, y] pair, got {pair!r}")
        for axis, value in enumerate(pair):
            if not _is_number(value) or not math.isfinite(value):
                raise LabelError(
                    f"{where}.points[{index}][{axis}] must be a finite number, got {value!r}"
                )
        checked.append([float(pair[0]), float(pair[1])])
    return checked


def _check_bbox_corners(points: list[list[float]], where: str) -> None:
    (x0, y0), (x1, y1) = points
    if not x0 < x1:
        raise LabelError(f"{where}.points: bbox x0 must be less than x1, got x0={x0} x1={x1}")
    if not y0 < y1:
        raise LabelError(f"{where}.points: bbox y0 must be less than y1, got y0={y0} y1={y1}")


def _check_within_image(
    points: list[list[float]], where: str, width: float | None, height: float | None
) -> None:
    for index, (x, y) in enumerate(points):
        if width is not None and not 0 <= x <= width:
            raise LabelError(f"{where}.points[{index}][0] = {x} is outside the width 0..{width}")
        if height is not None and not 0 <= y <= height:
            raise LabelError(f"{where}.points[{index}][1] = {y} is outside the height 0..{height}")


def _check_unique_ids(annotations: list[dict]) -> None:
    first_index: dict[int, int] = {}
    for index, annotation in enumerate(annotations):
        earlier = first_index.setdefault(annotation["id"], index)
        if earlier != index:
            raise LabelError(
                f"annotations[{index}].id {annotation['id']} is already used by "
                f"annotations[{earlier}]"
            )


def _annotation_list(annotations: Any) -> Sequence[Any]:
    if not isinstance(annotations, list | tuple):
        raise LabelError(f"annotations must be a list, got {type(annotations).__name__}")
    return annotations


def _checked_object(value: Any, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise LabelError(f"{where} must be an object, got {type(value).__name__}")
    return dict(value)


def _with_image_attributes(attributes: dict, image_attributes: Mapping[str, Any] | None) -> dict:
    if image_attributes is not None:
        attributes["image_attributes"] = _checked_object(image_attributes, "image_attributes")
    return attributes


def _is_integer(value: Any) -> bool:
    # bool is an Integral too, but `True` as an id is always a mistake.
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
