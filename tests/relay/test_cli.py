"""The `relay` command as a user runs it: a real process with the relay's environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import TOKENS
from tests.procs import ROOT


def relay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from relay.cli import main; main()", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def base_env(relay_env: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **relay_env}


@pytest.mark.integration
class TestCheckConfig:
    def test_prints_sources_without_secrets(self, base_env):
        result = relay("check-config", env=base_env)
        assert result.returncode == 0, result.stderr
        assert "/hooks/s3  type=s3  secrets=2" in result.stdout
        assert "/hooks/only-jpegs" in result.stdout
        assert "schedule  demo/images  cron='0 2 * * *'  name=nightly-{date}" in result.stdout
        assert "notify    receiver  http URL  secrets=1" in result.stdout
        assert "127.0.0.1" not in result.stdout.split("notify")[1]
        for secret in TOKENS.values():
            assert secret not in result.stdout + result.stderr
        assert "verify = false" in result.stderr  # the warning for s3-local

    def test_bad_file_is_refused_with_file_source_and_field(self, base_env, tmp_path):
        bad = tmp_path / "bad.toml"
        bad.write_text(
            "[[sources]]\nname = 'x'\ntype = 's3'\n[[sources.routes]]\ndataset = 'nope'\n"
        )
        result = relay("check-config", env={**base_env, "RELAY_CONFIG": str(bad)})
        assert result.returncode == 1
        assert f"{bad}: source 'x': routes[0].dataset: must be 'owner/name'" in result.stderr
        assert "Traceback" not in result.stderr

    def test_bad_environment_names_every_variable(self, base_env):
        env = {**base_env, "RELAY_PORT": "http", "RELAY_API_RATE": "-1"}
        result = relay("check-config", env=env)
        assert result.returncode == 1
        assert "RELAY_PORT" in result.stderr
        assert "RELAY_API_RATE" in result.stderr


@pytest.mark.integration
def test_send_signs_a_prediction_for_its_source(stack, base_env):
    stack.sandbox.session().post(
        f"{stack.sandbox.url}/datasets/demo/images/samples/",
        json={
            "name": "HappyFace.jpg",
            "attributes": {"image": {"url": "https://img.example/a.jpg"}},
        },
        timeout=10,
    ).raise_for_status()
    body = ROOT / "relay" / "examples" / "prediction.json"
    result = relay("send", "--relay-url", stack.url, "predictions", str(body), env=base_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("202 ")
    event_id = result.stdout.split('"accepted":["')[1].split('"')[0]
    event = stack.wait_finished(event_id)
    # The example names its sample by bucket and key; with no object index entry the worker falls
    # back to the key as the sample name.
    assert event.status == "succeeded", event.last_error
