"""`relay up` as a user runs it: the whole stack from nothing, persisted under its data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from tests.conftest import FIXTURES, SANDBOX_KEY, wait_for
from tests.procs import free_port, stop, wait_for_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_up(data_dir, relay_port: int, sandbox_port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_DATA_DIR=str(data_dir),
        RELAY_PORT=str(relay_port),
        RELAY_SANDBOX_PORT=str(sandbox_port),
    )
    command = [sys.executable, "-c", "from relay.cli import main; main()", "up", "--workers", "1"]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def samples(sandbox_url: str) -> list[str]:
    headers = {"Authorization": f"APIKey {SANDBOX_KEY}"}
    response = requests.get(
        f"{sandbox_url}/datasets/demo/images/samples/", headers=headers, timeout=5
    )
    return [s["name"] for s in response.json()]


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def test_up_serves_stops_cleanly_and_keeps_its_data(tmp_path):
    relay_port, sandbox_port = free_port(), free_port()
    relay, sandbox = f"http://127.0.0.1:{relay_port}", f"http://127.0.0.1:{sandbox_port}"
    up = start_up(tmp_path, relay_port, sandbox_port)
    try:
        wait_for_http(f"{relay}/readyz", timeout=60, proc=up)
        body = (FIXTURES / "s3_put.json").read_text()
        headers = {"X-Relay-Token": "demo-s3-token", "Content-Type": "application/json"}
        response = requests.post(f"{relay}/hooks/s3", data=body, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        wait_for(lambda: samples(sandbox) == ["HappyFace.jpg"], what="the sample")
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    finally:
        stop(up)
    assert up.returncode == 0, output
    assert f"relay     {relay}" in output
    assert "stopping..." in output
    assert not answers(f"{relay}/healthz")
    assert not answers(f"{sandbox}/_sandbox/stats")
    assert list((tmp_path / "redis").iterdir()), "embedded Redis keeps its data under the data dir"

    # A second run finds the sample and the recorded event where the first left them.
    again = start_up(tmp_path, relay_port, sandbox_port)
    try:
        wait_for_http(f"{relay}/readyz", timeout=60, proc=again)
        assert samples(sandbox) == ["HappyFace.jpg"]
        duplicate = requests.post(
            f"{relay}/hooks/s3", data=body, headers=headers, timeout=10
        ).json()
        assert duplicate["accepted"] == []
        assert duplicate["duplicates"] == json.loads(response.text)["accepted"]
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=60)
        stop(again)
    assert again.returncode == 0
