"""Turn a recorded prediction into a PRELABELED label on its sample, never over a human's work."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
from PIL import Image

from relay.convert import ConversionError, convert_output
from relay.events import Event
from relay.hooks.base import DetectedObject
from relay.segments import (
    AlreadyExistsError,
    NotFoundError,
    bbox,
    bboxes_attributes,
    bitmap_png,
    point,
    polygon,
    polyline,
    segmentation_bitmap_attributes,
    vector_attributes,
)
from workers.outcome import Outcome
from workers.runtime import Runtime

log = logging.getLogger(__name__)

HUMAN_STATUSES = frozenset(
    {"LABELED", "REVIEWED", "VERIFIED", "REJECTED", "LABELING_IN_PROGRESS", "REVIEWING_IN_PROGRESS"}
)
CATEGORY_TTL_SECONDS = 60.0
CATEGORY_RECHECK_SECONDS = 5.0  # an unknown class re-reads a cached copy at least this old
MAX_MASK_BYTES = 32 * 1024 * 1024
_categories_cache: dict[str, tuple[float, dict[str, Any]]] = {}


class PredictionError(Exception):
    """The prediction cannot be applied; retrying will not help."""

    retryable = False


class SampleNotReadyError(Exception):
    """The prediction's sample does not exist yet; the upload notification may still be coming."""

    retryable = True
    waiting = True  # keep retrying until the wait window closes, whatever the attempt count

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"sample not found yet ({what}); waiting for it")
        self.retry_after = retry_after


class FetchError(Exception):
    """Fetching the model's output or mask failed in a way that may pass."""

    retryable = True


@dataclass
class Tally:
    """What was left out of the label, and why, for the event's result."""

    below_min_score: int = 0
    kept_scores: list[float] = field(default_factory=list)  # of what made it into the label
    unknown_classes: dict[str, int] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)


def upload_prediction(rt: Runtime, event: Event) -> Outcome:
    """Resolve the sample, build the label in the dataset's format, and PUT it as PRELABELED."""
    plan = event.payload
    prediction = plan["prediction"]
    if prediction.get("failed"):
        return Outcome("failed", reason=prediction["failed"])
    dataset = plan["dataset"]
    info = dataset_info(rt, dataset)
    ensure_labelset(rt, dataset, info, plan["labelset"])
    objects, score, version = _objects_and_score(rt, plan, prediction)
    labels = {o.label for o in objects} | {
        i["label"] for i in prediction.get("mask_instances") or []
    }
    stale = time.monotonic() - info["fetched_at"] > CATEGORY_RECHECK_SECONDS
    if stale and any(label.lower() not in info["categories"] for label in labels):
        # A category added since the cached copy was read would be dropped: look once more.
        info = dataset_info(rt, dataset, refresh=True)
    sample = resolve_sample(rt, plan, event)
    existing = rt.client.get_label_or_none(sample["uuid"], plan["labelset"])
    status = (existing or {}).get("label_status")
    if status in HUMAN_STATUSES and not plan.get("overwrite_human_labels"):
        return Outcome(
            "skipped",
            result={"sample_uuid": sample["uuid"], "label_status": status},
            reason=f"its {plan['labelset']} label is {status}: human work is not overwritten",
        )
    tally = Tally()
    attributes = build_attributes(rt, info, plan, prediction, objects, tally)
    if score is None:
        # The documented rule: the mean score of the objects that made it into the label.
        score = mean_score(tally.kept_scores)
    label = put_prelabel(rt, dataset, sample["uuid"], plan["labelset"], attributes, score)
    model = {
        "model": prediction.get("model"),
        "model_version": version or prediction.get("model_version"),
    }
    log.info("prelabel uploaded", extra={"event_id": event.id, "sample_uuid": sample["uuid"]})
    return Outcome(
        "succeeded",
        result={
            "sample_uuid": sample["uuid"],
            "dataset": dataset,
            "labelset": plan["labelset"],
            "score": score,
            "annotations": len(attributes.get("annotations", [])),
            "replaced": status,
            "label_status": label.get("label_status") if isinstance(label, dict) else "PRELABELED",
            "dropped": {
                "below_min_score": tally.below_min_score,
                "unknown_classes": tally.unknown_classes,
                "unsupported": tally.unsupported,
            },
            **{k: v for k, v in model.items() if v},
        },
    )


def put_prelabel(
    rt: Runtime,
    dataset: str,
    sample_uuid: str,
    labelset: str,
    attributes: dict,
    score: float | None,
) -> dict:
    """PUT the label as PRELABELED; recreate the labelset once if it vanished since cached."""

    def put() -> dict:
        return rt.client.put_label(
            sample_uuid, labelset, attributes, label_status="PRELABELED", score=score
        )

    try:
        return put()
    except NotFoundError:
        # The sample was just found, so the labelset is what is missing.
        ensure_labelset(rt, dataset, dataset_info(rt, dataset, refresh=True), labelset)
    return put()


def mean_score(scores: list[float]) -> float | None:
    """The mean of the scores, or None when there are none (an empty prelabel has no score)."""
    return sum(scores) / len(scores) if scores else None


def dataset_info(rt: Runtime, dataset: str, *, refresh: bool = False) -> dict[str, Any]:
    """The dataset's task type, category ids by name and labelsets, cached briefly."""
    cached = _categories_cache.get(dataset)
    if cached and not refresh and time.monotonic() - cached[0] < CATEGORY_TTL_SECONDS:
        return cached[1]
    raw = rt.client.get_dataset(dataset)
    categories = (raw.get("task_attributes") or {}).get("categories") or []
    info = {
        "task_type": raw.get("task_type"),
        "categories": {
            str(c["name"]).lower(): int(c["id"]) for c in categories if "name" in c and "id" in c
        },
        "labelsets": {ls.get("name") for ls in raw.get("labelsets") or []},
        "fetched_at": time.monotonic(),
    }
    _categories_cache[dataset] = (time.monotonic(), info)
    return info


def ensure_labelset(rt: Runtime, dataset: str, info: dict[str, Any], labelset: str) -> None:
    """Create the route's labelset (default "predictions") the first time it is needed."""
    if labelset in info["labelsets"]:
        return
    with contextlib.suppress(AlreadyExistsError):
        rt.client.create_labelset(dataset, labelset, "Model predictions imported by Segments Relay")
    info["labelsets"].add(labelset)


def resolve_sample(rt: Runtime, plan: dict[str, Any], event: Event) -> dict[str, Any]:
    """Find the prediction's sample; wait (by retrying) while it may still be on its way."""
    ref = plan["prediction"]["sample"]
    dataset = plan["dataset"]
    if ref.get("uuid"):
        return rt.client.get_sample(ref["uuid"])
    found = None
    if ref.get("bucket") and ref.get("key"):
        uuid = rt.store.find_sample(dataset, ref["bucket"], ref["key"])
        found = {"uuid": uuid} if uuid else rt.client.find_sample(dataset, ref["key"])
        what = f"object {ref['bucket']}/{ref['key']} in {dataset}"
    elif ref.get("image_url"):
        uuid = rt.store.find_sample_by_url(dataset, ref["image_url"])
        found = {"uuid": uuid} if uuid else None
        what = f"image {ref['image_url']} in {dataset}"
    else:
        found = rt.client.find_sample(dataset, ref["name"])
        what = f"sample '{ref['name']}' in {dataset}"
    if found:
        return found
    waited = time.time() - event.created_at
    window = rt.settings.sample_wait_seconds
    if waited >= window:
        raise PredictionError(f"no {what} after waiting {window:.0f}s for it to be created")
    raise SampleNotReadyError(what, retry_after=min(max(2.0, waited), 30.0, window - waited + 0.5))


def _objects_and_score(
    rt: Runtime, plan: dict[str, Any], prediction: dict[str, Any]
) -> tuple[list[DetectedObject], float | None, str | None]:
    objects = [_object_from_json(o) for o in prediction.get("objects") or []]
    score = prediction.get("score")
    version = None
    if prediction.get("output_location"):
        doc = fetch_s3_json(prediction["output_location"], plan.get("s3_endpoint_url"))
        try:
            converted = convert_output(
                doc,
                image_width=prediction.get("image_width"),
                image_height=prediction.get("image_height"),
            )
        except ConversionError as error:
            raise PredictionError(f"the model output cannot be read: {error}") from None
        objects = list(converted.objects)
        score = score if score is not None else converted.score
        version = converted.model_version
    return objects, score, version


def build_attributes(
    rt: Runtime,
    info: dict[str, Any],
    plan: dict[str, Any],
    prediction: dict[str, Any],
    objects: list[DetectedObject],
    tally: Tally,
) -> dict[str, Any]:
    """Label attributes in the dataset's own task type, with dropped objects tallied."""
    task_type = info["task_type"]
    min_score = plan.get("min_score", 0.0)
    size = {"width": prediction.get("image_width"), "height": prediction.get("image_height")}
    if task_type == "segmentation-bitmap":
        return _bitmap_attributes(rt, info, plan, prediction, tally)
    if task_type not in ("bboxes", "vector"):
        raise PredictionError(
            f"datasets of task type {task_type} are not supported for predictions"
        )
    annotations = []
    for obj in objects:
        if obj.score is not None and obj.score < min_score:
            tally.below_min_score += 1
            continue
        if task_type == "bboxes" and obj.type != "bbox":
            tally.unsupported[obj.type] = tally.unsupported.get(obj.type, 0) + 1
            continue
        category = _category(info, plan, obj.label, tally)
        if category is None:
            continue
        annotations.append(_annotation(len(annotations) + 1, category, obj))
        if obj.score is not None:
            tally.kept_scores.append(obj.score)
    if prediction.get("mask_url"):
        tally.unsupported["mask"] = 1
    build = bboxes_attributes if task_type == "bboxes" else vector_attributes
    return build(annotations, _model_attributes(prediction), **size)


def _annotation(index: int, category_id: int, obj: DetectedObject) -> dict[str, Any]:
    if obj.type == "bbox":
        (x0, y0), (x1, y1) = obj.points
        return bbox(index, category_id, x0, y0, x1, y1)
    if obj.type == "point":
        ((x, y),) = obj.points
        return point(index, category_id, x, y)
    build = polygon if obj.type == "polygon" else polyline
    return build(index, category_id, [list(p) for p in obj.points])


def _category(info: dict[str, Any], plan: dict[str, Any], label: str, tally: Tally) -> int | None:
    category = info["categories"].get(label.lower())
    if category is not None:
        return category
    if plan.get("unknown_classes") == "fail":
        known = ", ".join(sorted(info["categories"])) or "none"
        raise PredictionError(
            f"class '{label}' is not a category of {plan['dataset']} (known: {known})"
        )
    tally.unknown_classes[label] = tally.unknown_classes.get(label, 0) + 1
    return None


def _bitmap_attributes(
    rt: Runtime,
    info: dict[str, Any],
    plan: dict[str, Any],
    prediction: dict[str, Any],
    tally: Tally,
) -> dict[str, Any]:
    if not prediction.get("mask_url"):
        raise PredictionError("a segmentation-bitmap dataset needs a mask; the prediction has none")
    instances = prediction.get("mask_instances") or []
    annotations = []
    keep_ids = []
    for inst in instances:
        if inst.get("score") is not None and inst["score"] < plan.get("min_score", 0.0):
            tally.below_min_score += 1
            continue
        category = _category(info, plan, inst["label"], tally)
        if category is not None:
            annotations.append({"id": int(inst["id"]), "category_id": category})
            keep_ids.append(int(inst["id"]))
            if inst.get("score") is not None:
                tally.kept_scores.append(inst["score"])
    ids = read_mask(fetch_bytes(prediction["mask_url"]))
    # Pixels of dropped or unlisted instances become unlabeled, so the bitmap and list agree.
    ids = np.where(np.isin(ids, keep_ids), ids, 0)
    asset = rt.client.upload_asset(bitmap_png(ids), filename="prediction-mask.png")
    return segmentation_bitmap_attributes(annotations, asset["url"], _model_attributes(prediction))


def read_mask(data: bytes) -> np.ndarray:
    """Instance ids from a mask PNG: grey values, or RGB read as one 24-bit number."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise PredictionError(f"the mask is not a readable image: {error}") from None
    if image.mode in ("L", "I", "I;16", "P", "1"):
        return np.asarray(image.convert("I"), dtype=np.uint32)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def fetch_bytes(url: str) -> bytes:
    """Download a model artifact (mask) with a size limit."""
    try:
        with requests.get(url, timeout=(5, 30), stream=True) as response:
            if response.status_code in (404, 403, 410):
                raise PredictionError(f"the mask URL answered {response.status_code}")
            response.raise_for_status()
            data = response.raw.read(MAX_MASK_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise FetchError(f"cannot download the mask: {type(error).__name__}") from None
    if len(data) > MAX_MASK_BYTES:
        raise PredictionError(f"the mask is larger than {MAX_MASK_BYTES} bytes")
    return data


def fetch_s3_json(uri: str, endpoint_url: str | None) -> Any:
    """Read a model's JSON output from s3://bucket/key (SageMaker's outputLocation)."""
    import boto3
    import botocore.exceptions

    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise PredictionError(f"output location {uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403"):
            raise PredictionError(f"cannot read {uri}: {code}") from None
        raise FetchError(f"cannot read {uri}: {code}") from None
    except (botocore.exceptions.BotoCoreError, OSError) as error:
        raise FetchError(f"cannot read {uri}: {type(error).__name__}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise PredictionError(f"{uri} does not hold JSON") from None


def _model_attributes(prediction: dict[str, Any]) -> dict[str, Any] | None:
    model = {"model": prediction.get("model"), "model_version": prediction.get("model_version")}
    shown = {k: v for k, v in model.items() if v}
    return shown or None


def _object_from_json(raw: dict[str, Any]) -> DetectedObject:
    return DetectedObject(
        label=raw["label"],
        type=raw["type"],
        points=tuple(tuple(p) for p in raw["points"]),
        score=raw.get("score"),
    )
