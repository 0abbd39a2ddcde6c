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
# Points each vector annotation type needs to mean anything.
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
    """A value is wrong; the message says how, the path where inside the document."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message, path)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


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
    """The Python type name DRF puts into its messages."""
    return "null" if value is None else type(value).__name__


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
    """Run `check`, adding `path` (a key, or an `[index]`) in front of where a complaint is."""
    try:
        return check(value)
    except Invalid as exc:
        inner = exc.path if not exc.path or exc.path.startswith("[") else f".{exc.path}"
        raise Invalid(exc.message, f"{path}{inner}") from None


def member(obj: dict, key: str, check: Check) -> Any:
    """Check the required member `key` of `obj`."""
    if key not in obj:
        raise Invalid(REQUIRED, key)
    return at(key, check, obj[key])


def list_of(value: Any) -> list:
    """A JSON array."""
    if not isinstance(value, list):
        raise Invalid(f'Expected a list of items but got type "{json_type(value)}".')
    return value


def each(check: Check) -> Check:
    """A check of a JSON array whose items all pass `check`."""

    def check_items(value: Any) -> list:
        items = list_of(value)
        for i, item in enumerate(items):
            at(f"[{i}]", check, item)
        return items

    return check_items


def nonempty(check: Check) -> Check:
    """`check`, then refuse an empty list."""

    def check_nonempty(value: Any) -> Any:
        if not check(value):
            raise Invalid("This list may not be empty.")
        return value

    return check_nonempty


# -- task attributes, sample attributes, label attributes -------------------------------------


def category(value: Any) -> dict:
    """A label category: a name and an integer id."""
    obj = json_object(value)
    member(obj, "name", text)
    member(obj, "id", integer)
    return obj


def task_attributes(value: Any) -> dict:
    """The label editor's configuration; categories, when given, are checked."""
    obj = json_object(value)
    if "categories" in obj:
        at("categories", each(category), obj["categories"])
    return obj


def url_holder(value: Any) -> dict:
    """An object with a non-blank `url`, like `{"url": "https://..."}`."""
    obj = json_object(value)
    member(obj, "url", nonblank)
    return obj


def frame(value: Any) -> dict:
    """One frame of a sequence: an image or a point cloud."""
    obj = json_object(value)
    member(obj, "pcd" if "pcd" in obj else "image", url_holder)
    return obj


def sample_attributes(value: Any) -> dict:
    """Sample data: an image, a point cloud, or a sequence of frames of either."""
    obj = json_object(value)
    if "image" in obj:
        member(obj, "image", url_holder)
    elif "pcd" in obj:
        member(obj, "pcd", url_holder)
    elif "frames" in obj:
        member(obj, "frames", nonempty(each(frame)))
    else:
        raise Invalid('This field is required, e.g. {"image": {"url": "https://..."}}.', "image")
    return obj


def point(value: Any) -> list:
    """An [x, y] pair of numbers."""
    pair = list_of(value)
    if len(pair) != 2:
        raise Invalid("A point is a list of 2 numbers [x, y].")
    for coordinate in pair:
        number(coordinate)
    return pair


def annotation(value: Any) -> dict:
    """An annotation of any image label: integer id and category_id."""
    obj = json_object(value)
    member(obj, "id", integer)
    member(obj, "category_id", integer)
    return obj


def shape(kinds: frozenset[str]) -> Check:
    """A check of a vector annotation whose type is one of `kinds`, with fitting points."""

    def check(value: Any) -> dict:
        obj = annotation(value)
        kind = member(obj, "type", choice(kinds))
        points = member(obj, "points", each(point))
        exact, least = EXACT_POINTS.get(kind), MIN_POINTS[kind]
        if exact is not None and len(points) != exact:
            raise Invalid(f"A {kind} has exactly {exact} point{'s' * (exact > 1)}.", "points")
        if len(points) < least:
            raise Invalid(f"A {kind} has at least {least} points.", "points")
        return obj

    return check


def label_attributes(task_type: str) -> Check:
    """A check of label attributes in the format of the dataset's task type."""

    def check(value: Any) -> dict:
        obj = json_object(value)
        if task_type in VECTOR_TASKS:
            kinds = frozenset({"bbox"}) if task_type == "bboxes" else ANNOTATION_TYPES
            member(obj, "annotations", each(shape(kinds)))
        elif task_type in BITMAP_TASKS:
            member(obj, "annotations", each(annotation))
            member(obj, "segmentation_bitmap", url_holder)
        if "image_attributes" in obj:
            member(obj, "image_attributes", json_object)
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
        items = each(nonblank)(value)
        if not 1 <= len(items) <= MAX_PER_PAGE:
            raise Invalid(f"Give between 1 and {MAX_PER_PAGE} uuids.")
        return items

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
