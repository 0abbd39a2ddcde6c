"""`relay demo` as a user runs it: the whole stack, every bundled example, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_every_example_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    command = [sys.executable, "-c", "from relay.cli import main; main()", "demo"]
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("ok   ") for line in lines) == 8, result.stdout
    assert "PENDING -> SUCCEEDED" in result.stdout
    assert lines[-1] == "demo: everything worked"
