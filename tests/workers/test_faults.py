"""No accepted event lost, no effect doubled: killed workers and a restarted Redis.

Each test runs its own Redis, relay, worker and beat (the shared stack's must not be disturbed),
against the shared sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import requests

from relay.events import EventStore
from relay.stack import beat_args, gunicorn_args, worker_args
from tests.conftest import FIXTURES, redis_server_args, wait_for
from tests.procs import free_port, running, stop, wait_for_http

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

S3 = {"X-Relay-Token": "s3-token-current", "Content-Type": "application/json"}


def s3_event(key: str) -> str:
    body = json.loads((FIXTURES / "s3_put.json").read_text())
    obj = body["Records"][0]["s3"]["object"]
    obj["key"], obj["versionId"] = key, f"v-{key}"
    return json.dumps(body)


class IsolatedStack:
    """Redis, gunicorn, a worker and beat of one test's own, on free ports."""

    def __init__(self, tmp: Path, relay_env: dict[str, str], resources: ExitStack) -> None:
        self.tmp = tmp
        self.resources = resources
        self.redis_port = free_port()
        self.redis_dir = tmp / "redis"
        self.redis_dir.mkdir()
        self.env = {
            **relay_env,
            "RELAY_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "RELAY_RECONCILE_SECONDS": "1",
            "RELAY_STALE_SECONDS": "4",
            "RELAY_DATA_DIR": str(tmp),
        }
        self.redis_proc = self.start_redis()
        self.client = redis.Redis(port=self.redis_port, socket_timeout=5)
        self.store = EventStore(self.client, ttl_seconds=3600, stale_seconds=4)
        port = free_port()
        args = gunicorn_args(str(port), workers=1)
        args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
        relay = resources.enter_context(running(args, env=self.env, log=tmp / "relay.log"))
        self.url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{self.url}/healthz", proc=relay)
        self.worker = self.start_worker()
        resources.enter_context(running(beat_args(tmp), env=self.env, log=tmp / "beat.log"))

    def start_redis(self) -> subprocess.Popen:
        proc = self.resources.enter_context(
            running(redis_server_args(self.redis_port, self.redis_dir), log=self.tmp / "redis.log")
        )
        wait_for(lambda: _pings(self.redis_port), what="redis")
        return proc

    def start_worker(self) -> subprocess.Popen:
        return self.resources.enter_context(
            running(worker_args(concurrency=1), env=self.env, log=self.tmp / "worker.log")
        )

    def post(self, body: str) -> requests.Response:
        return requests.post(f"{self.url}/hooks/s3", data=body, headers=S3, timeout=10)

    def finished(self, event_id: str, timeout: float = 60):
        return wait_for(
            lambda: (e := self.store.get(event_id)) is not None and e.status == "succeeded" and e,
            timeout=timeout,
            what=f"event {event_id} to succeed",
        )


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def isolated(tmp_path, relay_env, sandbox, stack_dataset):
    with ExitStack() as resources:
        yield IsolatedStack(tmp_path, relay_env, resources)


@pytest.fixture
def stack_dataset(sandbox):
    body = {
        "name": "images",
        "task_type": "bboxes",
        "task_attributes": {"format_version": "0.1", "categories": [{"id": 1, "name": "car"}]},
    }
    sandbox.session().post(
        f"{sandbox.url}/user/datasets/", json=body, timeout=10
    ).raise_for_status()


def sample_names(sandbox) -> list[str]:
    response = sandbox.session().get(f"{sandbox.url}/datasets/demo/images/samples/", timeout=10)
    return sorted(s["name"] for s in response.json())


def test_worker_killed_mid_task_loses_nothing_and_doubles_nothing(isolated, sandbox):
    # Every API call takes 3 s, so the kill lands while the task is talking to the API.
    sandbox.faults(latency_ms=3000)
    response = isolated.post(s3_event("killed.jpg"))
    (event_id,) = response.json()["accepted"]
    wait_for(lambda: isolated.store.get(event_id).status == "running", what="the task to start")
    os.killpg(isolated.worker.pid, signal.SIGKILL)
    isolated.worker.wait(timeout=10)
    sandbox.faults(latency_ms=0)
    isolated.start_worker()
    event = isolated.finished(event_id)
    assert sample_names(sandbox) == ["killed.jpg"]
    assert event.attempts >= 2


def test_redis_restart_loses_no_accepted_event(isolated, sandbox):
    accepted = [isolated.post(s3_event(f"before-{i}.jpg")).json()["accepted"][0] for i in range(3)]
    for event_id in accepted:
        isolated.finished(event_id)
    stop(isolated.redis_proc)
    # While Redis is down nothing can be recorded: the sender is told to retry, never a 500.
    down = isolated.post(s3_event("during.jpg"))
    assert down.status_code == 503
    assert down.json()["error"] == "unavailable"
    assert requests.get(f"{isolated.url}/readyz", timeout=10).status_code == 503
    isolated.redis_proc = isolated.start_redis()
    # The sender retries; the relay and worker have reconnected on their own.
    retried = wait_for(
        lambda: (r := isolated.post(s3_event("during.jpg"))).status_code == 202 and r
    )
    isolated.finished(retried.json()["accepted"][0])
    for event_id in accepted:
        assert isolated.store.get(event_id).status == "succeeded"  # persisted across the restart
    assert sample_names(sandbox) == ["before-0.jpg", "before-1.jpg", "before-2.jpg", "during.jpg"]


def test_api_hanging_past_the_read_timeout_is_retried_once_done(isolated, sandbox):
    sandbox.faults(hang_rate=1.0, hang_seconds=7)  # the read timeout in relay_env is 5 s
    (event_id,) = isolated.post(s3_event("slow.jpg")).json()["accepted"]
    waiting = wait_for(
        lambda: (e := isolated.store.get(event_id)).last_error and e, timeout=30, what="a timeout"
    )
    assert "timed out" in waiting.last_error.lower() or "timeout" in waiting.last_error.lower()
    sandbox.faults(hang_rate=0.0)
    isolated.finished(event_id)
    time.sleep(3)  # a hung request finishing late must not add a second sample
    assert sample_names(sandbox) == ["slow.jpg"]


def test_message_lost_by_the_broker_is_reconciled(isolated, sandbox):
    # The worker is down, so the message waits in the queue; then the broker loses it.
    os.killpg(isolated.worker.pid, signal.SIGKILL)
    isolated.worker.wait(timeout=10)
    (event_id,) = isolated.post(s3_event("lost.jpg")).json()["accepted"]
    assert isolated.client.delete("relay") == 1  # the Celery queue: a Redis list named after it
    isolated.start_worker()
    # Beat's reconciler sees the event queued past RELAY_STALE_SECONDS and enqueues it again.
    event = isolated.finished(event_id)
    assert event.attempts == 1
    assert sample_names(sandbox) == ["lost.jpg"]
