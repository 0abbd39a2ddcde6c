"""The sandbox Flask app: a local stand-in for the Segments.ai REST API."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from relay.sandbox.bodies import MAX_BODY_BYTES
from relay.sandbox.config import SandboxConfig
from relay.sandbox.control import control
from relay.sandbox.datasets import datasets
from relay.sandbox.errors import NOT_FOUND, ApiError
from relay.sandbox.faults import SERVER_ERRORS, FaultController, Faults
from relay.sandbox.samples import samples
from relay.sandbox.state import EXTENSION, SandboxState, sandbox
from relay.sandbox.stats import RequestStats
from relay.sandbox.storage import storage
from relay.sandbox.store import Store

CONTROL_PREFIX = "/_sandbox"
# Room for the multipart framing around a maximal upload.
MULTIPART_SLACK = 1024 * 1024


def create_sandbox_app(config: SandboxConfig) -> Flask:
    """Build a sandbox app with its own state, in memory or under `config.data_dir`."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + MULTIPART_SLACK
    app.json.sort_keys = False  # keep fields in the order the API documents them
    # Both slash forms of every path, and never a redirect: a redirected POST becomes a GET.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    initial = Faults(
        latency_ms=config.latency_ms,
        fail_rate=config.fail_rate,
        rate_limit=config.rate_limit,
        release_seconds=config.release_seconds,
    )
    app.extensions[EXTENSION] = SandboxState(
        config=config,
        store=Store(config.data_dir),
        faults=FaultController(initial),
        stats=RequestStats(),
    )
    for blueprint in (datasets, samples, storage, control):
        app.register_blueprint(blueprint)
    app.after_request(count_request)
    app.register_error_handler(ApiError, api_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, server_error)
    return app


def count_request(response: Response) -> Response:
    """Tally every request except the controls themselves."""
    if not request.path.startswith(CONTROL_PREFIX):
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        sandbox().stats.record(request.method, route, response.status_code)
    return response


def api_error(error: ApiError) -> tuple[Response, int, dict[str, str]]:
    """An ApiError as its JSON body, status and headers."""
    return jsonify(error.body), error.status, error.headers


def http_error(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
    """Routing and protocol errors (404, 405, 413, ...) as JSON, never HTML."""
    status = error.code or 500
    messages = {404: NOT_FOUND, 405: f'Method "{request.method}" not allowed.'}
    headers = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return jsonify(detail=messages.get(status, f"{error.name}.")), status, headers


def server_error(error: Exception) -> tuple[Response, int]:
    """A bug: logged with its traceback, answered as a JSON 500."""
    current_app.logger.error("unhandled error", exc_info=error)
    return jsonify(detail=SERVER_ERRORS[500]), 500
