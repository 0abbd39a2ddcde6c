"""The Flask app factory: settings, services, blueprints and JSON error handling."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
import requests
from celery import Celery
from flask import Flask, jsonify
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from config import Settings
from relay.errors import UNAVAILABLE, RelayError, StoreUnavailableError
from relay.events import EventStore
from relay.hooks.base import HookContext
from relay.logs import configure_logging
from relay.metrics import RedisCollector
from workers.celery_app import create_celery

log = logging.getLogger(__name__)

# Certificates and key sets are small; anything bigger is not what we asked for.
MAX_FETCH_BYTES = 256 * 1024


@dataclass
class Services:
    """What request handlers use, built once per process."""

    settings: Settings
    redis: redis.Redis
    store: EventStore
    celery: Celery
    hook_context: HookContext
    metrics_registry: CollectorRegistry


def create_app(settings: Settings | None = None) -> Flask:
    """Build the relay for these settings (default: from the environment)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.warnings():
        log.warning(warning)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.json.sort_keys = False
    app.extensions["relay"] = build_services(settings)

    from relay import intake
    from relay.ops import dashboard, health, openapi
    from relay.ops import events as event_ops
    from relay.ops import releases as release_ops

    app.register_blueprint(intake.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(release_ops.bp)
    app.register_blueprint(event_ops.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(openapi.bp)
    register_error_handlers(app)
    return app


def build_services(settings: Settings) -> Services:
    # Short timeouts: a request must fail fast with 503 rather than hang when Redis is away.
    conn = redis.Redis.from_url(
        settings.require_redis_url(),
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=15,
    )
    store = EventStore(
        conn, ttl_seconds=settings.event_ttl_days * 86400, stale_seconds=settings.stale_seconds
    )
    registry = CollectorRegistry()
    registry.register(RedisCollector(conn, store.counts))
    return Services(
        settings=settings,
        redis=conn,
        store=store,
        celery=create_celery(settings),
        hook_context=HookContext(http_get=fetch_small),
        metrics_registry=registry,
    )


def fetch_small(url: str) -> bytes:
    """GET a small document (certificate, key set, confirmation) with tight limits."""
    with requests.get(url, timeout=(3, 5), stream=True, allow_redirects=False) as response:
        response.raise_for_status()
        body = response.raw.read(MAX_FETCH_BYTES + 1, decode_content=True)
    if len(body) > MAX_FETCH_BYTES:
        raise ValueError(f"{url} answered more than {MAX_FETCH_BYTES} bytes")
    return body


def register_error_handlers(app: Flask) -> None:
    """Render every error as JSON {error, message, fields}; never HTML, never a traceback."""

    @app.errorhandler(RelayError)
    def _relay_error(error: RelayError) -> Any:
        return jsonify(error.to_json()), error.status_code

    def _unavailable(error: Exception) -> Any:
        log.error("event store or queue unavailable: %s", type(error).__name__)
        unavailable = StoreUnavailableError("the event store or queue is unavailable; retry later")
        return jsonify(unavailable.to_json()), unavailable.status_code

    for kind in UNAVAILABLE:
        app.register_error_handler(kind, _unavailable)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify({"error": code, "message": error.description}), error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        # A bug of ours: log it with its traceback, tell the sender to retry, reveal nothing.
        log.exception("unhandled error")
        return jsonify({"error": "internal", "message": "internal error; retry later"}), 503
