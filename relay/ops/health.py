"""Liveness, readiness and Prometheus metrics; no authentication, nothing secret."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up; touches nothing."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Ready when Redis (event store and broker) answers."""
    services = current_app.extensions["relay"]
    try:
        services.redis.ping()
    except (redis.RedisError, OSError):
        return jsonify({"status": "unavailable", "redis": "unreachable"}), 503
    return jsonify({"status": "ready", "redis": "ok", "sources": sorted(services.settings.sources)})


@bp.get("/metrics")
def metrics() -> Response:
    services = current_app.extensions["relay"]
    try:
        body = generate_latest(services.metrics_registry)
    except (redis.RedisError, OSError):
        return Response("# redis unavailable\n", status=503, mimetype="text/plain")
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
