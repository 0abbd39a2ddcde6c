"""`relay demo`: bring the stack up, send every bundled example, check what became of them.

Exits 0 only if every example did what it should: the storage events became samples, the
predictions became PRELABELED labels, and a release went PENDING -> SUCCEEDED.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import redis
import requests

from config import Settings
from relay.events import TERMINAL, EventStore
from relay.sender import send
from relay.stack import Stack, free_port, start_stack

EXAMPLES = Path(__file__).with_name("examples")


@dataclass(frozen=True)
class Example:
    source: str
    file: str
    expect: str  # what the demo checks: "sample" or "label"
    query: dict[str, str] = field(default_factory=dict)


# In order: the images first, then the predictions that name them.
DEMO_EXAMPLES = (
    Example("s3", "s3_put.json", "sample"),
    Example("s3", "eventbridge_s3_object_created.json", "sample"),
    Example("minio", "minio_put.json", "sample"),
    Example("gcs", "gcs_pubsub_push.json", "sample"),
    Example("azure", "eventgrid_blob_created.json", "sample"),
    Example("predictions", "prediction.json", "label"),
    Example("replicate", "replicate_succeeded.json", "label", {"sample": "myphoto.jpg"}),
)


def run_demo(base_env: dict[str, str]) -> bool:
    """Run the demo in a scratch directory; report whether everything worked."""
    scratch = Path(tempfile.mkdtemp(prefix="relay-demo-"))
    env = {
        **{k: v for k, v in base_env.items() if k not in ("RELAY_REDIS_URL", "RELAY_CONFIG")},
        "RELAY_SEGMENTS_API_URL": "",
        "RELAY_DATA_DIR": str(scratch),
        "RELAY_PORT": str(free_port()),
        "RELAY_SANDBOX_PORT": str(free_port()),
    }
    env.pop("RELAY_SEGMENTS_API_URL")
    env.pop("RELAY_SEGMENTS_API_KEY", None)
    stack = Stack(scratch)
    try:
        relay_url = start_stack(stack, env, workers=1)
        settings = Settings.from_env(env)
        store = EventStore(
            redis.Redis.from_url(env["RELAY_REDIS_URL"]), ttl_seconds=3600, stale_seconds=600
        )
        ok = all([send_examples(relay_url, settings, store), cut_release(relay_url, env)])
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    click.echo("demo: everything worked" if ok else "demo: something did not work (see above)")
    return ok


def send_examples(relay_url: str, settings: Settings, store: EventStore) -> bool:
    ok = True
    for example in DEMO_EXAMPLES:
        body = (EXAMPLES / example.file).read_bytes()
        response = send(relay_url, settings.sources[example.source], body, query=example.query)
        accepted = response.json().get("accepted", []) if response.ok else []
        if len(accepted) != 1:
            click.echo(
                f"FAIL {example.source:<12} {example.file}: {response.status_code} {response.text}"
            )
            ok = False
            continue
        event = wait_finished(store, accepted[0])
        result = (event.result or {}) if event else {}
        if event is None or event.status != "succeeded":
            reason = event.last_error if event else "did not finish in time"
            click.echo(f"FAIL {example.source:<12} {example.file}: {reason}")
            ok = False
        else:
            click.echo(f"ok   {example.source:<12} {example.file:<38} {describe(example, result)}")
    return ok


def describe(example: Example, result: dict) -> str:
    if example.expect == "sample":
        return f"sample {result['name']!r} in {result['dataset']}"
    score = result.get("score") or 0
    return (
        f"PRELABELED, score {score:.2f}, {result['annotations']} objects on {result['sample_uuid']}"
    )


def cut_release(relay_url: str, env: dict[str, str]) -> bool:
    headers = {"Authorization": f"Bearer {env['RELAY_OPS_TOKEN']}"}
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    body = {"dataset": "demo/images", "name": name, "description": "Cut by relay demo"}
    response = requests.post(f"{relay_url}/ops/releases", json=body, headers=headers, timeout=10)
    if response.status_code != 202:
        click.echo(f"FAIL release: {response.status_code} {response.text}")
        return False
    url = f"{relay_url}/ops/releases/demo/images/{name}"
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        release = requests.get(url, headers=headers, timeout=10).json()
        if not seen or seen[-1] != release["status"]:
            seen.append(release["status"])
        if release["status"] in ("SUCCEEDED", "FAILED", "timed_out"):
            break
        time.sleep(0.5)
    path = " -> ".join(seen)
    if seen[-1] != "SUCCEEDED":
        click.echo(f"FAIL release {name}: {path}")
        return False
    click.echo(f"ok   release      {name:<38} {path}, export {release.get('export_url')}")
    return True


def wait_finished(store: EventStore, event_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = store.get(event_id)
        if event is not None and event.status in TERMINAL:
            return event
        time.sleep(0.2)
    return store.get(event_id)
