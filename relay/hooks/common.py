"""Small helpers every sender module shares: JSON bodies and shared-secret checks."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from relay.errors import PayloadError, SignatureError
from relay.hooks.base import InboundRequest

TOKEN_HEADER = "x-relay-token"
TOKEN_QUERY = "token"


def parse_json(body: bytes) -> Any:
    """Decode a JSON body whatever its content type says; PayloadError if it is not JSON."""
    if not body.strip():
        raise PayloadError("the body is empty; expected JSON", fields={"body": ["empty"]})
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text", fields={"body": ["not UTF-8"]}) from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            fields={"body": ["invalid JSON"]},
        ) from None
    except ValueError as exc:
        # Also raised for numbers longer than Python's int-parsing limit.
        raise PayloadError(
            f"the body is not usable JSON: {exc}", fields={"body": ["invalid JSON"]}
        ) from None


def presented_tokens(request: InboundRequest) -> list[str]:
    """Every shared token the request carries: bearer, X-Relay-Token header, or ?token=."""
    tokens = []
    auth = request.header("authorization")
    if auth[:7].lower() == "bearer ":
        tokens.append(auth[7:].strip())
    elif auth:
        # MinIO sends its auth_token verbatim when the token itself contains a space.
        tokens.append(auth.strip())
    if request.header(TOKEN_HEADER):
        tokens.append(request.header(TOKEN_HEADER))
    if request.args.get(TOKEN_QUERY):
        tokens.append(request.args[TOKEN_QUERY])
    return tokens


def matches_any(presented: str, secrets: Iterable[str]) -> bool:
    """Compare one presented value against every configured secret in constant time."""
    candidate = presented.encode()
    # Check every secret (no early exit) so timing says nothing about which one matched.
    results = [hmac.compare_digest(candidate, secret.encode()) for secret in secrets]
    return any(results)


def require_token(request: InboundRequest, secrets: Iterable[str]) -> None:
    """Raise SignatureError unless the request presents one of the source's secrets."""
    secrets = tuple(secrets)
    tokens = presented_tokens(request)
    if not tokens:
        raise SignatureError(
            "missing token: send it as 'Authorization: Bearer <token>', "
            f"an '{TOKEN_HEADER}' header or a '{TOKEN_QUERY}' query parameter"
        )
    if not secrets or not any(matches_any(token, secrets) for token in tokens):
        raise SignatureError("the token does not match this source's secret")


# Largest size or generation a sender may state: a signed 64-bit integer.
MAX_SIZE = 2**63 - 1
KIND_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def join_path(path: str, name: str) -> str:
    """`Records[0].s3` + `key` -> `Records[0].s3.key`, the field path errors name."""
    return f"{path}.{name}" if path else name


def get_field(
    mapping: dict[str, Any], path: str, name: str, kind: type, *, required: bool = True
) -> Any:
    """Return `mapping[name]` checked against `kind`; PayloadError naming `path.name` if wrong."""
    where = join_path(path, name)
    value = mapping.get(name)
    if value is None or (required and value == ""):
        if not required:
            return None
        problem = "missing" if value is None else "empty"
        raise PayloadError(f"{where} is {problem}", fields={where: [problem]})
    # bool is an int subclass, but `"size": true` is not a size.
    if not isinstance(value, kind) or isinstance(value, bool):
        problem = f"must be {KIND_NAMES[kind]}"
        raise PayloadError(f"{where} {problem}", fields={where: [problem]})
    return value


def size_field(mapping: dict[str, Any], path: str, name: str = "size") -> int | None:
    """An optional object size in bytes, from 0 to MAX_SIZE."""
    size = get_field(mapping, path, name, int, required=False)
    if size is not None and not 0 <= size <= MAX_SIZE:
        where = join_path(path, name)
        problem = f"must be between 0 and {MAX_SIZE}"
        raise PayloadError(f"{where} {problem}", fields={where: [problem]})
    return size


def decode_form_key(key: str, where: str) -> str:
    """Decode a form-encoded object key (S3: '+' is a space, %2B is '+'; MinIO: '/' is %2F)."""
    try:
        return unquote_plus(key, errors="strict")
    except UnicodeDecodeError:
        problem = "is not UTF-8 once URL-decoded"
        raise PayloadError(f"{where} {problem}", fields={where: [problem]}) from None
