"""Google OIDC token verification: signature, claims, key-set caching and refetching."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from config.sources import GOOGLE_ISSUERS
from relay.errors import SignatureError, UpstreamError
from relay.hooks.base import HookContext
from relay.hooks.oidc import verify_google_oidc
from tests.hooks.gcpfakes import (
    AUDIENCE,
    JWKS_URL,
    KID,
    SERVICE_ACCOUNT,
    Clock,
    KeyServer,
    jwks,
    make_key,
    make_oidc_token,
    public_jwk,
)

NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def key_server(key: rsa.RSAPrivateKey) -> KeyServer:
    return KeyServer(jwks((KID, key)))


@pytest.fixture
def ctx(key_server: KeyServer, clock: Clock) -> HookContext:
    return HookContext(http_get=key_server, now=clock)


def verify(token: str, ctx: HookContext, emails: tuple[str, ...] = (SERVICE_ACCOUNT,)) -> dict:
    return verify_google_oidc(
        token,
        audience=AUDIENCE,
        issuers=GOOGLE_ISSUERS,
        emails=emails,
        jwks_url=JWKS_URL,
        ctx=ctx,
    )


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    """Assemble a JWT by hand, for tokens PyJWT refuses to make (alg none)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


def swap_payload(token: str, **claims: Any) -> str:
    head, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return unsigned(jwt.get_unverified_header(token), {**decoded, **claims}, signature)


# --- accepted tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "emails"),
    [
        pytest.param({}, (SERVICE_ACCOUNT,), id="push-token"),
        pytest.param({"iss": "accounts.google.com"}, (SERVICE_ACCOUNT,), id="bare-issuer"),
        pytest.param({"exp": NOW - 30}, (SERVICE_ACCOUNT,), id="expired-within-leeway"),
        pytest.param({"iat": NOW + 30}, (SERVICE_ACCOUNT,), id="issued-within-leeway"),
        pytest.param({"aud": [AUDIENCE, "other"]}, (SERVICE_ACCOUNT,), id="audience-list"),
        pytest.param({"email": "any@example.com"}, (), id="any-account-when-none-listed"),
        pytest.param({"email_verified": "true"}, (SERVICE_ACCOUNT,), id="verified-as-string"),
    ],
)
def test_valid_token_returns_its_claims(
    key: rsa.RSAPrivateKey, ctx: HookContext, claims: dict[str, Any], emails: tuple[str, ...]
) -> None:
    token = make_oidc_token(key, KID, now=NOW, **claims)
    assert verify(token, ctx, emails)["sub"] == "113774264463038321964"


# --- rejected claims ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"exp": NOW - 61}, "expired", id="expired"),
        pytest.param({"iat": NOW + 120, "exp": NOW + 3720}, "not valid yet", id="issued-later"),
        pytest.param({"nbf": NOW + 120}, "not valid yet", id="not-before-later"),
        pytest.param({"aud": "https://elsewhere.example.com"}, "audience", id="wrong-audience"),
        pytest.param({"iss": "https://evil.example.com"}, "issuer", id="wrong-issuer"),
        pytest.param({"email": "intruder@example.com"}, "service account", id="wrong-account"),
        pytest.param({"email": None}, "service account", id="no-email"),
        pytest.param({"email_verified": False}, "not verified", id="email-unverified"),
        pytest.param({"email_verified": None}, "not verified", id="no-email-verified"),
        pytest.param({"exp": None}, "'exp' claim", id="no-exp"),
        pytest.param({"iat": None}, "'iat' claim", id="no-iat"),
        pytest.param({"aud": None}, "'aud' claim", id="no-aud"),
        pytest.param({"exp": "tomorrow"}, "not a number", id="exp-not-number"),
    ],
)
def test_token_with_bad_claims_is_refused(
    key: rsa.RSAPrivateKey, ctx: HookContext, claims: dict[str, Any], reason: str
) -> None:
    token = make_oidc_token(key, KID, now=NOW, **claims)
    with pytest.raises(SignatureError, match=reason) as caught:
        verify(token, ctx)
    assert token not in caught.value.message


# --- rejected tokens ----------------------------------------------------------------------------

_SECRET = "a-shared-secret-long-enough-for-hs256-0123456789"
_CLAIMS = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": SERVICE_ACCOUNT}
_VALID = {**_CLAIMS, "email_verified": True, "iat": int(NOW), "exp": int(NOW) + 3600}

TokenMaker = Callable[[rsa.RSAPrivateKey, rsa.RSAPrivateKey], str]
BAD_TOKENS: list[tuple[str, TokenMaker, str]] = [
    (
        "hs256",
        lambda key, other: jwt.encode(_VALID, _SECRET, algorithm="HS256", headers={"kid": KID}),
        "not signed with RS256",
    ),
    (
        "alg-none",
        lambda key, other: unsigned({"alg": "none", "kid": KID}, _VALID),
        "not signed with RS256",
    ),
    (
        "rs512",
        lambda key, other: jwt.encode(_VALID, key, algorithm="RS512", headers={"kid": KID}),
        "not signed with RS256",
    ),
    (
        "tampered-signature",
        lambda key, other: tamper_signature(make_oidc_token(key, KID, now=NOW)),
        "signature",
    ),
    (
        "tampered-claims",
        lambda key, other: swap_payload(make_oidc_token(key, KID, now=NOW), email="x@evil.com"),
        "signature",
    ),
    (
        "signed-by-another-key",
        lambda key, other: make_oidc_token(other, KID, now=NOW),
        "signature",
    ),
    ("unknown-kid", lambda key, other: make_oidc_token(key, "rotated-away", now=NOW), "unknown"),
    (
        "no-kid",
        lambda key, other: jwt.encode(_VALID, key, algorithm="RS256"),
        "signing key",
    ),
    ("garbage", lambda key, other: "not-a-jwt", "well-formed"),
    ("empty", lambda key, other: "", "well-formed"),
    ("three-dots", lambda key, other: "a.b.c", "well-formed"),
]


@pytest.mark.parametrize(
    ("make", "reason"), [pytest.param(make, reason, id=name) for name, make, reason in BAD_TOKENS]
)
def test_bad_token_is_refused(
    key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    ctx: HookContext,
    make: TokenMaker,
    reason: str,
) -> None:
    token = make(key, other_key)
    with pytest.raises(SignatureError, match=reason) as caught:
        verify(token, ctx)
    assert not token or token not in caught.value.message


# --- the key set --------------------------------------------------------------------------------


def test_key_set_is_fetched_once_for_many_tokens(
    key: rsa.RSAPrivateKey, ctx: HookContext, key_server: KeyServer, clock: Clock
) -> None:
    verify(make_oidc_token(key, KID, now=NOW), ctx)
    clock.now += 600
    verify(make_oidc_token(key, KID, now=clock.now), ctx)
    assert key_server.fetched == [JWKS_URL]


def test_key_set_is_refetched_after_an_hour(
    key: rsa.RSAPrivateKey, ctx: HookContext, key_server: KeyServer, clock: Clock
) -> None:
    verify(make_oidc_token(key, KID, now=NOW), ctx)
    clock.now += 3600
    verify(make_oidc_token(key, KID, now=clock.now), ctx)
    assert key_server.fetched == [JWKS_URL, JWKS_URL]


def test_unknown_kid_refetches_once_then_fails(
    key: rsa.RSAPrivateKey, ctx: HookContext, key_server: KeyServer, clock: Clock
) -> None:
    verify(make_oidc_token(key, KID, now=NOW), ctx)
    clock.now += 61
    stranger = make_oidc_token(key, "nobody-publishes-this", now=clock.now)
    with pytest.raises(SignatureError, match="unknown key"):
        verify(stranger, ctx)
    assert len(key_server.fetched) == 2
    # A burst of forged kids does not turn into a burst of fetches.
    clock.now += 1
    with pytest.raises(SignatureError, match="unknown key"):
        verify(stranger, ctx)
    assert len(key_server.fetched) == 2


def test_rotated_key_is_picked_up_by_refetch(
    key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    ctx: HookContext,
    key_server: KeyServer,
    clock: Clock,
) -> None:
    verify(make_oidc_token(key, KID, now=NOW), ctx)
    key_server.key_set = jwks((KID, key), ("test-key-2", other_key))
    clock.now += 120
    claims = verify(make_oidc_token(other_key, "test-key-2", now=clock.now), ctx)
    assert claims["email"] == SERVICE_ACCOUNT
    assert len(key_server.fetched) == 2


def test_unusable_entries_in_the_key_set_are_skipped(key: rsa.RSAPrivateKey, clock: Clock) -> None:
    key_set = {
        "keys": [
            "not a key",
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {**public_jwk(key, "no-kid"), "kid": None},
            {**public_jwk(key, "hs"), "alg": "HS256"},
            public_jwk(key, KID),
        ]
    }
    ctx = HookContext(http_get=KeyServer(key_set), now=clock)
    assert verify(make_oidc_token(key, KID, now=NOW), ctx)["email"] == SERVICE_ACCOUNT


def _unreachable(url: str) -> bytes:
    raise OSError("connection refused")


def test_unreachable_key_server_asks_the_sender_to_retry(
    key: rsa.RSAPrivateKey, clock: Clock
) -> None:
    ctx = HookContext(http_get=_unreachable, now=clock)
    with pytest.raises(UpstreamError, match="cannot fetch") as caught:
        verify(make_oidc_token(key, KID, now=NOW), ctx)
    assert caught.value.status_code == 502


@pytest.mark.parametrize(
    ("http_get", "reason"),
    [
        pytest.param(lambda url: b"<html>", "JSON Web Key Set", id="not-json"),
        pytest.param(lambda url: b'{"keys": {}}', "JSON Web Key Set", id="keys-not-a-list"),
        pytest.param(lambda url: b'{"keys": []}', "unknown key", id="no-keys"),
    ],
)
def test_unusable_key_server_refuses_tokens(
    key: rsa.RSAPrivateKey, clock: Clock, http_get: Callable[[str], bytes], reason: str
) -> None:
    ctx = HookContext(http_get=http_get, now=clock)
    with pytest.raises(SignatureError, match=reason):
        verify(make_oidc_token(key, KID, now=NOW), ctx)
