"""API views for accounts, datasets, collaborators, labelsets, releases and assets."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

from flask import Blueprint, Response, g, request

from relay.sandbox.access import Right
from relay.sandbox.api import (
    guard,
    load_dataset,
    load_labelset,
    no_content,
    paged,
    shown_role,
    storage_url,
)
from relay.sandbox.bodies import json_body
from relay.sandbox.errors import already_exists, field_error, not_found
from relay.sandbox.resources import (
    asset_key,
    collaborator_json,
    dataset_changes,
    dataset_columns,
    dataset_json,
    file_json,
    labelset_json,
    release_json,
    user_json,
)
from relay.sandbox.resources import export_json as build_export
from relay.sandbox.state import sandbox
from relay.sandbox.store import GROUND_TRUTH, DuplicateError, new_uuid, now_iso
from relay.sandbox.validation import (
    clean,
    collaborator_body,
    dataset_body,
    labelset_body,
    nonblank,
    paging,
    release_body,
)

# A release whose description contains this ends FAILED, to exercise failure handling.
FAIL_MARK = "[fail]"

datasets = Blueprint("datasets", __name__)
datasets.before_request(guard)


def dataset_response(dataset: dict, role: str | None) -> dict[str, Any]:
    """A dataset with its counts and labelsets."""
    store = sandbox().store
    counts = store.dataset_counts(dataset["id"])
    return dataset_json(dataset, counts, store.labelsets(dataset["id"]), shown_role(dataset, role))


def release_response(release: dict) -> dict[str, Any]:
    """A release as of now, its export served by the sandbox's storage."""
    return release_json(release, time.time(), f"{storage_url()}releases/{release['uuid']}.json")


# -- accounts ---------------------------------------------------------------------------------


@datasets.get("/api_status/")
def api_status() -> dict:
    return {}


@datasets.get("/user")
def current_user() -> dict:
    return user_json(g.user)


@datasets.get("/users/<username>")
def get_user(username: str) -> dict:
    if not sandbox().is_account(username):
        raise not_found()
    return user_json(username)


# -- datasets ---------------------------------------------------------------------------------


@datasets.get("/user/datasets/")
def list_my_datasets() -> list:
    return list_datasets(owner=None)


@datasets.get("/users/<username>/datasets/")
def list_user_datasets(username: str) -> list:
    if not sandbox().is_account(username):
        raise not_found()
    return list_datasets(owner=username)


def list_datasets(owner: str | None) -> list:
    store = sandbox().store
    page, per_page = paging(request.args)
    rows = paged(store.visible_datasets(g.user, owner, page, per_page), page)
    return [dataset_response(row, store.role_of(row["id"], g.user)) for row in rows]


@datasets.post("/user/datasets/")
def create_my_dataset() -> tuple[dict, int]:
    return create_dataset(g.user)


@datasets.post("/organizations/<org>/datasets/")
def create_org_dataset(org: str) -> tuple[dict, int]:
    # Organizations are plain accounts here; whoever creates in one administers the dataset.
    if not sandbox().is_account(org):
        raise not_found()
    return create_dataset(org)


def create_dataset(owner: str) -> tuple[dict, int]:
    store = sandbox().store
    fields = dataset_body(json_body(request))
    try:
        dataset = store.create_dataset(dataset_columns(owner, fields))
    except DuplicateError:
        raise already_exists("dataset") from None
    role = None
    if owner != g.user:
        role = "admin"
        store.add_collaborator(dataset["id"], g.user, role)
    return dataset_response(dataset, role), 201


@datasets.get("/datasets/<owner>/<name>/")
def get_dataset(owner: str, name: str) -> dict:
    return dataset_response(*load_dataset(owner, name))


@datasets.patch("/datasets/<owner>/<name>/")
def update_dataset(owner: str, name: str) -> dict:
    dataset, role = load_dataset(owner, name, Right.OWN)
    fields = dataset_body(json_body(request), partial=True)
    try:
        dataset = sandbox().store.update_dataset(dataset["id"], dataset_changes(dataset, fields))
    except DuplicateError:
        raise already_exists("dataset") from None
    return dataset_response(dataset, role)


@datasets.delete("/datasets/<owner>/<name>/")
def delete_dataset(owner: str, name: str) -> Response:
    dataset, _ = load_dataset(owner, name, Right.OWN)
    sandbox().store.delete_dataset(dataset["id"])
    return no_content()


# -- collaborators ----------------------------------------------------------------------------


@datasets.post("/datasets/<owner>/<name>/collaborators/")
def add_collaborator(owner: str, name: str) -> tuple[dict, int]:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    fields = collaborator_body(json_body(request))
    username, role = fields["user"], fields.get("role", "labeler")
    if not sandbox().is_account(username) or username == dataset["owner"]:
        raise field_error("user", f"{username} cannot be added as collaborator to this dataset.")
    try:
        sandbox().store.add_collaborator(dataset["id"], username, role)
    except DuplicateError:
        raise field_error("user", f"{username} is already a collaborator.") from None
    return collaborator_json(username, role), 201


@datasets.get("/datasets/<owner>/<name>/collaborators/<username>")
def get_collaborator(owner: str, name: str, username: str) -> dict:
    dataset, _ = load_dataset(owner, name)
    role = sandbox().store.role_of(dataset["id"], username)
    if role is None:
        raise not_found()
    return collaborator_json(username, role)


@datasets.patch("/datasets/<owner>/<name>/collaborators/<username>")
def update_collaborator(owner: str, name: str, username: str) -> dict:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    role = collaborator_body(json_body(request), partial=True)["role"]
    if not sandbox().store.set_role(dataset["id"], username, role):
        raise not_found()
    return collaborator_json(username, role)


@datasets.delete("/datasets/<owner>/<name>/collaborators/<username>")
def delete_collaborator(owner: str, name: str, username: str) -> Response:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    if not sandbox().store.remove_collaborator(dataset["id"], username):
        raise not_found()
    return no_content()


# -- labelsets --------------------------------------------------------------------------------


@datasets.get("/datasets/<owner>/<name>/labelsets/")
def list_labelsets(owner: str, name: str) -> list:
    dataset, _ = load_dataset(owner, name)
    return [labelset_json(row) for row in sandbox().store.labelsets(dataset["id"])]


@datasets.post("/datasets/<owner>/<name>/labelsets/")
def create_labelset(owner: str, name: str) -> tuple[dict, int]:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    fields = labelset_body(json_body(request))
    try:
        labelset = sandbox().store.create_labelset(
            dataset["id"], fields["name"], fields.get("description", "")
        )
    except DuplicateError:
        raise already_exists("labelset") from None
    return labelset_json(labelset), 201


@datasets.get("/datasets/<owner>/<name>/labelsets/<labelset>/")
def get_labelset(owner: str, name: str, labelset: str) -> dict:
    dataset, _ = load_dataset(owner, name)
    return labelset_json(load_labelset(dataset, labelset))


@datasets.delete("/datasets/<owner>/<name>/labelsets/<labelset>/")
def delete_labelset(owner: str, name: str, labelset: str) -> Response:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    row = load_labelset(dataset, labelset)
    if labelset == GROUND_TRUTH:
        raise field_error("name", "The ground-truth labelset cannot be deleted.")
    sandbox().store.delete_labelset(row["id"])
    return no_content()


# -- releases ---------------------------------------------------------------------------------


@datasets.get("/datasets/<owner>/<name>/releases/")
def list_releases(owner: str, name: str) -> list:
    dataset, _ = load_dataset(owner, name)
    return [release_response(row) for row in sandbox().store.releases(dataset["id"])]


@datasets.post("/datasets/<owner>/<name>/releases/")
def create_release(owner: str, name: str) -> tuple[dict, int]:
    state = sandbox()
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    fields = release_body(json_body(request))
    faults = state.faults.current
    description = fields.get("description", "")
    labelsets, samples, labels = state.store.snapshot(dataset["id"])
    release = {
        "uuid": new_uuid(),
        "dataset_id": dataset["id"],
        "name": fields["name"],
        "description": description,
        "created_at": now_iso(),
        # Fixed now, so later changes to the faults do not move an existing release.
        "ready_at": time.time() + faults.release_seconds,
        "fails": faults.release_fail or FAIL_MARK in description,
        "samples_count": len(samples),
    }
    release["export"] = build_export(release, dataset, labelsets, samples, labels)
    try:
        row = state.store.create_release(release)
    except DuplicateError:
        raise already_exists("release") from None
    return release_response(row), 201


@datasets.get("/datasets/<owner>/<name>/releases/<release>/")
def get_release(owner: str, name: str, release: str) -> dict:
    dataset, _ = load_dataset(owner, name)
    row = sandbox().store.get_release(dataset["id"], release)
    if row is None:
        raise not_found()
    return release_response(row)


@datasets.delete("/datasets/<owner>/<name>/releases/<release>/")
def delete_release(owner: str, name: str, release: str) -> Response:
    dataset, _ = load_dataset(owner, name, Right.MANAGE)
    row = sandbox().store.get_release(dataset["id"], release)
    if row is None:
        raise not_found()
    sandbox().store.delete_release(row["uuid"])
    return no_content()


# -- assets -----------------------------------------------------------------------------------


@datasets.post("/assets/")
def create_asset() -> tuple[dict, int]:
    filename = clean(json_body(request), {"filename": nonblank}, ("filename",))["filename"]
    uuid = new_uuid()
    asset = sandbox().store.create_asset(
        {
            "key": asset_key(g.user, uuid, filename),
            "uuid": uuid,
            "owner": g.user,
            "filename": filename,
            "content_type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
        }
    )
    return file_json(asset, storage_url()), 201
