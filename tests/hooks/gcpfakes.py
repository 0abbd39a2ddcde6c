"""Stand-ins for Google in tests: an OIDC signing key, its JWKS, and push tokens signed with it.

Unit tests hand a `KeyServer` to `HookContext(http_get=...)`; integration tests can serve
`jwks(...)` from a local HTTP server and point a source's `oidc_jwks_url` at it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://accounts.google.com"
AUDIENCE = "https://relay.example.com/hooks/gcs"
SERVICE_ACCOUNT = "push-invoker@example-project.iam.gserviceaccount.com"
JWKS_URL = "https://keys.example.com/oauth2/v3/certs"
KID = "test-key-1"
TOKEN_LIFETIME = 3600  # what Google gives a push token


def make_key() -> rsa.RSAPrivateKey:
    """Create an RSA signing key like Google's (2048 bits)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """Return the public half of `key` as a JWK, the way Google's certs endpoint lists it."""
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def jwks(*signers: tuple[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    """Return a JWKS document publishing each (kid, key) pair's public key."""
    return {"keys": [public_jwk(key, kid) for kid, key in signers]}


def make_oidc_token(
    key: rsa.RSAPrivateKey, kid: str, *, now: float | None = None, **claims: Any
) -> str:
    """Sign a token like Pub/Sub push's; `claims` override the defaults, None drops a claim."""
    issued = int(time.time() if now is None else now)
    defaults = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "sub": "113774264463038321964",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME,
    }
    payload = {name: value for name, value in {**defaults, **claims}.items() if value is not None}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


class KeyServer:
    """An `http_get` that serves one JWKS document and records each URL it was asked for."""

    def __init__(self, key_set: dict[str, Any]) -> None:
        self.key_set = key_set
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        return json.dumps(self.key_set).encode()


class Clock:
    """A settable `now` for HookContext."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
