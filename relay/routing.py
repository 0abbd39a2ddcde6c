"""Which route an object takes and the sample it becomes: pure functions."""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from config.sources import Route, Source
from relay.errors import PayloadError
from relay.hooks.base import Prediction, StorageObject

# Where each provider's objects are fetched from when a route sets no image_url.
DEFAULT_IMAGE_URLS = {
    "s3": "https://{bucket}.s3.amazonaws.com/{key_url}",
    "minio": "{url}",
    "gcs": "https://storage.googleapis.com/{bucket}/{key_url}",
    "azure": "{url}",
}


@dataclass(frozen=True)
class SamplePlan:
    """Everything a worker needs to create one sample, as stored on the event."""

    dataset: str
    name: str
    image_url: str
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "name": self.name,
            "image_url": self.image_url,
            "metadata": self.metadata,
        }


def match_route(source: Source, obj: StorageObject) -> Route | None:
    """The first route whose bucket, prefix and suffix filters all accept the object."""
    for route in source.routes:
        if route.bucket is not None and route.bucket != obj.bucket:
            continue
        if not obj.key.startswith(route.prefix):
            continue
        if route.suffixes and not obj.key.lower().endswith(
            tuple(s.lower() for s in route.suffixes)
        ):
            continue
        return route
    return None


def template_values(source_name: str, obj: StorageObject) -> dict[str, str]:
    """The fields a sample_name or image_url template may use."""
    basename = posixpath.basename(obj.key)
    stem, ext = posixpath.splitext(basename)
    return {
        "provider": obj.provider,
        "bucket": obj.bucket,
        "key": obj.key,
        "key_url": quote(obj.key, safe="/"),
        "dirname": posixpath.dirname(obj.key),
        "basename": basename,
        "stem": stem,
        "ext": ext.lstrip("."),
        "version": obj.version or "",
        "etag": obj.etag or "",
        "url": obj.url or "",
        "source": source_name,
    }


def plan_sample(source: Source, route: Route, obj: StorageObject) -> SamplePlan:
    """Name, image URL and metadata of the sample an object becomes."""
    values = template_values(source.name, obj)
    url_template = route.image_url or DEFAULT_IMAGE_URLS.get(obj.provider, "{url}")
    return SamplePlan(
        dataset=route.dataset,
        name=route.sample_name.format_map(values),
        image_url=url_template.format_map(values),
        metadata=object_metadata(source.name, obj),
    )


def object_metadata(source_name: str, obj: StorageObject) -> dict[str, Any]:
    """What the sample's metadata records about where it came from."""
    meta = {
        "source": source_name,
        "provider": obj.provider,
        "bucket": obj.bucket,
        "key": obj.key,
        "size": obj.size,
        "etag": obj.etag,
        "version": obj.version,
        "event_time": obj.event_time,
        "event_name": obj.event_name,
    }
    return {k: v for k, v in meta.items() if v not in (None, "")}


def plan_prediction(source: Source, prediction: Prediction) -> dict[str, Any]:
    """The worker's instructions for a prediction: target dataset, labelset and route options."""
    route = _prediction_route(source, prediction.sample.dataset)
    dataset = prediction.sample.dataset or (route.dataset if route else None)
    if dataset is None:
        raise PayloadError(
            "the prediction names no dataset and this source has no route to give one",
            fields={"sample.dataset": ["required for this source"]},
        )
    route = route or Route(dataset=dataset)
    return {
        "dataset": dataset,
        "labelset": route.labelset,
        "min_score": route.min_score,
        "unknown_classes": route.unknown_classes,
        "overwrite_human_labels": route.overwrite_human_labels,
        "s3_endpoint_url": source.s3_endpoint_url,
        "prediction": asdict(prediction),
    }


def _prediction_route(source: Source, dataset: str | None) -> Route | None:
    """The route for this dataset, or the source's first route when the prediction names none."""
    if dataset is None:
        return source.routes[0] if source.routes else None
    return next((r for r in source.routes if r.dataset == dataset), None)
