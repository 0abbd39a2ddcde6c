"""/ops/events: look at recorded events and replay finished ones.

  GET  /ops/events[?status=&source=&kind=&limit=&before=]  newest first, cursor in `next_before`
  GET  /ops/events/stats                                   counts by status, recent failures
  GET  /ops/events/<id>                                    one event
  POST /ops/events/<id>/replay                             queue one finished event again
  POST /ops/events/replay  {"ids": [...]} | {"status", "source", "kind", "limit"}  in bulk

All behind `Authorization: Bearer $RELAY_OPS_TOKEN`; Redis unavailable is a 503.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from relay.errors import RelayError
from relay.events import STATUSES
from relay.hooks.common import parse_json
from relay.ops.auth import require_ops_token
from relay.ops.validate import load
from relay.queue import TASK_FOR_KIND
from relay.replay import REPLAYABLE_STATUSES, refusal, replay_events

bp = Blueprint("events", __name__, url_prefix="/ops/events")
bp.before_request(require_ops_token)

KINDS = ("notice", *TASK_FOR_KIND)
MAX_LIMIT = 500
DEFAULT_REPLAY_LIMIT = 100
RECENT_FAILURES = 10


class UnknownEventError(RelayError):
    status_code = 404
    code = "unknown_event"


class NotReplayableError(RelayError):
    status_code = 409
    code = "not_replayable"


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _source_field(description: str) -> fields.String:
    return fields.String(validate=validate.Length(1, 200), metadata={"description": description})


class EventsQuerySchema(_Strict):
    """Filters and cursor of `GET /ops/events`."""

    status = fields.String(
        validate=validate.OneOf(STATUSES), metadata={"description": "only events in this status"}
    )
    source = _source_field("only events from this source (or `ops` for operator requests)")
    kind = fields.String(
        validate=validate.OneOf(KINDS), metadata={"description": "only events of this kind"}
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": "page size"},
    )
    before = fields.Float(
        validate=validate.Range(min=0),
        metadata={
            "description": "cursor: only events created before this Unix time; pass the "
            "previous page's `next_before`"
        },
    )


class ReplayRequestSchema(_Strict):
    """Body of `POST /ops/events/replay`: explicit ids, or a selection of finished events."""

    ids = fields.List(
        fields.String(validate=validate.Length(1, 200)),
        validate=validate.Length(1, MAX_LIMIT),
        metadata={"description": "replay exactly these events"},
    )
    status = fields.String(
        validate=validate.OneOf(REPLAYABLE_STATUSES),
        metadata={"description": "replay the newest events in this status (usually `failed`)"},
    )
    source = _source_field("with `status`: only events from this source")
    kind = fields.String(
        validate=validate.OneOf(KINDS), metadata={"description": "with `status`: only this kind"}
    )
    limit = fields.Integer(
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": f"with `status`: at most this many ({DEFAULT_REPLAY_LIMIT})"},
    )

    @validates_schema
    def _ids_or_selection(self, data: dict[str, Any], **_: Any) -> None:
        selection = {"status", "source", "kind", "limit"} & data.keys()
        if "ids" in data and selection:
            raise ValidationError("give ids or a selection (status, source, kind, limit), not both")
        if "ids" not in data and "status" not in data:
            raise ValidationError("give ids, or a status to select events by")


class EventSchema(Schema):
    """One recorded event, as the ops API shows it."""

    id = fields.String(required=True)
    source = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": ", ".join(KINDS)})
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    created_at = fields.Float(required=True, metadata={"description": "Unix time"})
    updated_at = fields.Float(required=True, metadata={"description": "Unix time"})
    payload = fields.Dict(metadata={"description": "what the worker needs, by kind"})
    message_id = fields.String(allow_none=True, metadata={"description": "the sender's id"})
    attempts = fields.Integer()
    reason = fields.String(allow_none=True, metadata={"description": "why ignored or skipped"})
    last_error = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_before = fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "the `before` of the next page; null when there is none"},
    )


class EventStatsSchema(Schema):
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "events by status"},
    )
    total = fields.Integer(required=True)
    recent_failures = fields.List(fields.Nested(EventSchema), required=True)


class SkippedSchema(Schema):
    id = fields.String(required=True)
    reason = fields.String(required=True)


class ReplayResultSchema(Schema):
    replayed = fields.List(fields.String(), required=True)
    skipped = fields.List(fields.Nested(SkippedSchema), required=True)


class ReplayedEventSchema(Schema):
    replayed = fields.String(required=True, metadata={"description": "the event's id"})
    event = fields.Nested(EventSchema, required=True)


def _services() -> Any:
    return current_app.extensions["relay"]


@bp.get("")
def list_events() -> Any:
    """Newest events first, filtered; page on with `?before=<next_before>`."""
    query = load(EventsQuerySchema(), request.args.to_dict(flat=True))
    events, cursor = _services().store.search(**query)
    return jsonify({"events": [e.to_json() for e in events], "next_before": cursor})


@bp.get("/stats")
def stats() -> Any:
    """Event counts by status and the most recent failures."""
    store = _services().store
    counts = store.counts()
    failures, _ = store.search(status="failed", limit=RECENT_FAILURES)
    return jsonify(
        {
            "counts": counts,
            "total": sum(counts.values()),
            "recent_failures": [e.to_json() for e in failures],
        }
    )


@bp.get("/<event_id>")
def get_event(event_id: str) -> Any:
    event = _services().store.get(event_id)
    if event is None:
        raise UnknownEventError(f"no event {event_id} (unknown or expired)")
    return jsonify(event.to_json())


@bp.post("/<event_id>/replay")
def replay_one(event_id: str) -> Any:
    """Queue one finished event again; 409 with the reason when it cannot be."""
    services = _services()
    event = services.store.get(event_id)
    if event is None:
        raise UnknownEventError(f"no event {event_id} (unknown or expired)")
    reason = refusal(event)
    if reason is None:
        result = replay_events(services.store, services.celery, [event_id])
        if result.skipped:
            reason = result.skipped[0].reason
    if reason is not None:
        raise NotReplayableError(f"event {event_id} cannot be replayed: {reason}")
    current = services.store.get(event_id) or event
    return jsonify({"replayed": event_id, "event": current.to_json()}), 202


@bp.post("/replay")
def replay_many() -> Any:
    """Queue many finished events again: named by id, or the newest of a status."""
    body = load(ReplayRequestSchema(), parse_json(request.get_data()))
    services = _services()
    ids = body.get("ids")
    if ids is None:
        events, _ = services.store.search(
            status=body["status"],
            source=body.get("source"),
            kind=body.get("kind"),
            limit=body.get("limit", DEFAULT_REPLAY_LIMIT),
        )
        ids = [e.id for e in events]
    return jsonify(replay_events(services.store, services.celery, ids).to_json())
