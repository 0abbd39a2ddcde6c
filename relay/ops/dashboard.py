"""GET /ops/dashboard: one server-rendered page of what the relay is doing.

Counts by status, the configured sources (names, types and datasets; never secrets), recent and
failed events with a replay button, and tracked releases. Nothing is fetched from elsewhere: the
CSS and the little script that calls the replay endpoints are inline, allowed by a per-response
nonce in the Content-Security-Policy. Event fields come from senders, so everything is escaped
(Jinja autoescape) and the script writes only `textContent`.

Authentication: `Authorization: Bearer $RELAY_OPS_TOKEN` like every /ops endpoint, or, for this
page only, `?token=` — a browser following a link or a bookmark cannot set a header. The page's
script reads the token from its own URL to call the APIs with the header. The page is sent with
`Referrer-Policy: no-referrer` and `Cache-Control: no-store` so the URL's token does not travel on.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from relay.events import STATUSES, Event
from relay.ops.auth import check_ops_token, require_ops_token
from relay.releases import ReleaseStore

bp = Blueprint("dashboard", __name__, url_prefix="/ops", template_folder="templates")

RECENT = 50
RELEASES = 20
TOKEN_QUERY = "token"


@bp.before_request
def require_token_header_or_query() -> None:
    """The ops token as a bearer header, or (a browser's link) as `?token=`."""
    token = request.args.get(TOKEN_QUERY)
    if token is None or "Authorization" in request.headers:
        require_ops_token()
        return
    check_ops_token(token)


def iso(timestamp: float | None) -> str:
    """A Unix time as UTC ISO 8601 to the second; empty for None."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))


def event_row(event: Event) -> dict[str, Any]:
    """What a table row shows of an event."""
    return {
        "id": event.id,
        "source": event.source,
        "kind": event.kind,
        "status": event.status,
        "attempts": event.attempts,
        "note": event.last_error or event.reason or "",
        "created": iso(event.created_at),
    }


@bp.get("/dashboard")
def dashboard() -> Response:
    services = current_app.extensions["relay"]
    store = services.store
    recent, _ = store.search(limit=RECENT)
    failed, _ = store.search(status="failed", limit=RECENT)
    releases = ReleaseStore(services.redis, ttl_seconds=services.settings.event_ttl_days * 86400)
    sources = [
        {
            "name": source.name,
            "type": source.type,
            "datasets": sorted({route.dataset for route in source.routes}),
        }
        for source in sorted(services.settings.sources.values(), key=lambda s: s.name)
    ]
    counts = store.counts()
    nonce = secrets.token_urlsafe(16)
    html = render_template(
        "dashboard.html",
        nonce=nonce,
        statuses=STATUSES,
        counts=counts,
        total=sum(counts.values()),
        sources=sources,
        recent=[event_row(e) for e in recent],
        failed=[event_row(e) for e in failed],
        releases=[release_row(r) for r in releases.list(limit=RELEASES)],
        now=iso(time.time()),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def release_row(release: Any) -> dict[str, Any]:
    """What a table row shows of a tracked release."""
    duration = release.duration_seconds
    return {
        "key": release.key,
        "status": release.status,
        "origin": release.origin,
        "requested": iso(release.requested_at),
        "duration": "" if duration is None else f"{duration:.0f} s",
        "note": release.last_error or release.export_url or "",
    }
