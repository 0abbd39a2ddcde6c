"""/ops/releases: ask for a release, track an existing one, and see how they are doing.

  POST /ops/releases                          {"dataset", "name", "description"} -> 202
  POST /ops/releases/track                    {"dataset", "name"} -> 202
  GET  /ops/releases[?status=&limit=]         tracked releases, newest first
  GET  /ops/releases/<owner>/<dataset>/<name> one tracked release

All behind `Authorization: Bearer $RELAY_OPS_TOKEN`. Nothing here calls Segments.ai: the request
is recorded as an event and a worker does the rest, so an unknown dataset shows up as a FAILED
release (with the API's message) moments later, not as an error here.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from config.releases import RELEASE_NAME_PATTERN, RELEASE_NAME_RULE
from config.sources import DATASET_PATTERN
from relay.errors import RelayError
from relay.events import new_event_id
from relay.hooks.base import ReleaseRef
from relay.hooks.common import parse_json
from relay.ops.auth import require_ops_token
from relay.ops.validate import load
from relay.queue import enqueue
from relay.releases import (
    PENDING,
    STATUSES,
    ReleaseStore,
    TrackedRelease,
    release_key,
    release_track_event,
    request_release,
)

bp = Blueprint("releases", __name__, url_prefix="/ops/releases")
bp.before_request(require_ops_token)


class UnknownReleaseError(RelayError):
    status_code = 404
    code = "unknown_release"


class _TrackSchema(Schema):
    class Meta:
        unknown = RAISE

    dataset = fields.String(
        required=True, validate=validate.Regexp(DATASET_PATTERN, error="must be 'owner/name'")
    )
    name = fields.String(
        required=True,
        validate=validate.Regexp(RELEASE_NAME_PATTERN, error=f"must be {RELEASE_NAME_RULE}"),
    )


class _CreateSchema(_TrackSchema):
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class _ListSchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


def _services() -> tuple[Any, ReleaseStore]:
    services = current_app.extensions["relay"]
    releases = current_app.extensions.get("relay_releases")
    if releases is None:
        ttl = services.settings.event_ttl_days * 86400
        releases = current_app.extensions["relay_releases"] = ReleaseStore(
            services.redis, ttl_seconds=ttl
        )
    return services, releases


def _answer(event_id: str, result: str, release: TrackedRelease | None, key: str) -> Any:
    body = {
        "event": event_id,
        "result": result,
        "url": f"/ops/releases/{key}",
        "release": release.to_json() if release else None,
    }
    return jsonify(body), 202


@bp.post("")
def create() -> Any:
    """Ask for a release: a worker creates it (or adopts one of that name) and follows it."""
    data = load(_CreateSchema(), parse_json(request.get_data()))
    services, releases = _services()
    outcome = request_release(
        services.store,
        releases,
        services.celery,
        dataset=data["dataset"],
        name=data["name"],
        description=data["description"],
        origin="ops",
        source="ops",
    )
    key = release_key(data["dataset"], data["name"])
    return _answer(outcome.event_id, outcome.result, outcome.release, key)


@bp.post("/track")
def track() -> Any:
    """Follow a release made elsewhere until it ends, and report it."""
    data = load(_TrackSchema(), parse_json(request.get_data()))
    services, releases = _services()
    now = time.time()
    ref = ReleaseRef(dataset=data["dataset"], name=data["name"])
    key = release_key(ref.dataset, ref.name)
    base = {"id": new_event_id(), "source": "ops", "created_at": now, "updated_at": now}
    event = release_track_event(base, None, ref, [], origin="track")
    services.store.record(event)
    created = releases.track(
        TrackedRelease(
            dataset=ref.dataset,
            name=ref.name,
            status=PENDING,
            origin="track",
            requested_at=now,
            event_id=event.id,
        )
    )
    try:
        enqueue(services.celery, event.kind, event.id)
    except Exception:
        services.store.forget(event)
        if created:
            releases.forget(key)
        raise
    release = releases.get(key)
    return _answer(event.id, "accepted", release, key)


@bp.get("")
def list_releases() -> Any:
    """Tracked releases, newest first; `?status=` one of the statuses, `?limit=` 1-500."""
    query = load(_ListSchema(), request.args.to_dict(flat=True))
    _, releases = _services()
    found = releases.list(status=query["status"], limit=query["limit"])
    return jsonify({"releases": [r.to_json() for r in found]})


@bp.get("/<owner>/<dataset>/<name>")
def get_release(owner: str, dataset: str, name: str) -> Any:
    """One tracked release: status, times, duration, export URL, deliveries."""
    _, releases = _services()
    key = release_key(f"{owner}/{dataset}", name)
    release = releases.get(key)
    if release is None:
        raise UnknownReleaseError(f"no tracked release {key}")
    return jsonify(release.to_json())
