"""Reading request bodies: gzip, UTF-8 and JSON, every failure a 400 rather than a crash."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from flask import Request

from relay.sandbox.errors import detail

MAX_BODY_BYTES = 100 * 1024 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS


def gunzip(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """Inflate a gzip body, refusing bad data and bodies that inflate past `limit`."""
    inflater = zlib.decompressobj(GZIP_WBITS)
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise detail(400, "The request body is not valid gzip.") from None
    if len(inflated) > limit:
        raise detail(413, "The request body is too large.")
    if not inflater.eof:
        raise detail(400, "The request body is not valid gzip.")
    return inflated


def finite_float(literal: str) -> float:
    """A JSON number that fits a float; 1e400 is refused rather than turned into infinity."""
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {literal}")
    return value


def refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Decode a JSON document; an empty body counts as `{}`, as in DRF."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise detail(400, "JSON parse error - the body is not UTF-8.") from None
    try:
        return json.loads(text, parse_float=finite_float, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise detail(400, f"JSON parse error - {exc}") from None


def json_body(request: Request) -> Any:
    """The request's JSON body, gunzipped when `Content-Encoding: gzip` says so."""
    raw = request.get_data(cache=True)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = gunzip(raw)
    elif encoding not in {"", "identity"}:
        raise detail(415, f'Unsupported content encoding "{encoding}" in request.')
    return parse_json(raw)
