"""Release notifications: notify URL checks, the message, Standard Webhooks signing, one POST.

A message is JSON with a `text` line chat webhooks can show, signed like any Standard Webhooks
sender would (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The `webhook-id` is stable
per release and outcome, so a receiver can drop a message delivered twice.

Notify URLs must not point into the relay's own network (the relay would become a way to reach
it): https only and only public addresses, unless a target explicitly allows http or private
addresses. The URL is checked at start-up and again before each delivery, because DNS may change.
Nothing here logs or returns a URL: chat webhook URLs carry their token in the path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from relay.hooks.standard_webhooks import expected_signature, signing_key
from relay.segments.errors import parse_retry_after

if TYPE_CHECKING:
    from config.releases import NotifyTarget
    from relay.releases import TrackedRelease

USER_AGENT = "segments-relay-notify"
TIMEOUT = (3.05, 10.0)
OUTCOMES = {"SUCCEEDED": "succeeded", "FAILED": "failed", "timed_out": "timed_out"}
RETRYABLE_STATUSES = frozenset({408, 425, 429})

Resolver = Callable[[str], Sequence[str]]


class DestinationError(Exception):
    """A notify URL's host is private (or cannot be resolved right now)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def resolve_host(host: str) -> list[str]:
    """Every address `host` resolves to; OSError when it does not resolve."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def is_public(address: str) -> bool:
    """Whether an IP address is globally routable (not private, loopback, link-local, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def private_addresses(host: str, resolve: Resolver = resolve_host) -> list[str]:
    """The non-public addresses `host` is (a literal IP) or resolves to; OSError if it cannot."""
    literal = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(literal))]
    except ValueError:
        addresses = list(resolve(host))
    return [address for address in addresses if not is_public(address)]


def url_problems(
    url: str, *, allow_http: bool, allow_private: bool, resolve: Resolver = resolve_host
) -> list[str]:
    """Why a notify URL is refused; empty when it is fine.

    A host that does not resolve now is not refused here (DNS may be away at start-up); every
    delivery checks the address again.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return ["not a valid URL"]
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        hint = "" if allow_http or parts.scheme != "http" else " (set allow_http = true to allow)"
        return [f"must be an {' or '.join(schemes)} URL, not {parts.scheme or 'no'} scheme{hint}"]
    if not host:
        return ["has no host"]
    if allow_private:
        return []
    try:
        private = private_addresses(host, resolve)
    except OSError:
        return []
    return [_private_problem(host, private)] if private else []


def _private_problem(host: str, private: Sequence[str]) -> str:
    return (
        f"host {host} is a private, loopback or link-local address ({', '.join(private)}); "
        "set allow_private = true to allow"
    )


def check_destination(target: NotifyTarget, resolve: Resolver = resolve_host) -> None:
    """Raise DestinationError unless the target's URL may be called right now."""
    problems = url_problems(target.url, allow_http=target.allow_http, allow_private=True)
    if problems:
        raise DestinationError(f"refused: {problems[0]}", retryable=False)
    if target.allow_private:
        return
    host = urlsplit(target.url).hostname or ""
    try:
        private = private_addresses(host, resolve)
    except OSError as exc:
        raise DestinationError(f"cannot resolve {host}: {exc}", retryable=True) from None
    if private:
        raise DestinationError(f"refused: {_private_problem(host, private)}", retryable=False)


# -- the message -------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """`42s`, `3m 5s`, `2h 0m`: how long a release took, for people."""
    if seconds is None:
        return "an unknown time"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    return f"{total // 3600}h {total % 3600 // 60}m"


def message_text(release: TrackedRelease) -> str:
    """The one line a chat shows for an ended release."""
    head = f"Release {release.name} of {release.dataset}"
    took = format_duration(release.duration_seconds)
    if release.status == "SUCCEEDED":
        tail = f": {release.export_url}" if release.export_url else ""
        return f"{head} SUCCEEDED in {took}{tail}"
    if release.status == "FAILED":
        reason = f": {release.last_error}" if release.last_error else ""
        return f"{head} FAILED after {took}{reason}"
    return f"{head} TIMED OUT: still PENDING after {took}, the relay stopped polling"


def build_message(release: TrackedRelease) -> dict[str, Any]:
    """The JSON body sent to every notify target when a release has ended."""
    return {
        "type": f"release.{OUTCOMES[release.status]}",
        "dataset": release.dataset,
        "release": release.name,
        "status": release.status,
        "export_url": release.export_url,
        "duration_seconds": release.duration_seconds,
        "finished_at": release.to_json()["finished_at"],
        "error": release.last_error if release.status != "SUCCEEDED" else None,
        "text": message_text(release),
    }


def webhook_id(release: TrackedRelease) -> str:
    """Stable per release, outcome and round, so receivers can drop a redelivered message."""
    seed = f"{release.key}\n{release.status}\n{release.generation}"
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64>` for each secret (two while rotating), space-separated."""
    return " ".join(
        "v1," + expected_signature(signing_key(s), msg_id, str(timestamp), body).decode()
        for s in secrets
    )


def signed_request(
    release: TrackedRelease, secrets: Sequence[str], timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt."""
    body = json.dumps(build_message(release), separators=(",", ":")).encode()
    msg_id = webhook_id(release)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }
    return body, headers


# -- one delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What one POST to a notify target came to."""

    ok: bool
    retryable: bool = False
    error: str | None = None
    status: int | None = None
    retry_after: float | None = None


def send(
    target: NotifyTarget,
    body: bytes,
    headers: dict[str, str],
    *,
    session: requests.Session | None = None,
    resolve: Resolver = resolve_host,
) -> SendResult:
    """POST one signed message; connection errors, 408, 429 and 5xx are worth retrying."""
    try:
        check_destination(target, resolve)
    except DestinationError as exc:
        return SendResult(ok=False, retryable=exc.retryable, error=str(exc))
    post = session.post if session is not None else requests.post
    try:
        response = post(
            target.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
    except requests.Timeout:
        return SendResult(ok=False, retryable=True, error="timed out")
    except requests.RequestException as exc:
        # The exception text holds the URL (and its token): keep the kind only.
        return SendResult(
            ok=False, retryable=True, error=f"connection failed: {type(exc).__name__}"
        )
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return SendResult(ok=True, status=status)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if retryable else None
    return SendResult(
        ok=False,
        retryable=retryable,
        error=f"answered HTTP {status}",
        status=status,
        retry_after=retry_after,
    )
