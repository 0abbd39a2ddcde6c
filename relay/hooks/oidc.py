"""Verify the Google-signed OIDC ID tokens that Pub/Sub push and Eventarc send as bearer tokens.

The signing keys come from a JWKS URL (Google's by default), fetched with `ctx.http_get` and kept
in `ctx.cache` for an hour. Times are checked against `ctx.now`, so tests can move the clock.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import jwt

from relay.errors import SignatureError, UpstreamError
from relay.hooks.base import HookContext

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60  # clock skew between Google and us
JWKS_TTL_SECONDS = 3600
# Google publishes a key before signing with it, so an unknown kid means our copy may be stale;
# refetch then, but at most once a minute so forged kids cannot make us hammer the key server.
JWKS_REFETCH_SECONDS = 60
REQUIRED_CLAIMS = ["exp", "iat", "aud", "iss"]


@dataclass(frozen=True)
class _KeySet:
    fetched_at: float
    keys: dict[str, jwt.PyJWK]  # by kid


def verify_google_oidc(
    token: str,
    *,
    audience: str,
    issuers: Collection[str],
    emails: Collection[str],
    jwks_url: str,
    ctx: HookContext,
) -> dict[str, Any]:
    """Return the claims of a valid Google OIDC token; raise SignatureError saying what is wrong.

    Checks: RS256 signature by a key in the JWKS, `exp`/`iat`/`nbf` (60 s leeway), `aud` is
    `audience`, `iss` is one of `issuers`, `email_verified`, and `email` is one of `emails` when
    any are given. The token itself never appears in an error.
    """
    kid = _key_id(token)
    key = _signing_key(kid, jwks_url, ctx)
    claims = _decode(token, key, audience, issuers)
    _check_lifetime(claims, ctx.now())
    _check_identity(claims, emails)
    return claims


def _key_id(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise SignatureError("the bearer token is not a well-formed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise SignatureError(f"the OIDC token is not signed with {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("the OIDC token does not name its signing key (kid)")
    return kid


def _decode(token: str, key: jwt.PyJWK, audience: str, issuers: Collection[str]) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=tuple(issuers),
            # _check_lifetime checks the times against ctx.now; PyJWT would read the real clock.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": REQUIRED_CLAIMS,
            },
        )
    except jwt.InvalidSignatureError:
        raise SignatureError("the OIDC token's signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise SignatureError("the OIDC token was issued for another audience") from None
    except jwt.InvalidIssuerError:
        raise SignatureError("the OIDC token was not issued by an allowed issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise SignatureError(f"the OIDC token has no '{exc.claim}' claim") from None
    except jwt.InvalidTokenError:
        raise SignatureError("the bearer token is not a well-formed JWT") from None


def _check_lifetime(claims: dict[str, Any], now: float) -> None:
    times = {name: claims[name] for name in ("exp", "iat", "nbf") if name in claims}
    if not all(_is_number(value) for value in times.values()):
        raise SignatureError("the OIDC token's exp, iat or nbf is not a number")
    if times["exp"] <= now - LEEWAY_SECONDS:
        raise SignatureError("the OIDC token has expired")
    if max(times["iat"], times.get("nbf", times["iat"])) > now + LEEWAY_SECONDS:
        raise SignatureError("the OIDC token is not valid yet (issued in the future)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_identity(claims: dict[str, Any], emails: Collection[str]) -> None:
    # Google has sent email_verified as the string "true" in some tokens.
    if claims.get("email_verified") not in (True, "true"):
        raise SignatureError("the OIDC token's email is not verified")
    if emails and claims.get("email") not in emails:
        raise SignatureError(
            "the OIDC token belongs to a service account this source does not allow"
        )


def _signing_key(kid: str, jwks_url: str, ctx: HookContext) -> jwt.PyJWK:
    now = ctx.now()
    cache_key = f"oidc-jwks:{jwks_url}"
    key_set = ctx.cache.get(cache_key)
    stale = key_set is None or now - key_set.fetched_at >= JWKS_TTL_SECONDS
    if stale or (kid not in key_set.keys and now - key_set.fetched_at >= JWKS_REFETCH_SECONDS):
        key_set = ctx.cache[cache_key] = _fetch_key_set(jwks_url, ctx, now)
    key = key_set.keys.get(kid)
    if key is None:
        raise SignatureError("the OIDC token is signed with an unknown key")
    return key


def _fetch_key_set(jwks_url: str, ctx: HookContext, now: float) -> _KeySet:
    try:
        body = ctx.http_get(jwks_url)
    except Exception as exc:  # http_get's error types depend on the adapter behind it
        raise UpstreamError(f"cannot fetch the OIDC signing keys from {jwks_url}") from exc
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise SignatureError(f"{jwks_url} did not return a JSON Web Key Set")
    return _KeySet(fetched_at=now, keys=_rsa_keys(entries))


def _rsa_keys(entries: list[Any]) -> dict[str, jwt.PyJWK]:
    keys = {}
    for entry in entries:
        usable = (
            isinstance(entry, dict)
            and entry.get("kty") == "RSA"
            and entry.get("alg", ALGORITHM) == ALGORITHM
            and isinstance(entry.get("kid"), str)
        )
        if not usable:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except jwt.PyJWTError:
            continue  # one malformed key must not take the others down with it
    return keys
