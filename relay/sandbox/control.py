"""Run-time controls under `/_sandbox/`: faults, reset and request counts (no API key needed)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from relay.sandbox.api import no_content
from relay.sandbox.bodies import json_body
from relay.sandbox.state import sandbox

control = Blueprint("control", __name__, url_prefix="/_sandbox")


@control.get("/faults")
def get_faults() -> dict:
    """The faults in force."""
    return sandbox().faults.current.to_json()


@control.patch("/faults")
def change_faults() -> dict:
    """Change some faults; a bad or unknown field is a 400 naming it."""
    return sandbox().faults.change(json_body(request)).to_json()


@control.post("/reset")
def reset() -> Response:
    """Empty every dataset, sample, label, release and asset; zero the counts; restore faults."""
    state = sandbox()
    state.store.reset()
    state.stats.reset()
    state.faults.reset()
    return no_content()


@control.get("/stats")
def stats() -> dict:
    """API requests counted by method, URL rule and status."""
    return sandbox().stats.snapshot()
