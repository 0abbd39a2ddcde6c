"""The relay's own prediction callback (source type "predictions"), signed with Standard Webhooks.

A model server that is neither Replicate nor SageMaker POSTs one finished (or failed) run per
request, signed as in `relay.hooks.standard_webhooks` with one of the source's `whsec_` secrets:

    {
      "id": "the sender's own prediction id (optional)",
      "sample": {"uuid": "..."} | {"name": "...", "dataset": "owner/name" (optional)}
                | {"bucket": "...", "key": "..."},
      "model": {"name": "yolov8n", "version": "2024-05-01"},        (optional; version optional)
      "score": 0.91,                                                 (optional, 0..1)
      "image": {"width": 640, "height": 480},       (optional; required for normalized objects)
      "objects": [ objects as in relay.convert.from_generic ],       (optional)
      "mask": {"url": "https://.../mask.png",
               "instances": [{"id": 1, "label": "car", "score": 0.9}]},  (optional)
      "error": "the model run failed, and why"                       (optional)
    }

At least one of objects, mask and error must be given; `"objects": []` is a valid prediction of
nothing. A run with an error carries no objects or mask. Unknown fields are refused, and every
problem is reported in `fields` by its path (`sample.uuid`, `objects[2].bbox`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from config.sources import DATASET_PATTERN, Source
from relay.convert import MAX_IMAGE_SIDE, ConversionError, from_generic
from relay.errors import PayloadError
from relay.hooks import standard_webhooks
from relay.hooks.base import (
    Delivery,
    DetectedObject,
    HookContext,
    InboundRequest,
    MaskInstance,
    Notice,
    Prediction,
    SampleRef,
)
from relay.hooks.common import parse_json

EVENT_NAME = "prediction"
# Segments.ai bitmaps hold an instance id in a pixel's 24 RGB bits; 0 is unlabeled.
MAX_INSTANCE_ID = 2**24 - 1
SAMPLE_FORMS = (
    frozenset({"uuid"}),
    frozenset({"name"}),
    frozenset({"dataset", "name"}),
    frozenset({"bucket", "key"}),
)


class _JsonNumber(fields.Float):
    """A JSON number: unlike marshmallow's Float, the string "0.5" is refused."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid")
        return super()._validated(value)


def _text(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1), **kwargs)


def _score(**kwargs: Any) -> _JsonNumber:
    return _JsonNumber(validate=validate.Range(0.0, 1.0), **kwargs)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _SampleSchema(_Strict):
    uuid = fields.UUID()
    dataset = fields.String(validate=validate.Regexp(DATASET_PATTERN, error="must be 'owner/name'"))
    name = _text()
    bucket = _text()
    key = _text()

    @validates_schema
    def _one_form(self, data: dict[str, Any], **_: Any) -> None:
        if frozenset(data) not in SAMPLE_FORMS:
            raise ValidationError(
                "give exactly one of: uuid; name (with an optional dataset); bucket and key"
            )


class _ModelSchema(_Strict):
    name = _text(required=True)
    version = _text()


class _ImageSchema(_Strict):
    width = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_IMAGE_SIDE))
    height = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_IMAGE_SIDE))


class _InstanceSchema(_Strict):
    id = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_INSTANCE_ID))
    label = _text(required=True)
    score = _score()


class _MaskSchema(_Strict):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    instances = fields.List(fields.Nested(_InstanceSchema), required=True)

    @validates_schema
    def _unique_ids(self, data: dict[str, Any], **_: Any) -> None:
        ids = [instance["id"] for instance in data["instances"]]
        if len(ids) != len(set(ids)):
            raise ValidationError("instance ids must be unique", "instances")


class PredictionSchema(_Strict):
    """The callback body; objects are checked by `relay.convert.from_generic` afterwards."""

    id = _text()
    sample = fields.Nested(_SampleSchema, required=True)
    model = fields.Nested(_ModelSchema)
    score = _score()
    image = fields.Nested(_ImageSchema)
    objects = fields.List(fields.Raw())
    mask = fields.Nested(_MaskSchema)
    error = _text()

    @validates_schema
    def _has_result(self, data: dict[str, Any], **_: Any) -> None:
        if not {"objects", "mask", "error"} & data.keys():
            raise ValidationError("give objects (possibly empty), mask or error")
        if "error" in data and (data.get("objects") or "mask" in data):
            raise ValidationError("a failed run (error) carries no objects or mask", "error")


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> Delivery:
    """Verify a prediction callback's signature and turn its body into one prediction notice."""
    message_id = standard_webhooks.verify(request, source.secrets, now=ctx.now())
    prediction = parse_prediction(parse_json(request.body))
    return Delivery([Notice(message_id=message_id, prediction=prediction, event_name=EVENT_NAME)])


def parse_prediction(doc: Any) -> Prediction:
    """Validate a parsed callback body and build its Prediction; PayloadError names each field."""
    if not isinstance(doc, dict):
        raise PayloadError("the body must be a JSON object", fields={"body": ["not an object"]})
    try:
        data = PredictionSchema().load(doc)
    except ValidationError as exc:
        problems = flatten_messages(exc.messages)
        summary = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in problems.items())
        raise PayloadError(f"invalid prediction: {summary}", fields=problems) from None
    image = data.get("image", {})
    model = data.get("model", {})
    mask = data.get("mask", {})
    return Prediction(
        sample=_sample_ref(data["sample"]),
        objects=_objects(data.get("objects", []), image),
        mask_url=mask.get("url"),
        mask_instances=tuple(MaskInstance(**instance) for instance in mask.get("instances", [])),
        score=data.get("score"),
        model=model.get("name"),
        model_version=model.get("version"),
        image_width=image.get("width"),
        image_height=image.get("height"),
        failed=data.get("error"),
    )


def _sample_ref(sample: dict[str, Any]) -> SampleRef:
    uuid = sample.get("uuid")
    return SampleRef(**{**sample, "uuid": str(uuid) if uuid else None})


def _objects(objects: list[Any], image: dict[str, int]) -> tuple[DetectedObject, ...]:
    try:
        converted = from_generic(
            objects, image_width=image.get("width"), image_height=image.get("height")
        )
    except ConversionError as exc:
        raise PayloadError(str(exc), fields={exc.field: [exc.message]}) from None
    return tuple(converted)


def flatten_messages(messages: Any, path: str = "") -> dict[str, list[str]]:
    """Flatten marshmallow's nested messages into {"objects[2].bbox": [...]} like other hooks."""
    if not isinstance(messages, dict):
        return {path or "body": list(messages) if isinstance(messages, list) else [str(messages)]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        if key == "_schema":
            child = path  # a problem with the object itself, not one of its fields
        elif isinstance(key, int):
            child = f"{path}[{key}]"
        else:
            child = f"{path}.{key}" if path else key
        for name, problems in flatten_messages(value, child).items():
            flat.setdefault(name, []).extend(problems)
    return flat
