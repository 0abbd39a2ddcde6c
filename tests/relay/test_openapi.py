"""GET /openapi.json: a valid OpenAPI 3 document that covers every route of the app.

Built in-process with the integration tests' sources file; nothing here needs Redis.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from config import Settings
from config.sources import SOURCE_TYPES
from relay.hooks import predictions
from relay.ops import openapi
from relay.ops import releases as release_ops
from tests.conftest import OPS_TOKEN

# Connections are refused at once here: the app is built, never connected.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
HOOK_ANSWERS = {"200", "202", "400", "401", "404", "405", "413", "502", "503"}


def offline_env(tmp_path: Path, redis_url: str = UNREACHABLE_REDIS) -> dict[str, str]:
    """Settings for the test sources file with made-up secrets and URLs that are never called."""
    template = (Path(__file__).parent.parent / "relay.test.toml").read_text()
    config = tmp_path / "relay.toml"
    config.write_text(re.sub(r"\$\{(\w+)\}", r"http://127.0.0.1:1/\1", template))
    names = set(re.findall(r"\b(TEST_\w+)\b", template))
    secrets = {
        name: "whsec_" + base64.b64encode(name.encode().ljust(32, b"-")).decode() for name in names
    }
    return {
        **secrets,
        "RELAY_CONFIG": str(config),
        "RELAY_REDIS_URL": redis_url,
        "RELAY_OPS_TOKEN": OPS_TOKEN,
        "RELAY_LOG_FORMAT": "text",
        "RELAY_LOG_LEVEL": "WARNING",
    }


def offline_app(tmp_path: Path, redis_url: str = UNREACHABLE_REDIS) -> Flask:
    """The relay app for the test sources file, built in-process (Redis is not touched)."""
    from relay.app import create_app

    return create_app(Settings.from_env(offline_env(tmp_path, redis_url)))


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """create_app configures the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def app(tmp_path: Path, keep_logging) -> Flask:
    return offline_app(tmp_path)


@pytest.fixture
def document(app: Flask) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_the_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Segments Relay"


def test_it_needs_no_token(app):
    assert app.test_client().get("/openapi.json").status_code == 200


def test_every_route_of_the_app_is_documented_with_its_methods(app, document):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue  # Flask's default static route; the relay has no static files
        path = openapi.openapi_path(rule.rule)
        assert path in document["paths"], f"{rule.rule} is not documented"
        # Flask adds HEAD and OPTIONS to every rule; documented where a view answers them.
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], f"{method} {rule.rule}"
        checked += 1
    assert checked >= 14


def test_handshake_methods_of_hooks_are_documented(document):
    hooks = document["paths"]["/hooks/{source_name}"]
    assert {"post", "get", "head", "options"} <= hooks.keys()
    assert "WebHook-Allowed-Origin" in hooks["options"]["description"]
    assert "options" in document["paths"]["/hooks/azure"]
    assert "head" in document["paths"]["/hooks/minio"]
    assert "options" not in document["paths"]["/hooks/s3"]


def test_every_sender_type_is_described():
    assert set(openapi.SENDER_TYPES) == set(SOURCE_TYPES)


def test_each_configured_source_has_its_own_path(app, document):
    for source in app.extensions["relay"].settings.sources.values():
        post = document["paths"][f"/hooks/{source.name}"]["post"]
        assert f"`{source.name}`" in post["description"]
        assert openapi.SENDER_TYPES[source.type].summary == post["summary"]


@pytest.mark.parametrize(
    ("path", "schemas"),
    [
        ("/hooks/s3", {"S3Event", "SnsEnvelope", "EventBridgeS3Event"}),
        ("/hooks/minio", {"MinioEvent"}),
        ("/hooks/gcs", {"PubSubPush", "CloudEvent", "GcsObject"}),
        ("/hooks/azure", {"EventGridEvent", "CloudEvent"}),
        ("/hooks/segments", {"SegmentsWebhook"}),
    ],
)
def test_hook_bodies_by_sender_type(document, path, schemas):
    body = json.dumps(document["paths"][path]["post"]["requestBody"])
    for name in schemas:
        assert f"#/components/schemas/{name}" in body


def test_hook_answers_and_the_error_shape(document):
    hook_operations = [op for path, m, op in operations(document) if path.startswith("/hooks/")]
    for operation in (op for op in hook_operations if op["operationId"].startswith("receive")):
        assert set(operation["responses"]) == HOOK_ANSWERS
        error = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "message", "fields"}
    assert set(error["required"]) == {"error", "message"}


def test_signed_senders_document_their_signature_headers(document):
    def headers(path: str) -> set[str]:
        params = document["paths"][path]["post"]["parameters"]
        return {p["name"] for p in params if p["in"] == "header"}

    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers(
        "/hooks/{source_name}"
    )
    assert {"svix-id", "svix-timestamp", "svix-signature"} <= headers("/hooks/segments")
    assert "X-Relay-Token" in headers("/hooks/s3")


def test_the_prediction_callback_schema_is_the_hook_s_own(document):
    schemas = document["components"]["schemas"]
    prediction = schemas["Prediction"]
    assert set(prediction["properties"]) == set(predictions.PredictionSchema().fields)
    assert prediction["additionalProperties"] is False
    assert prediction["properties"]["sample"] == {"$ref": "#/components/schemas/PredictionSample"}
    assert set(schemas["PredictionSample"]["properties"]) == {
        "uuid",
        "dataset",
        "name",
        "bucket",
        "key",
    }
    assert prediction["properties"]["objects"]["items"] == {
        "$ref": "#/components/schemas/PredictionObject"
    }
    body = document["paths"]["/hooks/{source_name}"]["post"]["requestBody"]
    assert "#/components/schemas/Prediction" in json.dumps(body)


def test_ops_endpoints_are_behind_the_token_and_probes_are_not(document):
    for path, _, operation in operations(document):
        security = operation.get("security")
        if path.startswith("/ops/"):
            assert {"opsToken": []} in security, path
            assert "401" in operation["responses"], path
        else:
            assert security is None, path
    dashboard = document["paths"]["/ops/dashboard"]["get"]
    assert {"opsTokenQuery": []} in dashboard["security"]
    assert "text/html" in dashboard["responses"]["200"]["content"]
    assert document["components"]["securitySchemes"]["opsTokenQuery"]["in"] == "query"


def test_ops_events_parameters_and_answers(document):
    listing = document["paths"]["/ops/events"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"status", "source", "kind", "limit", "before"}
    assert params["limit"]["schema"]["maximum"] == 500
    assert "failed" in params["status"]["schema"]["enum"]
    replay = document["paths"]["/ops/events/{event_id}/replay"]["post"]
    assert {"202", "404", "409", "401", "503"} <= set(replay["responses"])
    bulk = document["paths"]["/ops/events/replay"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReplayRequest"
    }


def test_release_requests_reuse_the_endpoint_s_schemas(document):
    schemas = document["components"]["schemas"]
    assert set(schemas["ReleaseCreate"]["properties"]) == set(release_ops._CreateSchema().fields)
    assert set(schemas["ReleaseTrack"]["properties"]) == set(release_ops._TrackSchema().fields)


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))


def test_no_secret_is_in_the_document(app, document):
    text = json.dumps(document)
    settings = app.extensions["relay"].settings
    secrets = [s for source in settings.sources.values() for s in source.secrets]
    assert secrets
    for secret in [OPS_TOKEN, *secrets]:
        assert secret not in text


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("/healthz", "/healthz"),
        ("/hooks/<source_name>", "/hooks/{source_name}"),
        ("/ops/events/<event_id>/replay", "/ops/events/{event_id}/replay"),
        ("/ops/releases/<owner>/<dataset>/<name>", "/ops/releases/{owner}/{dataset}/{name}"),
        ("/files/<path:name>", "/files/{name}"),
    ],
)
def test_openapi_path(rule, path):
    assert openapi.openapi_path(rule) == path


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        (predictions.PredictionSchema, "Prediction"),
        (predictions._SampleSchema, "PredictionSample"),
        (release_ops._TrackSchema, "ReleaseTrack"),
        (openapi.ErrorSchema, "Error"),
    ],
)
def test_schema_names(schema, name):
    assert openapi.schema_name(schema) == name
