"""Turn model outputs into `DetectedObject`s in pixel coordinates: one small converter per format.

Formats, and what `detect_format` recognises each by:
- generic, the relay's own: `{"objects": [...], "score"?, "image"?: {width, height}}` or a bare
  list of objects, each `{"label", "score"?, one of bbox/polygon/polyline/point, "bbox_format"?,
  "normalized"?}` (see `from_generic`). A list is generic when an item uses a generic-only key
  (polygon, polyline, point, bbox_format, normalized) or every item has a label and only generic
  keys, so `[{"label": "car", "bbox": [x0, y0, x1, y1]}]` is generic (xyxy), not COCO.
- Roboflow: `{"predictions": [{x, y (box centre), width, height, class, confidence}], "image"}`.
- Label Studio: an ML backend response `{"results": [...]}`, a task `{"predictions": [...]}`, one
  prediction `{"result": [...]}` or a bare list of regions (items with `type` and `value`).
- COCO results: a list whose items carry `category_id` or `category_name`, with `bbox` [x, y, w, h].
- detection list: items with a label (`label`/`class`/`name`/`class_name`) and a box
  (`bbox`/`box`/`xyxy`) as [x0, y0, x1, y1] or `{x1, y1, x2, y2}` / `{xmin, ymin, xmax, ymax}`.

When the image size is known, every point must lie within it, give or take `EDGE_TOLERANCE` pixels;
points in that margin are clamped onto the edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from relay.hooks.base import DetectedObject

GEOMETRIES = ("bbox", "polygon", "polyline", "point")
GENERIC_KEYS = frozenset({"label", "score", "bbox_format", "normalized", *GEOMETRIES})
GENERIC_ONLY_KEYS = frozenset({"polygon", "polyline", "point", "bbox_format", "normalized"})
BBOX_FORMATS = ("xyxy", "xywh")
MIN_POINTS = {"polygon": 3, "polyline": 2}
# PNG's limit on a side, and far beyond any real image; keeps sizes within float precision.
MAX_IMAGE_SIDE = 2**31 - 1
# Models round coordinates; a box ending at 640.3 on a 640 px image is on the edge, not outside.
EDGE_TOLERANCE = 0.5

LABEL_KEYS = ("label", "class", "name", "class_name")
SCORE_KEYS = ("score", "confidence")
BOX_KEYS = ("bbox", "box", "xyxy")
CORNER_KEYS = (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"))
COCO_KEYS = frozenset({"category_id", "category_name"})
FORMATS = ("generic", "roboflow", "labelstudio", "coco", "detection_list")

Size = tuple[int, int]  # an image's (width, height) in pixels

_XYXY_ORDER = "needs x0 < x1 and y0 < y1"
_POSITIVE_SIZE = "needs a positive width and height"


class ConversionError(ValueError):
    """A model output that cannot be converted; `field` is the path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ConvertedOutput:
    """Objects from one model output, with what the format says about the whole prediction."""

    objects: tuple[DetectedObject, ...]
    score: float | None = None  # the format's overall score, when it has one
    model_version: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    skipped: tuple[str, ...] = ()  # parts not converted (Label Studio masks, choices), and why


@dataclass(frozen=True)
class _Frame:
    """The image size points are checked against; None where unknown."""

    width: float | None = None
    height: float | None = None

    def fit(self, point: tuple[float, float], field: str) -> tuple[float, float]:
        """Return the point clamped onto the image, or raise if it lies outside."""
        return (
            _fit_axis(point[0], self.width, field, "x"),
            _fit_axis(point[1], self.height, field, "y"),
        )


def _fit_axis(value: float, size: float | None, field: str, axis: str) -> float:
    if size is None:
        return value
    if not -EDGE_TOLERANCE <= value <= size + EDGE_TOLERANCE:
        raise ConversionError(field, f"{axis} = {value:g} is outside the image (0 to {size:g})")
    return min(max(value, 0.0), float(size))


# --- value checks shared by every format -------------------------------------------------------


def _number(value: Any, field: str) -> float:
    # bool is an int subclass, but `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(field, "must be a number")
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no size limit; floats do
        number = math.inf
    if not math.isfinite(number):
        raise ConversionError(field, "must be a finite number")
    return number


def _numbers(value: Any, field: str, count: int) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != count:
        raise ConversionError(field, f"must be a list of {count} numbers")
    return [_number(item, f"{field}[{i}]") for i, item in enumerate(value)]


def _score(value: Any, field: str) -> float | None:
    if value is None:
        return None
    score = _number(value, field)
    if not 0.0 <= score <= 1.0:
        raise ConversionError(field, "must be between 0 and 1")
    return score


def _label(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConversionError(field, "must be a non-empty string")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConversionError(field, "must be an object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConversionError(field, "must be a list")
    return value


def _image_size(value: Any, field: str) -> tuple[int | None, int | None]:
    """Read an optional `{"width", "height"}` object of positive integers."""
    if value is None:
        return None, None
    image = _object(value, field)
    width = _side(image.get("width"), f"{field}.width")
    return width, _side(image.get("height"), f"{field}.height")


def _side(value: Any, field: str) -> int:
    """Check one side of an image size: a positive integer number of pixels."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_SIDE:
        raise ConversionError(field, f"must be an integer from 1 to {MAX_IMAGE_SIDE}")
    return value


def _box(
    label: str,
    corners: list[float],
    score: float | None,
    frame: _Frame,
    field: str,
    order_problem: str = _XYXY_ORDER,
) -> DetectedObject:
    """Build a bbox from [x0, y0, x1, y1] pixel corners, checked against the image."""
    x0, y0 = frame.fit((corners[0], corners[1]), field)
    x1, y1 = frame.fit((corners[2], corners[3]), field)
    if not (x0 < x1 and y0 < y1):
        raise ConversionError(field, order_problem)
    return DetectedObject(label=label, type="bbox", points=((x0, y0), (x1, y1)), score=score)


# --- generic ------------------------------------------------------------------------------------


def from_generic(
    objects: Any, *, image_width: int | None = None, image_height: int | None = None
) -> list[DetectedObject]:
    """Convert objects in the relay's generic format to pixel objects.

    Each object: `label` (required), `score` (0..1, optional) and exactly one geometry: `bbox`
    [4 numbers] read as `bbox_format` "xyxy" (default) or "xywh"; `polygon` (3+ [x, y] points);
    `polyline` (2+ points); or `point` [x, y]. With `normalized: true` the coordinates are
    fractions of the image size, which must then be given. Unknown keys are refused, so a typo
    such as `bbox_fromat` cannot silently change the geometry.
    """
    frame = _Frame(image_width, image_height)
    return [
        _generic_object(item, f"objects[{i}]", frame)
        for i, item in enumerate(_list(objects, "objects"))
    ]


def _generic_object(value: Any, path: str, frame: _Frame) -> DetectedObject:
    item = _object(value, path)
    unknown = sorted(set(item) - GENERIC_KEYS)
    if unknown:
        known = ", ".join(sorted(GENERIC_KEYS))
        raise ConversionError(f"{path}.{unknown[0]}", f"unknown field; an object has {known}")
    geometries = [name for name in GEOMETRIES if name in item]
    if len(geometries) != 1:
        problem = "has no geometry" if not geometries else f"has {' and '.join(geometries)}"
        raise ConversionError(path, f"{problem}; give exactly one of {', '.join(GEOMETRIES)}")
    kind = geometries[0]
    label = _label(item.get("label"), f"{path}.label")
    score = _score(item.get("score"), f"{path}.score")
    scale = _normalized_scale(item.get("normalized", False), frame, f"{path}.normalized")
    field = f"{path}.{kind}"
    if kind == "bbox":
        return _generic_box(item, label, score, scale, frame, path)
    if "bbox_format" in item:
        raise ConversionError(f"{path}.bbox_format", "applies to bbox only")
    if kind == "point":
        raw = [_numbers(item["point"], field, 2)]
    else:
        raw = _point_list(item[kind], field, MIN_POINTS[kind])
    points = tuple(frame.fit((x * scale[0], y * scale[1]), field) for x, y in raw)
    return DetectedObject(label=label, type=kind, points=points, score=score)


def _normalized_scale(value: Any, frame: _Frame, field: str) -> tuple[float, float]:
    """Return what to multiply coordinates by: the image size if normalized, else 1."""
    if not isinstance(value, bool):
        raise ConversionError(field, "must be true or false")
    if not value:
        return 1.0, 1.0
    if frame.width is None or frame.height is None:
        raise ConversionError(field, "normalized coordinates need the image width and height")
    return float(frame.width), float(frame.height)


def _generic_box(
    item: dict[str, Any],
    label: str,
    score: float | None,
    scale: tuple[float, float],
    frame: _Frame,
    path: str,
) -> DetectedObject:
    bbox_format = item.get("bbox_format", "xyxy")
    if bbox_format not in BBOX_FORMATS:
        raise ConversionError(f"{path}.bbox_format", f"must be one of {', '.join(BBOX_FORMATS)}")
    x0, y0, a, b = _numbers(item["bbox"], f"{path}.bbox", 4)
    if bbox_format == "xywh":
        corners, order_problem = [x0, y0, x0 + a, y0 + b], _POSITIVE_SIZE
    else:
        corners, order_problem = [x0, y0, a, b], _XYXY_ORDER
    scaled = [value * scale[i % 2] for i, value in enumerate(corners)]
    return _box(label, scaled, score, frame, f"{path}.bbox", order_problem)


def _point_list(value: Any, field: str, minimum: int) -> list[list[float]]:
    if not isinstance(value, list) or len(value) < minimum:
        raise ConversionError(field, f"must be a list of at least {minimum} [x, y] points")
    return [_numbers(point, f"{field}[{i}]", 2) for i, point in enumerate(value)]


def _from_generic_doc(
    doc: dict[str, Any], image_width: int | None, image_height: int | None
) -> ConvertedOutput:
    width, height = _image_size(doc.get("image"), "image")
    width, height = width or image_width, height or image_height
    objects = from_generic(doc.get("objects"), image_width=width, image_height=height)
    return ConvertedOutput(
        objects=tuple(objects),
        score=_score(doc.get("score"), "score"),
        image_width=width,
        image_height=height,
    )


# --- Roboflow -----------------------------------------------------------------------------------


def from_roboflow(doc: Any) -> ConvertedOutput:
    """Convert a Roboflow detection response, whose x and y are the box centre in pixels."""
    doc = _object(doc, "body")
    width, height = _image_size(doc.get("image"), "image")
    frame = _Frame(width, height)
    objects = []
    for i, value in enumerate(_list(doc.get("predictions"), "predictions")):
        path = f"predictions[{i}]"
        item = _object(value, path)
        x, y, w, h = (_number(item.get(k), f"{path}.{k}") for k in ("x", "y", "width", "height"))
        if w <= 0 or h <= 0:
            raise ConversionError(path, _POSITIVE_SIZE)
        corners = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
        label = _label(item.get("class"), f"{path}.class")
        score = _score(item.get("confidence"), f"{path}.confidence")
        objects.append(_box(label, corners, score, frame, path))
    return ConvertedOutput(objects=tuple(objects), image_width=width, image_height=height)


# --- Label Studio -------------------------------------------------------------------------------


def from_labelstudio(doc: Any) -> ConvertedOutput:
    """Convert a Label Studio prediction: rectangles, polygons and keypoints, from percent.

    Accepts an ML backend response (`{"results": [...]}`), a task (`{"predictions": [...]}`), one
    prediction (`{"result": [...]}`) or a bare list of regions; there must be exactly one
    prediction, as it is one image's. Other region types (brushlabels, choices, ...) are skipped
    and listed in `skipped`.
    """
    prefix, prediction = _labelstudio_prediction(doc)
    objects: list[DetectedObject] = []
    skipped: list[str] = []
    sizes: list[Size] = []
    regions = _list(prediction.get("result"), f"{prefix}result")
    for i, value in enumerate(regions):
        path = f"{prefix}result[{i}]"
        region = _object(value, path)
        kind = region.get("type")
        if not isinstance(kind, str):
            raise ConversionError(f"{path}.type", "must be a string")
        convert = _LABELSTUDIO_REGIONS.get(kind)
        if convert is None:
            skipped.append(f"{path}: {kind} regions are not converted")
            continue
        size = _original_size(region, path)
        sizes.append(size)
        objects.append(convert(region, size, path))
    width, height = sizes[0] if sizes else (None, None)
    return ConvertedOutput(
        objects=tuple(objects),
        score=_score(prediction.get("score"), f"{prefix}score"),
        model_version=_optional_text(prediction.get("model_version"), f"{prefix}model_version"),
        image_width=width,
        image_height=height,
        skipped=tuple(skipped),
    )


def _labelstudio_prediction(doc: Any) -> tuple[str, dict[str, Any]]:
    """Find the one prediction in a Label Studio document; return its path prefix and itself."""
    if isinstance(doc, list):
        return "", {"result": doc}
    doc = _object(doc, "body")
    for key in ("results", "predictions"):
        if key in doc:
            predictions = _list(doc[key], key)
            if len(predictions) != 1:
                count = len(predictions)
                raise ConversionError(key, f"holds {count} predictions; expected this image's one")
            prediction = _object(predictions[0], f"{key}[0]")
            # An ML backend may state model_version once for all its results.
            return f"{key}[0].", {"model_version": doc.get("model_version"), **prediction}
    return "", doc


def _original_size(region: dict[str, Any], path: str) -> Size:
    rotation = region.get("image_rotation", 0)
    if rotation not in (0, None):
        # Coordinates would be relative to the rotated image, not the file.
        raise ConversionError(f"{path}.image_rotation", "rotated images are not supported")
    width = _side(region.get("original_width"), f"{path}.original_width")
    return width, _side(region.get("original_height"), f"{path}.original_height")


def _labelstudio_label(value: dict[str, Any], key: str, path: str) -> str:
    labels = value.get(key)
    if not isinstance(labels, list) or not labels:
        raise ConversionError(f"{path}.value.{key}", "must be a non-empty list of labels")
    return _label(labels[0], f"{path}.value.{key}[0]")


def _labelstudio_rectangle(region: dict[str, Any], size: Size, path: str) -> DetectedObject:
    value = _object(region.get("value"), f"{path}.value")
    frame = _Frame(*size)
    rotation = value.get("rotation")
    if rotation is not None and _number(rotation, f"{path}.value.rotation") != 0:
        raise ConversionError(
            f"{path}.value.rotation",
            f"rotated rectangles ({rotation:g} degrees) are not supported; send axis-aligned boxes",
        )
    x0, y0 = _percent_point(value, ("x", "y"), size, path)
    width, height = _percent_point(value, ("width", "height"), size, path)
    label = _labelstudio_label(value, "rectanglelabels", path)
    score = _score(region.get("score"), f"{path}.score")
    corners = [x0, y0, x0 + width, y0 + height]
    return _box(label, corners, score, frame, f"{path}.value", _POSITIVE_SIZE)


def _labelstudio_polygon(region: dict[str, Any], size: Size, path: str) -> DetectedObject:
    value = _object(region.get("value"), f"{path}.value")
    frame = _Frame(*size)
    field = f"{path}.value.points"
    raw = _point_list(value.get("points"), field, MIN_POINTS["polygon"])
    return DetectedObject(
        label=_labelstudio_label(value, "polygonlabels", path),
        type="polygon",
        points=tuple(frame.fit(_from_percent(x, y, size), field) for x, y in raw),
        score=_score(region.get("score"), f"{path}.score"),
    )


def _labelstudio_keypoint(region: dict[str, Any], size: Size, path: str) -> DetectedObject:
    value = _object(region.get("value"), f"{path}.value")
    frame = _Frame(*size)
    point = _percent_point(value, ("x", "y"), size, path)
    return DetectedObject(
        label=_labelstudio_label(value, "keypointlabels", path),
        type="point",
        points=(frame.fit(point, f"{path}.value"),),
        score=_score(region.get("score"), f"{path}.score"),
    )


def _percent_point(
    value: dict[str, Any], names: tuple[str, str], size: Size, path: str
) -> tuple[float, float]:
    """Read two percentages of the image's width and height from `value`, as pixels."""
    x, y = (_number(value.get(name), f"{path}.value.{name}") for name in names)
    return _from_percent(x, y, size)


def _from_percent(x: float, y: float, size: Size) -> tuple[float, float]:
    """Turn percentages of the image size (Label Studio's unit) into pixels."""
    return x * size[0] / 100, y * size[1] / 100


_LABELSTUDIO_REGIONS: dict[str, Callable[[dict[str, Any], Size, str], DetectedObject]] = {
    "rectanglelabels": _labelstudio_rectangle,
    "polygonlabels": _labelstudio_polygon,
    "keypointlabels": _labelstudio_keypoint,
}


def _optional_text(value: Any, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConversionError(field, "must be a string")
    return value


# --- COCO and detection lists -------------------------------------------------------------------


def from_coco(
    annotations: Any,
    categories: Mapping[int, str] | None = None,
    *,
    image_width: int | None = None,
    image_height: int | None = None,
) -> list[DetectedObject]:
    """Convert COCO-style results: `bbox` [x, y, w, h] and a score, in pixels.

    The label is `category_name` or `label` when given, else `category_id` looked up in
    `categories` (id → name).
    """
    frame = _Frame(image_width, image_height)
    objects = []
    for i, value in enumerate(_list(annotations, "annotations")):
        path = f"annotations[{i}]"
        item = _object(value, path)
        x, y, w, h = _numbers(item.get("bbox"), f"{path}.bbox", 4)
        label = _coco_label(item, categories or {}, path)
        score = _score(item.get("score"), f"{path}.score")
        objects.append(
            _box(label, [x, y, x + w, y + h], score, frame, f"{path}.bbox", _POSITIVE_SIZE)
        )
    return objects


def _coco_label(item: dict[str, Any], categories: Mapping[int, str], path: str) -> str:
    for key in ("category_name", "label"):
        if key in item:
            return _label(item[key], f"{path}.{key}")
    category_id = item.get("category_id")
    if isinstance(category_id, bool) or not isinstance(category_id, int):
        raise ConversionError(f"{path}.category_id", "must be an integer")
    if category_id not in categories:
        raise ConversionError(
            f"{path}.category_id", f"category {category_id} has no name; send category_name"
        )
    return categories[category_id]


def from_detection_list(
    items: Any, *, image_width: int | None = None, image_height: int | None = None
) -> list[DetectedObject]:
    """Convert a common detector output: dicts with a label, an optional score and an xyxy box.

    The label is the first of `label`, `class`, `name`, `class_name` holding a string (Ultralytics
    puts the class index in `class` and the name in `name`); the score is `score` or `confidence`;
    the box is `bbox`, `box` or `xyxy`, as [x0, y0, x1, y1] or `{x1, y1, x2, y2}` /
    `{xmin, ymin, xmax, ymax}`.
    """
    frame = _Frame(image_width, image_height)
    objects = []
    for i, value in enumerate(_list(items, "objects")):
        path = f"objects[{i}]"
        item = _object(value, path)
        label = _detection_label(item, path)
        score_key = next((k for k in SCORE_KEYS if k in item), "score")
        score = _score(item.get(score_key), f"{path}.{score_key}")
        box_key = next((k for k in BOX_KEYS if k in item), None)
        if box_key is None:
            raise ConversionError(path, f"has no box; give one of {', '.join(BOX_KEYS)}")
        corners = _corners(item[box_key], f"{path}.{box_key}")
        objects.append(_box(label, corners, score, frame, f"{path}.{box_key}"))
    return objects


def _detection_label(item: dict[str, Any], path: str) -> str:
    for key in LABEL_KEYS:
        if isinstance(item.get(key), str):
            return _label(item[key], f"{path}.{key}")
    raise ConversionError(path, f"has no label; give a string in one of {', '.join(LABEL_KEYS)}")


def _corners(value: Any, field: str) -> list[float]:
    if isinstance(value, dict):
        for keys in CORNER_KEYS:
            if all(k in value for k in keys):
                return [_number(value[k], f"{field}.{k}") for k in keys]
        raise ConversionError(field, "must have x1, y1, x2, y2 or xmin, ymin, xmax, ymax")
    return _numbers(value, field, 4)


# --- recognising a format -----------------------------------------------------------------------


def detect_format(doc: Any) -> str | None:
    """Name the format of a model output (one of FORMATS), or None if it is none of them."""
    if isinstance(doc, dict):
        if "objects" in doc:
            return "generic"
        if _is_labelstudio_doc(doc):
            return "labelstudio"
        if isinstance(doc.get("predictions"), list):
            return "roboflow"
        return None
    if not isinstance(doc, list):
        return None
    if not doc:
        return "generic"  # a detector that found nothing
    if not all(isinstance(item, dict) for item in doc):
        return None
    if all("type" in item and "value" in item for item in doc):
        return "labelstudio"
    if any(GENERIC_ONLY_KEYS & item.keys() for item in doc) or all(
        "label" in item and item.keys() <= GENERIC_KEYS for item in doc
    ):
        return "generic"
    if any(COCO_KEYS & item.keys() for item in doc):
        return "coco"
    if all(set(LABEL_KEYS) & item.keys() and set(BOX_KEYS) & item.keys() for item in doc):
        return "detection_list"
    return None


def _is_labelstudio_doc(doc: dict[str, Any]) -> bool:
    if "results" in doc or isinstance(doc.get("result"), list):
        return True
    predictions = doc.get("predictions")
    return isinstance(predictions, list) and any(
        isinstance(p, dict) and "result" in p for p in predictions
    )


_OBJECT_LIST_CONVERTERS: dict[str, Callable[..., list[DetectedObject]]] = {
    "generic": from_generic,
    "coco": from_coco,
    "detection_list": from_detection_list,
}


def convert_output(
    doc: Any, *, image_width: int | None = None, image_height: int | None = None
) -> ConvertedOutput:
    """Recognise a model output's format and convert it.

    `image_width` and `image_height` (e.g. from the webhook URL) are used where the output does
    not state its own image size, which wins when it does.
    """
    kind = detect_format(doc)
    if kind is None:
        raise ConversionError(
            "output", f"unrecognised prediction format; expected one of {', '.join(FORMATS)}"
        )
    if kind == "generic" and isinstance(doc, dict):
        converted = _from_generic_doc(doc, image_width, image_height)
    elif kind == "roboflow":
        converted = from_roboflow(doc)
    elif kind == "labelstudio":
        converted = from_labelstudio(doc)
    else:
        convert = _OBJECT_LIST_CONVERTERS[kind]
        objects = convert(doc, image_width=image_width, image_height=image_height)
        converted = ConvertedOutput(objects=tuple(objects))
    return replace(
        converted,
        image_width=converted.image_width or image_width,
        image_height=converted.image_height or image_height,
    )
