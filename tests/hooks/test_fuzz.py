"""Whatever a sender puts in a body, each family answers a result or a clear error, never a crash.

Bodies are random JSON (and random bytes), authenticated as the family expects, so the parsing
behind the signature check is what gets exercised; every notice that comes out is then routed
and turned into an event as the intake would.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.sources import Route, Source
from relay.errors import RelayError
from relay.hooks.base import Delivery, Handshake, HookContext, InboundRequest
from relay.hooks.registry import RECEIVERS
from relay.intake import _event_for
from tests.hooks.swfakes import TEST_SECRET, sign

TOKEN = "fuzz-token"
ROUTES = (Route(dataset="a/b"),)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
# Shapes close to the real ones, so the fuzz gets past the first type check.
keys = st.sampled_from(
    ["Records", "s3", "bucket", "object", "key", "name", "size", "eventName", "message", "data",
     "attributes", "subject", "eventType", "type", "id", "sample", "objects", "bbox", "label",
     "status", "output", "Type", "Message", "detail", "detail-type", "source", "specversion"]
)  # fmt: skip
shaped = st.recursive(
    json_values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def source_for(kind: str) -> Source:
    secrets = (TEST_SECRET,) if kind in ("predictions", "replicate", "segments") else (TOKEN,)
    return Source(name=kind, type=kind, routes=ROUTES, secrets=secrets, verify=False)


def request_for(kind: str, body: bytes) -> InboundRequest:
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    if kind in ("predictions", "replicate", "segments"):
        signed = sign(TEST_SECRET, body, "msg_fuzz", int(time.time()))
        headers.update({k.lower(): v for k, v in signed.items()})
    return InboundRequest(
        method="POST", url=f"http://relay/hooks/{kind}", headers=headers, args={}, body=body
    )


def no_network(url: str) -> bytes:
    raise OSError("the fuzz test fetches nothing")


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=shaped)
def test_any_json_body_is_a_result_or_a_clear_error(kind, doc):
    body = json.dumps(doc).encode()
    outcome_of(kind, body)


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_are_a_result_or_a_clear_error(kind, body):
    outcome_of(kind, body)


def outcome_of(kind: str, body: bytes) -> None:
    error = refusal(kind, body)
    if error is not None:
        # Only the errors the relay renders as JSON with a status: 400, 401, 405, 502.
        assert error.status_code in (400, 401, 405, 502)
        assert error.message


def refusal(kind: str, body: bytes) -> RelayError | None:
    """Run the family's receive and the intake's event building; the RelayError, if any."""
    ctx = HookContext(http_get=no_network)
    try:
        result = RECEIVERS[kind](source_for(kind), request_for(kind, body), ctx)
        assert isinstance(result, Handshake | Delivery)
        if isinstance(result, Delivery):
            seen: Counter[str] = Counter()
            for notice in result.notices:
                _event_for(source_for(kind), notice, seen)
    except RelayError as error:
        return error
    return None
