"""Process settings: every RELAY_* environment variable, read and validated in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from config.errors import ConfigError
from config.releases import NotifyTarget, Schedule, load_releases
from config.sources import Source, load_sources

EXAMPLE_CONFIG = Path(__file__).with_name("relay.example.toml")
# Secrets of the example config's sources, used only while RELAY_CONFIG is unset (the demo) and
# only for variables that are not set: a real deployment names its own file and secrets.
EXAMPLE_SECRETS = {
    "RELAY_S3_TOKEN": "demo-s3-token",
    "RELAY_MINIO_TOKEN": "demo-minio-token",
    "RELAY_GCS_TOKEN": "demo-gcs-token",
    "RELAY_AZURE_TOKEN": "demo-azure-token",
    "RELAY_PREDICTIONS_SECRET": "whsec_c2VnbWVudHMtcmVsYXktZGVtby1wcmVkaWN0aW9ucw==",
    "RELAY_REPLICATE_SECRET": "whsec_c2VnbWVudHMtcmVsYXktZGVtby1yZXBsaWNhdGUh",
    "RELAY_SEGMENTS_WEBHOOK_SECRET": "whsec_c2VnbWVudHMtcmVsYXktZGVtby1zZWdtZW50cw==",
}
DEFAULT_API_URL = "https://api.segments.ai"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _EnvSchema(Schema):
    """RELAY_* variables by their environment names; values arrive as strings."""

    class Meta:
        unknown = EXCLUDE

    RELAY_CONFIG = fields.String(load_default=None)
    RELAY_REDIS_URL = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^(redis|rediss|unix)://", error="must be a redis:// URL"),
    )
    RELAY_BROKER_URL = fields.String(load_default=None)
    RELAY_SEGMENTS_API_URL = fields.Url(
        load_default=None, require_tld=False, schemes={"http", "https"}
    )
    RELAY_SEGMENTS_API_KEY = fields.String(load_default="")
    RELAY_OPS_TOKEN = fields.String(load_default="")
    RELAY_PORT = fields.Integer(load_default=8000, validate=validate.Range(1, 65535))
    RELAY_LOG_LEVEL = fields.String(load_default="INFO", validate=validate.OneOf(LOG_LEVELS))
    RELAY_LOG_FORMAT = fields.String(load_default="json", validate=validate.OneOf(("json", "text")))
    RELAY_MAX_BODY_BYTES = fields.Integer(load_default=1_048_576, validate=validate.Range(min=1024))
    RELAY_API_RATE = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))
    RELAY_API_BURST = fields.Integer(load_default=20, validate=validate.Range(min=1))
    RELAY_API_CONNECT_TIMEOUT = fields.Float(load_default=3.05, validate=validate.Range(min=0.1))
    RELAY_API_READ_TIMEOUT = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))
    RELAY_TASK_MAX_ATTEMPTS = fields.Integer(load_default=12, validate=validate.Range(min=1))
    RELAY_RETRY_MAX_SECONDS = fields.Float(load_default=300.0, validate=validate.Range(min=1))
    RELAY_RECONCILE_SECONDS = fields.Float(load_default=60.0, validate=validate.Range(min=1))
    RELAY_STALE_SECONDS = fields.Float(load_default=660.0, validate=validate.Range(min=1))
    RELAY_SAMPLE_WAIT_SECONDS = fields.Float(load_default=600.0, validate=validate.Range(min=0))
    RELAY_EVENT_TTL_DAYS = fields.Integer(load_default=7, validate=validate.Range(min=1))
    RELAY_DATA_DIR = fields.String(load_default="var")
    RELAY_RELEASE_POLL_DEADLINE_SECONDS = fields.Float(
        load_default=3600.0, validate=validate.Range(min=1)
    )
    RELAY_RELEASE_SWEEP_SECONDS = fields.Float(load_default=60.0, validate=validate.Range(min=1))


@dataclass(frozen=True)
class Settings:
    """Everything a relay, worker or beat process needs to know, validated once."""

    sources: Mapping[str, Source]
    config_path: str
    redis_url: str | None = None  # None: `relay up` runs an embedded Redis
    broker_url: str | None = None  # None: the Redis URL
    segments_api_url: str | None = None  # None: the real API (or the sandbox under `relay up`)
    segments_api_key: str = field(default="", repr=False)
    ops_token: str = field(default="", repr=False)
    port: int = 8000
    log_level: str = "INFO"
    log_format: str = "json"
    max_body_bytes: int = 1_048_576
    api_rate: float = 10.0  # requests per second shared by every worker
    api_burst: int = 20
    api_connect_timeout: float = 3.05
    api_read_timeout: float = 30.0
    task_max_attempts: int = 12
    retry_max_seconds: float = 300.0
    reconcile_seconds: float = 60.0  # how often beat looks for stuck events
    # An event queued or running this long is re-enqueued; above the task time limit (600 s).
    stale_seconds: float = 660.0
    # How long a prediction waits for its image's sample to be created before it fails.
    sample_wait_seconds: float = 600.0
    event_ttl_days: int = 7
    data_dir: str = "var"
    # Releases: cut on a cron schedule, reported to notify targets (the config file's
    # [[schedules]] and [[notify]] tables); polled until they end or this deadline passes.
    schedules: tuple[Schedule, ...] = ()
    notify: tuple[NotifyTarget, ...] = ()
    release_poll_deadline_seconds: float = 3600.0
    release_sweep_seconds: float = 60.0  # how often beat looks for lost poll chains

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read RELAY_* variables and the sources file; raise ConfigError naming every problem."""
        env = os.environ if environ is None else environ
        try:
            values = _EnvSchema().load({k: v for k, v in env.items() if k.startswith("RELAY_")})
        except ValidationError as exc:
            raise ConfigError(_env_problems(exc.messages)) from None
        config_path = values["RELAY_CONFIG"] or str(EXAMPLE_CONFIG)
        secrets_env = env if values["RELAY_CONFIG"] else {**EXAMPLE_SECRETS, **env}
        sources = load_sources(config_path, secrets_env)
        schedules, notify = load_releases(config_path, secrets_env)
        return cls(
            sources=sources,
            config_path=config_path,
            redis_url=values["RELAY_REDIS_URL"],
            broker_url=values["RELAY_BROKER_URL"],
            segments_api_url=values["RELAY_SEGMENTS_API_URL"],
            segments_api_key=values["RELAY_SEGMENTS_API_KEY"],
            ops_token=values["RELAY_OPS_TOKEN"],
            port=values["RELAY_PORT"],
            log_level=values["RELAY_LOG_LEVEL"],
            log_format=values["RELAY_LOG_FORMAT"],
            max_body_bytes=values["RELAY_MAX_BODY_BYTES"],
            api_rate=values["RELAY_API_RATE"],
            api_burst=values["RELAY_API_BURST"],
            api_connect_timeout=values["RELAY_API_CONNECT_TIMEOUT"],
            api_read_timeout=values["RELAY_API_READ_TIMEOUT"],
            task_max_attempts=values["RELAY_TASK_MAX_ATTEMPTS"],
            retry_max_seconds=values["RELAY_RETRY_MAX_SECONDS"],
            reconcile_seconds=values["RELAY_RECONCILE_SECONDS"],
            stale_seconds=values["RELAY_STALE_SECONDS"],
            sample_wait_seconds=values["RELAY_SAMPLE_WAIT_SECONDS"],
            event_ttl_days=values["RELAY_EVENT_TTL_DAYS"],
            data_dir=values["RELAY_DATA_DIR"],
            schedules=schedules,
            notify=notify,
            release_poll_deadline_seconds=values["RELAY_RELEASE_POLL_DEADLINE_SECONDS"],
            release_sweep_seconds=values["RELAY_RELEASE_SWEEP_SECONDS"],
        )

    @property
    def api_url(self) -> str:
        return self.segments_api_url or DEFAULT_API_URL

    @property
    def broker(self) -> str:
        return self.broker_url or self.require_redis_url()

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError(["RELAY_REDIS_URL: not set (only `relay up` can run without it)"])
        return self.redis_url

    def warnings(self) -> list[str]:
        """Things that work but that an operator should know about at start-up."""
        notes = []
        if self.config_path == str(EXAMPLE_CONFIG):
            notes.append("RELAY_CONFIG is not set: using the example config and its demo secrets")
        for source in self.sources.values():
            if source.type in ("s3", "sagemaker") and not source.verify:
                notes.append(
                    f"source '{source.name}': SNS signature checks are OFF (verify = false)"
                )
            if source.type in ("s3", "sagemaker") and source.verify and not source.topic_arns:
                notes.append(
                    f"source '{source.name}': no topic_arns allowlist; any SNS topic is accepted"
                )
        if not self.ops_token:
            notes.append("RELAY_OPS_TOKEN is not set: the /ops endpoints refuse every request")
        return notes


def _env_problems(messages: dict[str, Any]) -> list[str]:
    return [
        f"{name}: {'; '.join(map(str, errs)) if isinstance(errs, list) else errs}"
        for name, errs in sorted(messages.items())
    ]
