"""The `sandbox` command: options, start-up faults and clean shutdown."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from relay.sandbox.cli import sandbox
from tests.procs import free_port, python, running, wait_for_http


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--api-key", "jane"], "expected USER:KEY"),
        (["--api-key", "ja/ne:key"], "expected USER:KEY"),
        (["--api-key", "jane:k", "--api-key", "john:k"], "one key given to two users"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--rate-limit", "0"], "--rate-limit"),
    ],
)
def test_bad_options_are_refused_before_serving(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(sandbox, args)

    assert result.exit_code == 2
    assert complaint in result.output


@pytest.mark.integration
def test_flags_set_the_start_up_faults_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "sandbox.log"
    args = python(
        "-m", "relay.sandbox", "--port", str(port),
        "--api-key", "jane:secret-jane", "--api-key", "john:secret-john",
        "--latency-ms", "5", "--fail-rate", "0.25", "--rate-limit", "50",
        "--release-seconds", "0.5",
    )  # fmt: skip

    with running(args, log=log) as proc:
        wait_for_http(f"{url}/_sandbox/stats", proc=proc)
        faults = requests.get(f"{url}/_sandbox/faults", timeout=10).json()

    assert proc.returncode == 0
    assert (faults["latency_ms"], faults["fail_rate"]) == (5, 0.25)
    assert (faults["rate_limit"], faults["release_seconds"]) == (50, 0.5)
    output = log.read_text()
    assert f"http://127.0.0.1:{port}/" in output
    assert "Users: jane, john" in output
    assert "secret" not in output
