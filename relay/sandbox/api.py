"""What every API view shares: the fault and auth guard, and loaders that enforce access."""

from __future__ import annotations

import time

from flask import Response, g, request

from relay.sandbox.access import Right, require, rights
from relay.sandbox.errors import (
    INVALID_PAGE,
    INVALID_TOKEN,
    NO_CREDENTIALS,
    ApiError,
    detail,
    not_found,
)
from relay.sandbox.state import sandbox


def guard() -> None:
    """Before each API request: inject the faults in force, then authenticate the caller."""
    state = sandbox()
    header = request.headers.get("Authorization", "")
    verdict = state.faults.judge(header or request.remote_addr or "")
    if verdict.delay:
        time.sleep(verdict.delay)
    if verdict.error is not None:
        raise verdict.error
    g.user = authenticate(header)


def authenticate(header: str) -> str:
    """The user of an `Authorization: APIKey <key>` header, or a 401."""
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "apikey":
        raise unauthenticated(NO_CREDENTIALS)
    user = sandbox().user_for_key(key.strip())
    if user is None:
        raise unauthenticated(INVALID_TOKEN)
    return user


def unauthenticated(message: str) -> ApiError:
    """401 with the challenge DRF sends."""
    error = detail(401, message)
    error.headers["WWW-Authenticate"] = "APIKey"
    return error


def load_dataset(owner: str, name: str, needed: Right = Right.READ) -> tuple[dict, str | None]:
    """The dataset `owner/name` and the caller's collaborator role, if they have `needed`."""
    dataset = sandbox().store.get_dataset(owner, name)
    if dataset is None:
        raise not_found()
    return dataset, check_access(dataset, needed)


def check_access(dataset: dict, needed: Right) -> str | None:
    """Refuse unless the caller has `needed` on `dataset`; their collaborator role."""
    role = sandbox().store.role_of(dataset["id"], g.user)
    require(rights(dataset, g.user, role), needed)
    return role


def load_labelset(dataset: dict, name: str) -> dict:
    """A labelset of the dataset, or a 404."""
    labelset = sandbox().store.get_labelset(dataset["id"], name)
    if labelset is None:
        raise not_found()
    return labelset


def shown_role(dataset: dict, role: str | None) -> str | None:
    """The caller's role as a dataset shows it."""
    return "owner" if dataset["owner"] == g.user else role


def paged(rows: list[dict], page: int) -> list[dict]:
    """A page of rows; an empty page past the first is DRF's "Invalid page." 404."""
    if not rows and page > 1:
        raise detail(404, INVALID_PAGE)
    return rows


def storage_url() -> str:
    """Where the sandbox's own object storage is, as the caller reaches this host."""
    return f"{request.host_url}storage/"


def no_content() -> Response:
    """204 with an empty body, as the live API answers deletes."""
    return Response(status=204)
