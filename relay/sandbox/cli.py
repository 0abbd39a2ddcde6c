"""The `sandbox` command: serve the Segments.ai stand-in until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from werkzeug.serving import BaseWSGIServer, make_server

from relay.sandbox.app import create_sandbox_app
from relay.sandbox.config import DEFAULT_KEY, DEFAULT_USER, SandboxConfig
from relay.sandbox.state import EXTENSION
from relay.sandbox.validation import SLUG


def parse_api_keys(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """`USER:KEY` options as a key -> user mapping; none gives the demo user."""
    keys: dict[str, str] = {}
    for value in values:
        user, _, key = value.partition(":")
        if not SLUG.fullmatch(user) or not key:
            raise click.BadParameter(f"expected USER:KEY, got {user or '?'}:...", ctx, param)
        if keys.get(key, user) != user:
            raise click.BadParameter("one key given to two users", ctx, param)
        keys[key] = user
    return keys or {DEFAULT_KEY: DEFAULT_USER}


def stop_on_signals(server: BaseWSGIServer) -> None:
    """Shut the server down cleanly on SIGTERM and SIGINT."""

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep state in DIR/sandbox.sqlite3 across restarts (default: in memory).",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="USER:KEY",
    callback=parse_api_keys,
    help=f"An account and its API key; repeatable (default: {DEFAULT_USER}:{DEFAULT_KEY}).",
)
@click.option(
    "--release-seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a release stays PENDING.",
)
@click.option(
    "--latency-ms", default=0, type=click.IntRange(min=0), help="Delay every API request."
)
@click.option(
    "--fail-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of API requests answered with a 500.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    help="API requests per second per key; more get a 429.",
)
def sandbox(
    host: str,
    port: int,
    data_dir: Path | None,
    api_keys: dict[str, str],
    release_seconds: float,
    latency_ms: int,
    fail_rate: float,
    rate_limit: int | None,
) -> None:
    """Run a local stand-in for the Segments.ai API."""
    config = SandboxConfig(
        api_keys=api_keys,
        data_dir=data_dir,
        release_seconds=release_seconds,
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        rate_limit=rate_limit,
    )
    app = create_sandbox_app(config)
    # On a port already taken, werkzeug says so itself and exits with status 1.
    server = make_server(host, port, app, threaded=True)
    stop_on_signals(server)
    click.echo(f"Segments.ai sandbox listening on http://{host}:{server.port}/")
    click.echo(f"Users: {', '.join(config.usernames)}")
    click.echo(f"State: {data_dir or 'in memory'}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.extensions[EXTENSION].store.close()
    click.echo("Sandbox stopped.")
