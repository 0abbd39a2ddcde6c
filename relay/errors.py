"""Errors the relay answers senders with, rendered as JSON by `register_error_handlers`."""

from __future__ import annotations

from typing import Any

import kombu.exceptions
import redis

# What the event store (Redis) and the broker raise when they cannot be reached. The app turns
# each into a 503 so senders retry; views need not catch them.
UNAVAILABLE = (redis.RedisError, OSError, kombu.exceptions.OperationalError)


class RelayError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class PayloadError(RelayError):
    """The body is not what this sender type sends; `fields` names what is wrong."""

    status_code = 400
    code = "invalid_payload"


class SignatureError(RelayError):
    """The request's signature, token or timestamp does not check out."""

    status_code = 401
    code = "unauthorized"


class UnknownSourceError(RelayError):
    status_code = 404
    code = "unknown_source"


class MethodNotAllowedError(RelayError):
    status_code = 405
    code = "method_not_allowed"


class BodyTooLargeError(RelayError):
    status_code = 413
    code = "body_too_large"


class UpstreamError(RelayError):
    """Something the check needs (a signing key, a confirmation URL) could not be fetched.

    A 5xx makes the sender deliver again later, when it may work.
    """

    status_code = 502
    code = "upstream_unavailable"


class StoreUnavailableError(RelayError):
    """The event store or broker cannot be reached; the sender should retry."""

    status_code = 503
    code = "unavailable"
