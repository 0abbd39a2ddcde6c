"""`python -m relay.sandbox`: run the sandbox."""

from relay.sandbox.cli import sandbox

sandbox(prog_name="python -m relay.sandbox")
