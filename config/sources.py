"""Sources and routes: the TOML file named by RELAY_CONFIG, validated with marshmallow.

Each `[[sources]]` table becomes a `Source` served at `POST /hooks/<name>`. Secrets are never
written in the file: a source names the environment variables that hold them (`secret_env`),
and they are read here, once, when the file is loaded.
"""

from __future__ import annotations

import base64
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from config.errors import ConfigError

SOURCE_TYPES = ("s3", "minio", "gcs", "azure", "predictions", "replicate", "sagemaker", "segments")
SECRET_TYPES = ("minio", "azure", "predictions", "replicate", "segments")
# Sources whose secrets are Standard Webhooks signing keys: "whsec_" + base64.
SIGNING_TYPES = ("predictions", "replicate", "segments")
DATASET_PATTERN = r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
# The fields a route's sample_name and image_url templates may use (see relay/routing.py).
TEMPLATE_FIELDS = (
    "provider",
    "bucket",
    "key",
    "key_url",
    "dirname",
    "basename",
    "stem",
    "ext",
    "version",
    "etag",
    "url",
    "source",
)


def template_problems(template: str) -> list[str]:
    """Why a template cannot be rendered (unknown fields, bad syntax); empty when it is fine."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return [f"bad template syntax: {exc}"]
    known = ", ".join(TEMPLATE_FIELDS)
    return [f"unknown field {{{n}}}; use one of {known}" for n in names if n not in TEMPLATE_FIELDS]


def is_signing_secret(value: str) -> bool:
    """A Standard Webhooks secret: 'whsec_' and base64 of at least 16 bytes."""
    if not value.startswith("whsec_"):
        return False
    raw = value[len("whsec_") :]
    try:
        return len(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)) >= 16
    except ValueError:
        return False


def _valid_template(value: str) -> None:
    problems = template_problems(value)
    if problems:
        raise ValidationError(problems)


@dataclass(frozen=True)
class Route:
    """Where a matching object (or prediction) goes, and how its sample is named."""

    dataset: str  # "owner/name"
    bucket: str | None = None  # None matches every bucket
    prefix: str = ""
    suffixes: tuple[str, ...] = ()  # empty matches every key; compared case-insensitively
    sample_name: str = "{key}"
    image_url: str | None = None  # None: the provider's default URL template
    labelset: str = "predictions"
    min_score: float = 0.0
    unknown_classes: str = "drop"  # "drop" or "fail"
    overwrite_human_labels: bool = False


@dataclass(frozen=True)
class Source:
    """One sender endpoint, `POST /hooks/<name>`."""

    name: str
    type: str
    routes: tuple[Route, ...] = ()
    # Shared secrets (tokens or signing keys); two at once while rotating. Never logged.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # s3 / sagemaker: SNS signature checks (off only for local emulators) and allowed topics.
    verify: bool = True
    topic_arns: tuple[str, ...] = ()
    # gcs: the push subscription's OIDC token.
    oidc_audience: str | None = None
    oidc_emails: tuple[str, ...] = ()
    oidc_issuers: tuple[str, ...] = GOOGLE_ISSUERS
    oidc_jwks_url: str = GOOGLE_JWKS_URL
    # sagemaker: where to read results (None: AWS's own endpoint).
    s3_endpoint_url: str | None = None
    max_body_bytes: int | None = None  # None: the global RELAY_MAX_BODY_BYTES


class _RouteSchema(Schema):
    class Meta:
        unknown = RAISE

    dataset = fields.String(
        required=True, validate=validate.Regexp(DATASET_PATTERN, error="must be 'owner/name'")
    )
    bucket = fields.String(load_default=None)
    prefix = fields.String(load_default="")
    suffixes = fields.List(fields.String(), load_default=list)
    sample_name = fields.String(load_default="{key}", validate=_valid_template)
    image_url = fields.String(load_default=None, validate=_valid_template)
    labelset = fields.String(load_default="predictions", validate=validate.Length(min=1))
    min_score = fields.Float(load_default=0.0, validate=validate.Range(0.0, 1.0))
    unknown_classes = fields.String(load_default="drop", validate=validate.OneOf(("drop", "fail")))
    overwrite_human_labels = fields.Boolean(load_default=False)


class _SourceSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$", error="use a-z, 0-9, _ and -"),
    )
    type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    routes = fields.List(fields.Nested(_RouteSchema), load_default=list)
    secret_env = fields.List(fields.String(), load_default=list, validate=validate.Length(max=2))
    verify = fields.Boolean(load_default=True)
    topic_arns = fields.List(fields.String(), load_default=list)
    oidc_audience = fields.String(load_default=None)
    oidc_emails = fields.List(fields.Email(), load_default=list)
    oidc_issuers = fields.List(fields.String(), load_default=lambda: list(GOOGLE_ISSUERS))
    oidc_jwks_url = fields.Url(load_default=GOOGLE_JWKS_URL, require_tld=False)
    s3_endpoint_url = fields.Url(load_default=None, require_tld=False)
    max_body_bytes = fields.Integer(load_default=None, validate=validate.Range(min=1))

    @validates_schema
    def _check_type_needs(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("type")
        if kind in SECRET_TYPES and not data.get("secret_env"):
            raise ValidationError(f"a {kind} source needs at least one secret", "secret_env")
        if kind == "gcs" and not data.get("oidc_audience") and not data.get("secret_env"):
            raise ValidationError(
                "set oidc_audience (or secret_env for a shared token)", "oidc_audience"
            )


class _FileSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    sources = fields.List(
        fields.Nested(_SourceSchema), required=True, validate=validate.Length(min=1)
    )


def load_sources(path: str | Path, environ: Mapping[str, str]) -> dict[str, Source]:
    """Read and validate a sources file; raise ConfigError naming the file, source and field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    try:
        data = _FileSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, raw, exc.messages)) from None
    return _build(path, data["sources"], environ)


def _build(
    path: Path, items: list[dict[str, Any]], environ: Mapping[str, str]
) -> dict[str, Source]:
    problems: list[str] = []
    sources: dict[str, Source] = {}
    for item in items:
        name = item["name"]
        if name in sources:
            problems.append(f"{path}: source '{name}': name: used twice")
        missing = [var for var in item["secret_env"] if not environ.get(var)]
        for var in missing:
            problems.append(
                f"{path}: source '{name}': secret_env: environment variable {var} is not set"
            )
        if item["type"] in SIGNING_TYPES:
            for var in item["secret_env"]:
                if environ.get(var) and not is_signing_secret(environ[var]):
                    problems.append(
                        f"{path}: source '{name}': secret_env: {var} is not a signing secret "
                        "('whsec_' followed by base64)"
                    )
        sources[name] = Source(
            name=name,
            type=item["type"],
            routes=tuple(Route(**{**r, "suffixes": tuple(r["suffixes"])}) for r in item["routes"]),
            secrets=tuple(environ[var] for var in item["secret_env"] if environ.get(var)),
            verify=item["verify"],
            topic_arns=tuple(item["topic_arns"]),
            oidc_audience=item["oidc_audience"],
            oidc_emails=tuple(item["oidc_emails"]),
            oidc_issuers=tuple(item["oidc_issuers"]),
            oidc_jwks_url=item["oidc_jwks_url"],
            s3_endpoint_url=item["s3_endpoint_url"],
            max_body_bytes=item["max_body_bytes"],
        )
    if problems:
        raise ConfigError(problems)
    return sources


def _describe(path: Path, raw: dict[str, Any], messages: Any) -> list[str]:
    """Flatten marshmallow's nested messages into 'file: source 'x': field: message' lines."""
    lines: list[str] = []
    raw_sources = raw.get("sources") if isinstance(raw.get("sources"), list) else []
    for top, value in (messages or {}).items():
        if top != "sources" or not isinstance(value, dict):
            lines.append(f"{path}: {top}: {_text(value)}")
            continue
        for index, source_errors in value.items():
            label = _source_label(raw_sources, index)
            for field_path, message in _walk(source_errors):
                lines.append(f"{path}: {label}: {field_path}: {message}")
    return lines


def _source_label(raw_sources: list[Any], index: Any) -> str:
    if isinstance(index, int) and index < len(raw_sources) and isinstance(raw_sources[index], dict):
        name = raw_sources[index].get("name")
        if isinstance(name, str):
            return f"source '{name}'"
    return f"source #{index + 1 if isinstance(index, int) else index}"


def _walk(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(errors, dict):
        out: list[tuple[str, str]] = []
        for key, value in errors.items():
            name = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else (f"{prefix}.{key}" if prefix else key)
            )
            out.extend(_walk(value, name))
        return out
    return [(prefix or "_schema", _text(errors))]


def _text(value: Any) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)
