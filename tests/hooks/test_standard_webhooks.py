"""Standard Webhooks signatures: the official test vector, rotation, header names and refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from relay.errors import SignatureError
from relay.hooks import standard_webhooks
from relay.hooks.base import InboundRequest
from tests.hooks.swfakes import OTHER_SECRET, TEST_SECRET, sign, signature

VECTOR = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "standard_webhooks_test_vector.json").read_text()
)
SECRET = VECTOR["secret"]
MSG_ID = VECTOR["webhook-id"]
TIMESTAMP = int(VECTOR["webhook-timestamp"])
BODY = VECTOR["body"].encode()
GOOD = VECTOR["expected_webhook-signature"]


def request(headers: dict[str, str], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="https://relay.test/hooks/x", headers=headers, args={}, body=body
    )


def vector_headers(**changes: str) -> dict[str, str]:
    """The test vector's headers, with some replaced; an empty value drops the header."""
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": GOOD,
        **changes,
    }
    return {name: value for name, value in headers.items() if value}


def verify(
    headers: dict[str, str],
    *,
    secrets: tuple[str, ...] = (SECRET,),
    now: float = TIMESTAMP,
    body: bytes = BODY,
) -> str:
    return standard_webhooks.verify(request(headers, body), secrets, now=now)


def test_the_fake_signer_reproduces_the_official_vector() -> None:
    assert signature(SECRET, BODY, MSG_ID, TIMESTAMP) == GOOD
    assert sign(SECRET, BODY, MSG_ID, TIMESTAMP)["webhook-signature"] == GOOD


ACCEPTED = [
    pytest.param(vector_headers(), (SECRET,), TIMESTAMP, id="official test vector"),
    pytest.param(vector_headers(), (OTHER_SECRET, SECRET), TIMESTAMP, id="second secret"),
    pytest.param(vector_headers(), (SECRET, OTHER_SECRET), TIMESTAMP, id="first of two secrets"),
    pytest.param(
        vector_headers(**{"webhook-signature": f"v1,bm90IGl0 v1a,c29tZXRoaW5n {GOOD}"}),
        (SECRET,),
        TIMESTAMP,
        id="one of several signatures",
    ),
    pytest.param(
        vector_headers(
            **{"webhook-signature": f"{signature(OTHER_SECRET, BODY, MSG_ID, TIMESTAMP)} {GOOD}"}
        ),
        (OTHER_SECRET,),
        TIMESTAMP,
        id="sender signing with two secrets",
    ),
    pytest.param(
        {"svix-id": MSG_ID, "svix-timestamp": str(TIMESTAMP), "svix-signature": GOOD},
        (SECRET,),
        TIMESTAMP,
        id="svix header names",
    ),
    pytest.param(
        sign(TEST_SECRET, BODY, MSG_ID, TIMESTAMP),
        (TEST_SECRET.rstrip("="),),
        TIMESTAMP,
        id="secret shown without base64 padding",
    ),
    pytest.param(vector_headers(), (SECRET,), TIMESTAMP + 300, id="300 s old"),
    pytest.param(vector_headers(), (SECRET,), TIMESTAMP - 300, id="300 s ahead"),
]


@pytest.mark.parametrize(("headers", "secrets", "now"), ACCEPTED)
def test_accepts_a_valid_signature(
    headers: dict[str, str], secrets: tuple[str, ...], now: int
) -> None:
    assert verify(headers, secrets=secrets, now=now) == MSG_ID


REFUSED = [
    pytest.param(
        {}, {"body": b'{"test": 2432232315}'}, "no webhook-signature matches", id="tampered body"
    ),
    pytest.param(
        {},
        {"body": b'{"test":2432232314}'},
        "no webhook-signature matches",
        id="re-serialized body",
    ),
    pytest.param(
        {}, {"secrets": (OTHER_SECRET,)}, "no webhook-signature matches", id="wrong secret"
    ),
    pytest.param({}, {"secrets": ()}, "no signing secret", id="no secret configured"),
    pytest.param({"webhook-id": "msg_other"}, {}, "no webhook-signature matches", id="other id"),
    pytest.param({"webhook-id": ""}, {}, "missing webhook-id header", id="missing id"),
    pytest.param(
        {"webhook-timestamp": ""}, {}, "missing webhook-timestamp header", id="missing timestamp"
    ),
    pytest.param(
        {"webhook-signature": ""}, {}, "missing webhook-signature header", id="missing signature"
    ),
    pytest.param(
        {"webhook-id": "", "webhook-signature": ""},
        {},
        "missing webhook-id, webhook-signature header",
        id="two missing",
    ),
    pytest.param({}, {"now": TIMESTAMP + 301}, "too old", id="stale"),
    pytest.param({}, {"now": TIMESTAMP - 301}, "in the future", id="future"),
    pytest.param({"webhook-timestamp": "soon"}, {}, "must be an integer", id="word timestamp"),
    pytest.param({"webhook-timestamp": f"{TIMESTAMP}.5"}, {}, "must be an integer", id="fraction"),
    pytest.param({"webhook-timestamp": f"-{TIMESTAMP}"}, {}, "must be an integer", id="negative"),
    pytest.param({"webhook-signature": "garbage"}, {}, "no v1 signature", id="garbage signature"),
    pytest.param({"webhook-signature": "v1a," + GOOD[3:]}, {}, "no v1 signature", id="v1a only"),
    pytest.param({"webhook-signature": GOOD[3:]}, {}, "no v1 signature", id="no version prefix"),
    pytest.param(
        {"webhook-signature": "v1,***"}, {}, "no webhook-signature matches", id="not base64"
    ),
    pytest.param(
        {"webhook-signature": "v1," + GOOD[4:]}, {}, "no webhook-signature matches", id="truncated"
    ),
]


@pytest.mark.parametrize(("headers", "options", "message"), REFUSED)
def test_refuses(headers: dict[str, str], options: dict[str, Any], message: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)) as caught:
        verify(vector_headers(**headers), **options)
    text = str(caught.value)
    assert SECRET.removeprefix("whsec_") not in text
    assert GOOD[3:] not in text


def test_prefers_webhook_headers_over_svix_ones() -> None:
    headers = {**vector_headers(), "svix-id": "msg_svix", "svix-signature": "v1,bm9wZQ=="}
    assert verify(headers) == MSG_ID


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_abc*"])
def test_a_malformed_secret_is_a_configuration_error_that_hides_it(secret: str) -> None:
    with pytest.raises(ValueError, match="'whsec_' followed by base64") as caught:
        standard_webhooks.signing_key(secret)
    assert secret not in str(caught.value)


def test_signing_key_strips_the_prefix_and_decodes() -> None:
    assert standard_webhooks.signing_key(TEST_SECRET) == bytes(range(32))
