"""Validate an ops request's body or query with a marshmallow schema; a 400 names every field."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from relay.errors import PayloadError


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """Validate a query or body; a 400 naming every wrong field."""
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object", fields={"body": ["not an object"]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        summary = "; ".join(f"{name}: {_text(errs)}" for name, errs in sorted(messages.items()))
        raise PayloadError(f"invalid request: {summary}", fields=messages) from None


def _text(errors: Any) -> str:
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in errors.items())
    if isinstance(errors, list):
        return " ".join(map(str, errors))
    return str(errors)
