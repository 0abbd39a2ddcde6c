"""POST /hooks/<source>: verify, parse, route, record, enqueue, answer.

The view is a thin adapter; `accept` holds the logic of turning notices into recorded events.
No Segments.ai call happens here: the relay answers fast and the workers do the work.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from config.sources import Source
from relay import metrics
from relay.errors import (
    MethodNotAllowedError,
    RelayError,
    UnknownSourceError,
)
from relay.events import Event, EventStore, new_event_id
from relay.hooks.base import Delivery, Handshake, InboundRequest, Notice
from relay.hooks.registry import receiver_for
from relay.queue import enqueue
from relay.releases import release_track_event
from relay.routing import match_route, plan_prediction, plan_sample

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__)

# Methods each source type answers besides POST: handshakes and reachability checks.
EXTRA_METHODS = {"minio": ("HEAD", "GET"), "azure": ("OPTIONS",)}


@bp.route("/hooks/<source_name>", methods=["POST", "GET", "HEAD", "OPTIONS"])
def receive_hook(source_name: str) -> Response:
    services = current_app.extensions["relay"]
    source = services.settings.sources.get(source_name)
    if source is None:
        raise UnknownSourceError(f"no source named '{source_name}' is configured")
    if request.method != "POST" and request.method not in EXTRA_METHODS.get(source.type, ()):
        raise MethodNotAllowedError(
            f"a {source.type} source accepts POST only, not {request.method}"
        )
    request.max_content_length = source.max_body_bytes or services.settings.max_body_bytes
    inbound = InboundRequest(
        method=request.method,
        url=request.url,
        headers={k.lower(): v for k, v in request.headers.items()},
        args=request.args.to_dict(flat=True),
        body=request.get_data(cache=False),
    )
    try:
        result = receiver_for(source.type)(source, inbound, services.hook_context)
    except RelayError as error:
        metrics.incr(services.redis, "relay_hook_requests", source=source.name, outcome=error.code)
        raise
    if isinstance(result, Handshake):
        log.info("handshake: %s", result.note, extra={"source": source.name})
        metrics.incr(services.redis, "relay_hook_requests", source=source.name, outcome="handshake")
        return _handshake_response(result)
    answer = accept(services.store, services.celery, source, result)
    metrics.incr(services.redis, "relay_hook_requests", source=source.name, outcome="accepted")
    return jsonify(answer), 202


def accept(store: EventStore, celery: Any, source: Source, delivery: Delivery) -> dict[str, list]:
    """Record each notice as an event and enqueue the new ones; duplicates and ignored are noted."""
    answer: dict[str, list] = {"accepted": [], "duplicates": [], "ignored": [], "failed": []}
    seen_per_message: Counter[str] = Counter()
    for notice in delivery.notices:
        event = _event_for(source, notice, seen_per_message)
        holder = store.record(event)
        if holder is not None:
            answer["duplicates"].append(holder)
            continue
        if event.status == "ignored":
            answer["ignored"].append({"id": event.id, "reason": event.reason})
            continue
        if event.status == "failed":
            answer["failed"].append({"id": event.id, "reason": event.last_error})
            continue
        try:
            enqueue(celery, event.kind, event.id)
        except Exception:
            # Undo the record so the sender's retry is accepted anew rather than deduped away.
            store.forget(event)
            raise
        answer["accepted"].append(event.id)
        log.info("event accepted", extra={"event_id": event.id, "source": source.name})
    for result, items in answer.items():
        if items:
            metrics.incr(
                store.redis, "relay_notices", len(items), source=source.name, result=result
            )
    return answer


def _event_for(source: Source, notice: Notice, seen_per_message: Counter[str]) -> Event:
    """The event a notice becomes: a queued sample, or an ignored one with its reason."""
    now = time.time()
    keys = []
    if notice.message_id:
        # One message may carry several records; each gets its own key within it.
        index = seen_per_message[notice.message_id]
        seen_per_message[notice.message_id] += 1
        keys.append(f"msg:{source.name}:{notice.message_id}:{index}")
    base = {"id": new_event_id(), "source": source.name, "created_at": now, "updated_at": now}
    if notice.prediction is not None:
        return _prediction_event(base, source, notice, keys)
    if notice.release is not None:
        return release_track_event(base, notice.message_id, notice.release, keys)
    obj = notice.object
    if obj is None:
        return Event(
            **base,
            kind="notice",
            status="ignored",
            message_id=notice.message_id,
            reason=notice.ignored,
        )
    route = match_route(source, obj)
    if route is None:
        reason = f"no route matches bucket '{obj.bucket}' and key '{obj.key}'"
        return Event(
            **base, kind="notice", status="ignored", message_id=notice.message_id, reason=reason
        )
    plan = plan_sample(source, route, obj)
    if obj.version or obj.etag:
        # The same object version announced through another envelope is the same event.
        keys.append(
            f"obj:{route.dataset}:{obj.provider}:{obj.bucket}:{obj.key}:{obj.version or obj.etag}"
        )
    return Event(
        **base,
        kind="sample",
        status="queued",
        message_id=notice.message_id,
        payload=plan.to_json(),
        dedupe_keys=keys,
    )


def _prediction_event(
    base: dict[str, Any], source: Source, notice: Notice, keys: list[str]
) -> Event:
    """A queued prediction; a failed model run is recorded as failed straight away."""
    prediction = notice.prediction
    return Event(
        **base,
        kind="prediction",
        status="failed" if prediction.failed else "queued",
        message_id=notice.message_id,
        payload=plan_prediction(source, prediction),
        dedupe_keys=keys,
        last_error=prediction.failed,
    )


def _handshake_response(result: Handshake) -> Response:
    response = jsonify(result.body) if result.body is not None else Response(status=result.status)
    response.status_code = result.status
    for name, value in result.headers.items():
        response.headers[name] = value
    return response
