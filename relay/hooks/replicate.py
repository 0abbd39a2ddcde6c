"""Replicate prediction webhooks (source type "replicate"), signed with Standard Webhooks.

Replicate POSTs the prediction object to the `webhook` URL given when the prediction was created.
Its query string says which sample the image is, as Replicate's docs recommend for correlation:
`?sample_uuid=<uuid>`, `?dataset=owner/name&sample=<name>`, `?sample=<name>` (the route's dataset)
or `?bucket=<bucket>&key=<key>`. Without one, the sample is found by the input image URL
(`input.image`, else `input.image_url`, else the first http(s) URL among the inputs).
`?image_width=&image_height=` give the image size for outputs in normalized coordinates.

What each status becomes:
- starting, processing: acknowledged and ignored; only finished predictions are imported (and
  Replicate never retries these intermediate webhooks).
- failed, canceled: a failed prediction, so the reason is recorded on the event.
- succeeded: a prediction, when the output is in a format `relay.convert` recognises (a detection
  list, generic objects, ...). Any other output (text, image URLs, `data:` URLs) means the model is
  not a detector: acknowledged and ignored, as retrying would not change it. A recognised output
  that does not convert (a box outside the image, say) is a failed prediction naming the problem.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from config.sources import DATASET_PATTERN, Source
from relay.convert import ConversionError, convert_output, detect_format
from relay.errors import PayloadError
from relay.hooks import standard_webhooks
from relay.hooks.base import Delivery, HookContext, InboundRequest, Notice, Prediction, SampleRef
from relay.hooks.common import parse_json

IN_PROGRESS = ("starting", "processing")
UNSUCCESSFUL = ("failed", "canceled")
STATUSES = (*IN_PROGRESS, "succeeded", *UNSUCCESSFUL)
SAMPLE_PARAMS = ("sample_uuid", "dataset", "sample", "bucket", "key")
SAMPLE_FORMS = (
    frozenset({"sample_uuid"}),
    frozenset({"sample"}),
    frozenset({"dataset", "sample"}),
    frozenset({"bucket", "key"}),
)
NO_SAMPLE = (
    "cannot tell which sample: add ?sample_uuid=... or ?dataset=...&sample=... to the webhook URL"
)
NOT_A_DETECTOR = "output is not a detection list or objects"
_POSITIVE_INTEGER = re.compile(r"[1-9][0-9]{0,8}")


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> Delivery:
    """Verify a Replicate webhook and turn its prediction object into one notice."""
    message_id = standard_webhooks.verify(request, source.secrets, now=ctx.now())
    return Delivery([prediction_notice(parse_json(request.body), request.args, message_id)])


def prediction_notice(doc: Any, args: Mapping[str, str], message_id: str) -> Notice:
    """Turn a parsed Replicate prediction and the webhook URL's query into a notice."""
    if not isinstance(doc, dict):
        problem = "not an object"
        raise PayloadError(
            "a Replicate prediction must be a JSON object", fields={"body": [problem]}
        )
    status = _optional_text(doc, "status")
    if status not in STATUSES:
        problem = f"must be one of {', '.join(STATUSES)}"
        raise PayloadError(f"status {problem}", fields={"status": [problem]})
    event_name = f"prediction.{status}"
    if status in IN_PROGRESS:
        ignored = f"prediction is {status}; only finished predictions are imported"
        return Notice(message_id=message_id, ignored=ignored, event_name=event_name)
    if status == "succeeded" and detect_format(doc.get("output")) is None:
        return Notice(message_id=message_id, ignored=NOT_A_DETECTOR, event_name=event_name)
    version = _optional_text(doc, "version")
    prediction = Prediction(
        sample=sample_ref(args, doc),
        model=_optional_text(doc, "model") or version,
        model_version=version,
    )
    if status in UNSUCCESSFUL:
        error = _optional_text(doc, "error")
        reason = f"replicate prediction {status}" + (f": {error}" if error else "")
        prediction = replace(prediction, failed=reason)
    else:
        prediction = with_output(prediction, doc.get("output"), image_size(args))
    return Notice(message_id=message_id, prediction=prediction, event_name=event_name)


def with_output(
    prediction: Prediction, output: Any, size: tuple[int | None, int | None]
) -> Prediction:
    """Add a succeeded prediction's converted output, or mark it failed if it does not convert."""
    try:
        converted = convert_output(output, image_width=size[0], image_height=size[1])
    except ConversionError as exc:
        return replace(prediction, failed=f"replicate output could not be imported: {exc}")
    return replace(
        prediction,
        objects=converted.objects,
        score=converted.score,
        image_width=converted.image_width,
        image_height=converted.image_height,
    )


def sample_ref(args: Mapping[str, str], doc: dict[str, Any]) -> SampleRef:
    """Name the prediction's sample from the webhook URL's query, else by its input image URL."""
    given = frozenset(name for name in SAMPLE_PARAMS if args.get(name))
    if given:
        return _sample_from_query(args, given)
    image_url = input_image_url(doc.get("input"))
    if image_url is None:
        raise PayloadError(NO_SAMPLE, fields={"sample_uuid": ["missing from the webhook URL"]})
    return SampleRef(image_url=image_url)


def _sample_from_query(args: Mapping[str, str], given: frozenset[str]) -> SampleRef:
    if given not in SAMPLE_FORMS:
        problem = (
            f"the webhook URL has {', '.join(sorted(given))}; use sample_uuid, or sample "
            "(with an optional dataset), or bucket and key"
        )
        raise PayloadError(problem, fields={name: [problem] for name in sorted(given)})
    if "sample_uuid" in given:
        return SampleRef(uuid=_uuid(args["sample_uuid"]))
    if "bucket" in given:
        return SampleRef(bucket=args["bucket"], key=args["key"])
    dataset = args.get("dataset") or None
    if dataset is not None and not re.fullmatch(DATASET_PATTERN, dataset):
        problem = "must be 'owner/name'"
        raise PayloadError(f"query parameter dataset {problem}", fields={"dataset": [problem]})
    return SampleRef(dataset=dataset, name=args["sample"])


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        problem = "is not a UUID"
        raise PayloadError(
            f"query parameter sample_uuid {problem}", fields={"sample_uuid": [problem]}
        ) from None


def input_image_url(inputs: Any) -> str | None:
    """Return the image URL a prediction's input names: image, image_url or any http(s) URL."""
    if not isinstance(inputs, dict):
        return None
    candidates = [inputs.get("image"), inputs.get("image_url"), *inputs.values()]
    return next((value for value in candidates if _is_http_url(value)), None)


def _is_http_url(value: Any) -> bool:
    # data: URLs (Cog's default for files) name no image the sample could be found by.
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def image_size(args: Mapping[str, str]) -> tuple[int | None, int | None]:
    """Read the optional ?image_width=&image_height= query parameters (positive integers)."""
    sizes = []
    for name in ("image_width", "image_height"):
        text = args.get(name)
        if text is not None and not _POSITIVE_INTEGER.fullmatch(text):
            problem = "must be a positive integer"
            raise PayloadError(f"query parameter {name} {problem}", fields={name: [problem]})
        sizes.append(int(text) if text is not None else None)
    return sizes[0], sizes[1]


def _optional_text(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        problem = "must be a string"
        raise PayloadError(f"{name} {problem}", fields={name: [problem]})
    return value
