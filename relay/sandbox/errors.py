"""Errors the sandbox answers with, worded like the live service (Django REST framework)."""

from __future__ import annotations

from typing import Any

NOT_FOUND = "Not found."
INVALID_PAGE = "Invalid page."
NO_CREDENTIALS = "Authentication credentials were not provided."
INVALID_TOKEN = "Invalid token."
FORBIDDEN = "You do not have permission to perform this action."
REQUIRED = "This field is required."


class ApiError(Exception):
    """An error answer: a status, a JSON body and optional extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


class FieldError(ApiError):
    """A 400 naming the fields that are wrong, e.g. `{"name": ["This field is required."]}`.

    A list body holds one such dict per item of a bulk request, as DRF's list serializer does.
    """

    def __init__(self, errors: dict[str, list[str]] | list[dict[str, list[str]]]) -> None:
        super().__init__(400, errors)
        self.errors = errors


def field_error(name: str, message: str) -> FieldError:
    """A 400 for one bad field."""
    return FieldError({name: [message]})


def detail(status: int, message: str) -> ApiError:
    """An error with DRF's `{"detail": ...}` body."""
    return ApiError(status, {"detail": message})


def not_found() -> ApiError:
    """404 as the live service words it; also used for private datasets a caller may not see."""
    return detail(404, NOT_FOUND)


def forbidden() -> ApiError:
    """403 for a caller who sees the dataset but lacks the role for this write."""
    return detail(403, FORBIDDEN)


def already_exists(what: str) -> FieldError:
    """400 for a taken name; the SDK turns the words "already exists" into AlreadyExistsError."""
    return field_error("name", f"A {what} with this name already exists.")
