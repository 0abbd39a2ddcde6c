"""Pure checks of request bodies and query strings, reporting errors per field like DRF."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from relay.sandbox.errors import INVALID_PAGE, REQUIRED, FieldError, detail, field_error

TASK_TYPES = frozenset(
    {
        "segmentation-bitmap",
        "segmentation-bitmap-highres",
        "image-segmentation-sequence",
        "bboxes",
        "vector",
        "image-vector-sequence",
        "keypoints",
        "pointcloud-cuboid",
        "pointcloud-cuboid-sequence",
        "pointcloud-segmentation",
        "pointcloud-segmentation-sequence",
        "pointcloud-vector",
        "pointcloud-vector-sequence",
        "multisensor-sequence",
    }
)
CATEGORIES = frozenset(
    {"street_scenery", "garden", "agriculture", "satellite", "people", "medical", "fruit", "other"}
)
ROLES = frozenset({"labeler", "reviewer", "manager", "admin"})
LABEL_STATUSES = frozenset(
    {
        "REVIEWED",
        "REVIEWING_IN_PROGRESS",
        "LABELED",
        "LABELING_IN_PROGRESS",
        "REJECTED",
        "PRELABELED",
        "SKIPPED",
        "VERIFIED",
        "UNLABELED",
    }
)
# UNLABELED describes the absence of a label; it is a filter, not something to write.
WRITABLE_LABEL_STATUSES = LABEL_STATUSES - {"UNLABELED"}
SAMPLE_SORTS = frozenset({"name", "created_at", "priority", "gt_label__updated_at"})
ANNOTATION_TYPES = frozenset({"bbox", "polygon", "polyline", "point"})
# Fewest points each vector annotation type needs to mean anything; a bbox needs exactly 2.
MIN_POINTS = {"bbox": 2, "polygon": 3, "polyline": 2, "point": 1}
EXACT_POINTS = {"bbox": 2, "point": 1}
VECTOR_TASKS = frozenset({"vector", "bboxes", "keypoints"})
BITMAP_TASKS = frozenset({"segmentation-bitmap", "segmentation-bitmap-highres"})
DATASET_FLAGS = (
    "enable_ratings",
    "enable_skip_labeling",
    "enable_skip_reviewing",
    "enable_save_button",
    "enable_label_status_verified",
    "enable_same_dimensions_track_constraint",
    "enable_3d_region_of_interest",
    "enable_3d_cuboid_rotation",
    "enable_confirm_on_submit",
    "enable_interpolation",
    "use_timestamps_for_interpolation",
    "enable_object_linking",
    "enable_object_link_category_restrictions",
    "enable_extrapolation",
)
MAX_PER_PAGE = 1000
# Dataset and labelset names appear in URL paths, so they stay within a safe alphabet.
SLUG = re.compile(r"[\w.-]+")

Check = Callable[[Any], Any]


class Invalid(ValueError):
    """One field's value is wrong; the message says how."""


def text(value: Any) -> str:
    """A string (possibly empty)."""
    if value is None:
        raise Invalid("This field may not be null.")
    if not isinstance(value, str):
        raise Invalid("Not a valid string.")
    return value


def nonblank(value: Any) -> str:
    """A string with something in it."""
    if not text(value).strip():
        raise Invalid("This field may not be blank.")
    return value


def slug(value: Any) -> str:
    """A name that can sit in a URL path: letters, digits, '-', '_' and '.'."""
    if not SLUG.fullmatch(nonblank(value)):
        raise Invalid("Enter a valid name consisting of letters, numbers, '-', '_' or '.'.")
    return value


def path_safe(value: Any) -> str:
    """A non-blank name without a slash, so it can be the last part of a URL path."""
    if "/" in nonblank(value):
        raise Invalid("This name may not contain '/'.")
    return value


def boolean(value: Any) -> bool:
    """A JSON true or false."""
    if not isinstance(value, bool):
        raise Invalid("Must be a valid boolean.")
    return value


def integer(value: Any) -> int:
    """A JSON integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("A valid integer is required.")
    return value


def number(value: Any) -> float | int:
    """A finite JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("A valid number is required.")
    return value


def json_object(value: Any) -> dict:
    """A JSON object."""
    if not isinstance(value, dict):
        raise Invalid(f'Expected a dictionary of items but got type "{json_type(value)}".')
    return value


def choice(options: frozenset[str]) -> Check:
    """A check accepting only one of `options`."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid(f'"{value}" is not a valid choice.')
        return value

    return check


def optional(check: Check) -> Check:
    """`check`, but letting null through."""
    return lambda value: None if value is None else check(value)


def json_type(value: Any) -> str:
    """The Python-ish type name DRF puts into its messages."""
    return {dict: "dict", list: "list", str: "str", bool: "bool", int: "int", float: "float"}.get(
        type(value), "null"
    )


def clean(data: Any, checks: Mapping[str, Check], required: tuple[str, ...] = ()) -> dict:
    """Check every known field of `data`, reporting all bad or missing fields in one FieldError."""
    if not isinstance(data, dict):
        raise FieldError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {json_type(data)}."
                ]
            }
        )
    errors: dict[str, list[str]] = {name: [REQUIRED] for name in required if name not in data}
    cleaned = {}
    for name, check in checks.items():
        if name in data:
            try:
                cleaned[name] = check(data[name])
            except Invalid as exc:
                errors[name] = [str(exc)]
    if errors:
        raise FieldError(errors)
    return cleaned


def at(path: str, check: Check, value: Any) -> Any:
    """Run `check`, prefixing any complaint with where in the document it happened."""
    try:
        return check(value)
    except Invalid as exc:
        raise Invalid(f"{path}: {exc}") from None


def member(obj: dict, key: str, path: str, check: Check) -> Any:
    """Check the required member `key` of `obj`, naming `path` when it is missing or wrong."""
    if key not in obj:
        raise Invalid(f"{path}{key}: {REQUIRED}")
    return at(f"{path}{key}", check, obj[key])


def list_of(value: Any) -> list:
    """A JSON array."""
    if not isinstance(value, list):
        raise Invalid(f'Expected a list of items but got type "{json_type(value)}".')
    return value


# -- task attributes, sample attributes, label attributes -------------------------------------


def task_attributes(value: Any) -> dict:
    """The label editor's configuration; categories, when given, need a name and an integer id."""
    obj = json_object(value)
    if "categories" in obj:
        for i, category in enumerate(at("categories", list_of, obj["categories"])):
            path = f"categories[{i}]."
            at(f"categories[{i}]", json_object, category)
            member(category, "name", path, text)
            member(category, "id", path, integer)
    return obj


def url_holder(value: Any) -> dict:
    """An object with a non-blank `url`, like `{"url": "https://..."}`."""
    obj = json_object(value)
    member(obj, "url", "", nonblank)
    return obj


def sample_attributes(value: Any) -> dict:
    """Sample data: an image, a point cloud, or a sequence of frames of either."""
    obj = json_object(value)
    if "image" in obj:
        at("image", url_holder, obj["image"])
    elif "pcd" in obj:
        at("pcd", url_holder, obj["pcd"])
    elif "frames" in obj:
        frames = at("frames", list_of, obj["frames"])
        if not frames:
            raise Invalid("frames: This list may not be empty.")
        for i, frame in enumerate(frames):
            at(f"frames[{i}]", json_object, frame)
            key = "pcd" if "pcd" in frame else "image"
            member(frame, key, f"frames[{i}].", url_holder)
    else:
        raise Invalid('image: This field is required, e.g. {"image": {"url": "https://..."}}.')
    return obj


def point(value: Any) -> list:
    """An [x, y] pair of numbers."""
    pair = list_of(value)
    if len(pair) != 2:
        raise Invalid("A point is a list of 2 numbers [x, y].")
    for coordinate in pair:
        number(coordinate)
    return pair


def annotations(obj: dict) -> list:
    """The annotation list every image label has, each entry with integer id and category_id."""
    items = member(obj, "annotations", "", list_of)
    for i, item in enumerate(items):
        at(f"annotations[{i}]", json_object, item)
        member(item, "id", f"annotations[{i}].", integer)
        member(item, "category_id", f"annotations[{i}].", integer)
    return items


def vector_annotation(item: dict, path: str, *, bbox_only: bool) -> None:
    """One polygon, polyline, point or bbox with its points."""
    kind = member(
        item, "type", path, choice(frozenset({"bbox"}) if bbox_only else ANNOTATION_TYPES)
    )
    points = member(item, "points", path, list_of)
    for j, xy in enumerate(points):
        at(f"{path}points[{j}]", point, xy)
    if kind in EXACT_POINTS and len(points) != EXACT_POINTS[kind]:
        raise Invalid(f"{path}points: A {kind} has exactly {EXACT_POINTS[kind]} point(s).")
    if len(points) < MIN_POINTS[kind]:
        raise Invalid(f"{path}points: A {kind} needs at least {MIN_POINTS[kind]} points.")


def label_attributes(task_type: str) -> Check:
    """A check of label attributes in the format of the dataset's task type."""

    def check(value: Any) -> dict:
        obj = json_object(value)
        if task_type in VECTOR_TASKS:
            for i, item in enumerate(annotations(obj)):
                vector_annotation(item, f"annotations[{i}].", bbox_only=task_type == "bboxes")
        elif task_type in BITMAP_TASKS:
            annotations(obj)
            member(obj, "segmentation_bitmap", "", url_holder)
        if "image_attributes" in obj:
            at("image_attributes", json_object, obj["image_attributes"])
        return obj

    return check


# -- request bodies ---------------------------------------------------------------------------

DATASET_CHECKS: dict[str, Check] = {
    "name": slug,
    "description": text,
    "task_type": choice(TASK_TYPES),
    "task_attributes": task_attributes,
    "category": choice(CATEGORIES),
    "public": boolean,
    "archived": boolean,
    "readme": text,
    "metadata": json_object,
    "data_type": nonblank,
    "labeling_inactivity_timeout_seconds": optional(integer),
    "region_of_interest": optional(json_object),
    **dict.fromkeys(DATASET_FLAGS, boolean),
}
SAMPLE_CHECKS: dict[str, Check] = {
    "name": nonblank,
    "attributes": sample_attributes,
    "metadata": json_object,
    "priority": number,
    "readme": text,
    "assigned_labeler": optional(nonblank),
    "assigned_reviewer": optional(nonblank),
}
RELEASE_CHECKS: dict[str, Check] = {"name": path_safe, "description": text}
LABELSET_CHECKS: dict[str, Check] = {"name": slug, "description": text}
COLLABORATOR_CHECKS: dict[str, Check] = {"user": nonblank, "role": choice(ROLES)}


def dataset_body(data: Any, *, partial: bool = False) -> dict:
    """Fields of a dataset create (name required) or update."""
    return clean(data, DATASET_CHECKS, () if partial else ("name",))


def sample_body(data: Any, *, partial: bool = False) -> dict:
    """Fields of a sample create (name and attributes required) or update."""
    return clean(data, SAMPLE_CHECKS, () if partial else ("name", "attributes"))


def samples_bulk_body(data: Any) -> list[dict]:
    """A list of sample creates; errors come back per item, as DRF's list serializer does."""
    if not isinstance(data, list):
        raise FieldError(
            {"non_field_errors": [f'Expected a list of items but got type "{json_type(data)}".']}
        )
    cleaned, errors = [], []
    for item in data:
        try:
            cleaned.append(sample_body(item))
            errors.append({})
        except FieldError as exc:
            errors.append(exc.errors)
    if any(errors):
        raise FieldError(errors)
    return cleaned


def uuids_body(data: Any) -> list[str]:
    """The `{"uuids": [...]}` of a bulk sample delete: 1 to 1000 strings."""

    def check(value: Any) -> list[str]:
        items = list_of(value)
        if not 1 <= len(items) <= MAX_PER_PAGE:
            raise Invalid(f"Give between 1 and {MAX_PER_PAGE} uuids.")
        return [at(f"[{i}]", nonblank, item) for i, item in enumerate(items)]

    return clean(data, {"uuids": check}, ("uuids",))["uuids"]


def label_body(data: Any, task_type: str, *, partial: bool = False) -> dict:
    """Fields of a label write; attributes are checked against the dataset's task type."""
    checks = {
        "attributes": label_attributes(task_type),
        "label_status": choice(WRITABLE_LABEL_STATUSES),
        "score": optional(number),
    }
    return clean(data, checks, () if partial else ("attributes",))


def release_body(data: Any) -> dict:
    """Fields of a release create."""
    return clean(data, RELEASE_CHECKS, ("name",))


def labelset_body(data: Any) -> dict:
    """Fields of a labelset create."""
    return clean(data, LABELSET_CHECKS, ("name",))


def collaborator_body(data: Any, *, partial: bool = False) -> dict:
    """Fields of a collaborator add (user required) or role change (role required)."""
    return clean(data, COLLABORATOR_CHECKS, ("role",) if partial else ("user",))


# -- query strings ----------------------------------------------------------------------------


def paging(args: Mapping[str, str]) -> tuple[int, int]:
    """`page` (1-based; junk is DRF's "Invalid page.") and `per_page` (capped at 1000)."""
    page = positive_int(args.get("page", "1"))
    if page is None:
        raise detail(404, INVALID_PAGE)
    per_page = positive_int(args.get("per_page", str(MAX_PER_PAGE)))
    if per_page is None:
        raise field_error("per_page", "A valid positive integer is required.")
    return page, min(per_page, MAX_PER_PAGE)


def positive_int(raw: str) -> int | None:
    """A query-string integer of at least 1, or None; short, so it always fits SQLite."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < 1:
        return None
    return int(raw)


def label_statuses(raw: str | None) -> list[str]:
    """The comma list of `label_status` filters."""
    if raw is None:
        return []
    statuses = [status.strip().upper() for status in raw.split(",") if status.strip()]
    bad = [status for status in statuses if status not in LABEL_STATUSES]
    if bad:
        raise field_error("label_status", f'"{bad[0]}" is not a valid choice.')
    return statuses


def sample_sort(raw: str | None) -> tuple[str, bool] | None:
    """`sort=[-]field` as (field, descending), or None for insertion order."""
    if not raw:
        return None
    descending = raw.startswith("-")
    field = raw.removeprefix("-")
    if field not in SAMPLE_SORTS:
        raise field_error("sort", f'"{raw}" is not a valid choice.')
    return field, descending


def metadata_filters(raw: str | None) -> list[tuple[str, str]]:
    """`filters=key:value,...` as (key, value) pairs."""
    if not raw:
        return []
    pairs = []
    for part in raw.split(","):
        key, sep, value = part.partition(":")
        if not sep or not key:
            raise field_error("filters", f'"{part}" is not of the form key:value.')
        pairs.append((key, value))
    return pairs


def flag(raw: str | None) -> bool:
    """A query-string boolean such as `include_full_label=1`."""
    return (raw or "").lower() in {"1", "true", "yes"}
