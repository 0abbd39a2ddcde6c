"""Errors raised by the Segments.ai client: one class per case, mapped from the HTTP status."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import requests

# Error bodies are kept for debugging; a proxy's HTML page must not bloat logs or event records.
MAX_BODY_CHARS = 2000
ALREADY_EXISTS = "already exists"


class SegmentsError(Exception):
    """A Segments.ai call failed; `retryable` says whether trying again later can help."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        self.fields = field_messages(body)

    def __str__(self) -> str:
        request = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{request}{status}: {self.message}" if request else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(SegmentsError):
    """The API key is missing or wrong (401)."""


class PermissionDeniedError(SegmentsError):
    """The API key's user may not do this (403)."""


class NotFoundError(SegmentsError):
    """The dataset, sample, label or release does not exist, or the page is past the end (404)."""


class AlreadyExistsError(SegmentsError):
    """An object with this name already exists (409, or 400 saying so)."""


class ValidationError(SegmentsError):
    """The API rejected the request's fields (400, 422); `fields` holds its messages."""


class RateLimitError(SegmentsError):
    """The API is throttling us (429); wait `retry_after` seconds when it says how long."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(SegmentsError):
    """The API failed on its side (5xx)."""

    retryable = True


class RequestTimeoutError(SegmentsError):
    """The API did not answer in time (408, or our own connect/read timeout)."""

    retryable = True


class ApiConnectionError(SegmentsError):
    """The API could not be reached, or the connection broke mid-answer."""

    retryable = True


class ApiError(SegmentsError):
    """The API answered with a status no other class covers, or with a body we cannot read."""


def parse_body(text: str) -> Any:
    """Return the body as JSON when it parses, else as text cut to MAX_BODY_CHARS."""
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_BODY_CHARS]


def field_messages(body: Any) -> dict[str, list[str]]:
    """Return the per-field messages of a DRF-style error body (everything except `detail`)."""
    if not isinstance(body, dict):
        return {}
    return {
        str(field): [str(m) for m in value] if isinstance(value, list) else [str(value)]
        for field, value in body.items()
        if field != "detail"
    }


def api_message(body: Any, default: str) -> str:
    """Return the API's own human-readable message from an error body."""
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return body["detail"]
        messages = [f"{field}: {' '.join(texts)}" for field, texts in field_messages(body).items()]
        return "; ".join(messages) or default
    if isinstance(body, list) and body:
        return "; ".join(str(item) for item in body)
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return default


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delay-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until_http_date(value, now or datetime.now(UTC))
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _seconds_until_http_date(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP-dates are always GMT; RFC 850 forms may parse as naive.
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _says_already_exists(body: Any) -> bool:
    # The live API answers 400 (not 409) for duplicate names, so the body is the only signal.
    messages = [text for texts in field_messages(body).values() for text in texts]
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        messages.append(body["detail"])
    return any(ALREADY_EXISTS in text.lower() for text in messages)


def _error_class(status: int, body: Any) -> type[SegmentsError]:
    if status == 400:
        return AlreadyExistsError if _says_already_exists(body) else ValidationError
    if status >= 500:
        return ServerError
    return {
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        408: RequestTimeoutError,
        409: AlreadyExistsError,
        422: ValidationError,
        429: RateLimitError,
    }.get(status, ApiError)


def error_for_response(
    status: int,
    body: Any,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SegmentsError:
    """Build the error for an HTTP error answer: the class follows the status code."""
    cls = _error_class(status, body)
    message = api_message(body, default=f"HTTP {status}")
    context = {"status": status, "body": body, "method": method, "path": path}
    if cls is RateLimitError:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"), now=now)
        return RateLimitError(message, retry_after=retry_after, **context)
    return cls(message, **context)


def error_for_exception(exc: requests.RequestException, *, method: str, path: str) -> SegmentsError:
    """Build the error for a request that got no HTTP answer at all."""
    if isinstance(exc, requests.Timeout):
        return RequestTimeoutError(f"timed out: {exc}", method=method, path=path)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return ApiConnectionError(f"connection failed: {exc}", method=method, path=path)
    return ApiError(f"request failed: {exc}", method=method, path=path)
