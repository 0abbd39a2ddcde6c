"""The `relay` command."""

from __future__ import annotations

import json
import os
import sys

import click

from config import ConfigError, Settings
from relay.sandbox.cli import sandbox


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group()
def main() -> None:
    """Segments Relay: storage and model events into Segments.ai."""


main.add_command(sandbox)


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def up(workers: int) -> None:
    """Run the whole stack in the foreground (Redis, sandbox, relay, worker, beat)."""
    from relay.stack import run_stack

    run_stack(dict(os.environ), workers=workers)


@main.command()
def demo() -> None:
    """Bring the stack up, send every bundled example, print what happened; exit 1 on failure."""
    from relay.demo import run_demo

    sys.exit(0 if run_demo(dict(os.environ)) else 1)


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def serve(workers: int) -> None:
    """Serve the relay under gunicorn on RELAY_PORT."""
    from relay.stack import gunicorn_args

    settings = _settings()
    settings.require_redis_url()
    args = gunicorn_args(str(settings.port), workers)
    os.execv(args[0], args)


@main.command()
@click.option("--concurrency", default=2, show_default=True)
def worker(concurrency: int) -> None:
    """Run a Celery worker."""
    from relay.stack import worker_args

    _settings().require_redis_url()
    args = worker_args(concurrency)
    os.execv(args[0], args)


@main.command()
def beat() -> None:
    """Run Celery beat (the reconciler's schedule)."""
    from pathlib import Path

    from relay.stack import beat_args

    settings = _settings()
    settings.require_redis_url()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    args = beat_args(Path(settings.data_dir))
    os.execv(args[0], args)


@main.command()
@click.option("--relay-url", default=None, help="default: http://127.0.0.1:$RELAY_PORT")
@click.option("--query", "-q", multiple=True, metavar="NAME=VALUE", help="query parameter")
@click.argument("source_name")
@click.argument("body", type=click.File("rb"))
def send(relay_url: str | None, query: tuple[str, ...], source_name: str, body) -> None:
    """POST a JSON file to /hooks/SOURCE, signed or tokened as that source expects."""
    from relay.sender import send as send_body

    settings = _settings()
    source = settings.sources.get(source_name)
    if source is None:
        raise click.ClickException(f"no source named '{source_name}' in {settings.config_path}")
    params = dict(item.partition("=")[::2] for item in query)
    url = relay_url or f"http://127.0.0.1:{settings.port}"
    response = send_body(url, source, body.read(), query=params)
    click.echo(f"{response.status_code} {response.text.strip()}")
    sys.exit(0 if response.ok else 1)


@main.command("check-config")
def check_config() -> None:
    """Validate the settings and the sources file; print the sources without secrets."""
    settings = _settings()
    click.echo(f"config: {settings.config_path}")
    for source in settings.sources.values():
        click.echo(f"\n/hooks/{source.name}  type={source.type}  secrets={len(source.secrets)}")
        if source.type in ("s3", "sagemaker"):
            click.echo(f"  verify={source.verify}  topic_arns={list(source.topic_arns) or 'any'}")
        if source.oidc_audience:
            click.echo(
                f"  oidc_audience={source.oidc_audience}  oidc_emails={list(source.oidc_emails)}"
            )
        for route in source.routes:
            filters = {
                "bucket": route.bucket,
                "prefix": route.prefix,
                "suffixes": list(route.suffixes),
            }
            shown = {k: v for k, v in filters.items() if v}
            click.echo(f"  -> {route.dataset}  name={route.sample_name}  {shown or 'all objects'}")
    for schedule in settings.schedules:
        cron = schedule.cron.expression
        click.echo(f"\nschedule  {schedule.dataset}  cron={cron!r}  name={schedule.name}")
    for target in settings.notify:
        # The URL itself stays hidden: chat webhook URLs carry their token.
        scheme = target.url.split(":", 1)[0]
        click.echo(f"\nnotify    {target.name}  {scheme} URL  secrets={len(target.secrets)}")
    for warning in settings.warnings():
        click.echo(f"warning: {warning}", err=True)


def _store():
    import redis

    from relay.events import EventStore

    settings = _settings()
    conn = redis.Redis.from_url(settings.require_redis_url(), socket_timeout=5)
    store = EventStore(
        conn, ttl_seconds=settings.event_ttl_days * 86400, stale_seconds=settings.stale_seconds
    )
    return settings, store


@main.command()
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "succeeded", "failed", "skipped", "ignored"]),
)
@click.option("--limit", default=20, show_default=True)
@click.argument("event_id", required=False)
def events(status: str | None, limit: int, event_id: str | None) -> None:
    """List recent events (or show one) as JSON lines."""
    _, store = _store()
    if event_id:
        event = store.get(event_id)
        if event is None:
            raise click.ClickException(f"no event {event_id}")
        click.echo(json.dumps(event.to_json(), indent=2))
        return
    for event in store.list(status=status, limit=limit):
        click.echo(json.dumps(event.to_json()))


@main.command()
@click.option("--failed", "all_failed", is_flag=True, help="replay every failed event")
@click.argument("event_ids", nargs=-1)
def replay(all_failed: bool, event_ids: tuple[str, ...]) -> None:
    """Queue failed (or finished) events again."""
    from relay.replay import replay_events
    from workers.celery_app import create_celery

    settings, store = _store()
    ids = list(event_ids)
    if all_failed:
        ids += [e.id for e in store.list(status="failed", limit=10_000)]
    if not ids:
        raise click.UsageError("name event ids or pass --failed")
    result = replay_events(store, create_celery(settings), ids)
    for skipped in result.skipped:
        click.echo(f"{skipped.id}: not replayed: {skipped.reason}", err=True)
    click.echo(f"replayed {len(result.replayed)} event(s)")
    sys.exit(1 if result.skipped else 0)
