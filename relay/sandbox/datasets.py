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
    """Answer the SDK's start-up check."""
    return {}


@datasets.get("/user")
def current_user() -> dict:
    """The caller's account."""
    return user_json(g.user)


@datasets.get("/users/<username>")
def get_user(username: str) -> dict:
    """Any known account."""
    if not sandbox().is_account(username):
        raise not_found()
    return user_json(username)


# -- datasets ---------------------------------------------------------------------------------


@datasets.get("/user/datasets/")
def list_my_datasets() -> list:
    """Datasets the caller owns or collaborates on."""
    return list_datasets(owner=None)


@datasets.get("/users/<username>/datasets/")
def list_user_datasets(username: str) -> list:
    """An account's datasets the caller may see."""
    if not sandbox().is_account(username):
        raise not_found()
    return list_datasets(owner=username)


def list_datasets(owner: str | None) -> list:
    """One page of datasets, each with the caller's role."""
    store = sandbox().store
    page, per_page = paging(request.args)
    rows = paged(store.visible_datasets(g.user, owner, page, per_page), page)
    return [dataset_response(row, store.role_of(row["id"], g.user)) for row in rows]


@datasets.post("/user/datasets/")
def create_my_dataset() -> tuple[dict, int]:
    """Create a dataset owned by the caller."""
    return create_dataset(g.user)


@datasets.post("/organizations/<org>/datasets/")
def create_org_dataset(org: str) -> tuple[dict, int]:
    """Create a dataset owned by an organization."""
    # Organizations are plain accounts here; whoever creates in one administers the dataset.
    if not sandbox().is_account(org):
        raise not_found()
    return create_dataset(org)


def create_dataset(owner: str) -> tuple[dict, int]:
    """Create a dataset for `owner`; its name must be new for that owner."""
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


@datasets.get("/datasets/<owner>/<dataset>/")
def get_dataset(owner: str, dataset: str) -> dict:
    """One dataset."""
    return dataset_response(*load_dataset(owner, dataset))


@datasets.patch("/datasets/<owner>/<dataset>/")
def update_dataset(owner: str, dataset: str) -> dict:
    """Change the given fields of a dataset (owner or admin only)."""
    record, role = load_dataset(owner, dataset, Right.OWN)
    fields = dataset_body(json_body(request), partial=True)
    try:
        record = sandbox().store.update_dataset(record["id"], dataset_changes(record, fields))
    except DuplicateError:
        raise already_exists("dataset") from None
    return dataset_response(record, role)


@datasets.delete("/datasets/<owner>/<dataset>/")
def delete_dataset(owner: str, dataset: str) -> Response:
    """Delete a dataset and everything in it (owner or admin only)."""
    record, _ = load_dataset(owner, dataset, Right.OWN)
    sandbox().store.delete_dataset(record["id"])
    return no_content()


# -- collaborators ----------------------------------------------------------------------------


@datasets.post("/datasets/<owner>/<dataset>/collaborators/")
def add_collaborator(owner: str, dataset: str) -> tuple[dict, int]:
    """Give a known user a role on the dataset."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    fields = collaborator_body(json_body(request))
    username, role = fields["user"], fields.get("role", "labeler")
    if not sandbox().is_account(username) or username == record["owner"]:
        raise field_error("user", f"{username} cannot be added as collaborator to this dataset.")
    try:
        sandbox().store.add_collaborator(record["id"], username, role)
    except DuplicateError:
        raise field_error("user", f"{username} is already a collaborator.") from None
    return collaborator_json(username, role), 201


@datasets.get("/datasets/<owner>/<dataset>/collaborators/<username>")
def get_collaborator(owner: str, dataset: str, username: str) -> dict:
    """One collaborator and their role."""
    record, _ = load_dataset(owner, dataset)
    role = sandbox().store.role_of(record["id"], username)
    if role is None:
        raise not_found()
    return collaborator_json(username, role)


@datasets.patch("/datasets/<owner>/<dataset>/collaborators/<username>")
def update_collaborator(owner: str, dataset: str, username: str) -> dict:
    """Change a collaborator's role."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    role = collaborator_body(json_body(request), partial=True)["role"]
    if not sandbox().store.set_role(record["id"], username, role):
        raise not_found()
    return collaborator_json(username, role)


@datasets.delete("/datasets/<owner>/<dataset>/collaborators/<username>")
def delete_collaborator(owner: str, dataset: str, username: str) -> Response:
    """Take a collaborator off the dataset."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    if not sandbox().store.remove_collaborator(record["id"], username):
        raise not_found()
    return no_content()


# -- labelsets --------------------------------------------------------------------------------


@datasets.get("/datasets/<owner>/<dataset>/labelsets/")
def list_labelsets(owner: str, dataset: str) -> list:
    """The dataset's labelsets."""
    record, _ = load_dataset(owner, dataset)
    return [labelset_json(row) for row in sandbox().store.labelsets(record["id"])]


@datasets.post("/datasets/<owner>/<dataset>/labelsets/")
def create_labelset(owner: str, dataset: str) -> tuple[dict, int]:
    """Add a labelset."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    fields = labelset_body(json_body(request))
    try:
        labelset = sandbox().store.create_labelset(
            record["id"], fields["name"], fields.get("description", "")
        )
    except DuplicateError:
        raise already_exists("labelset") from None
    return labelset_json(labelset), 201


@datasets.get("/datasets/<owner>/<dataset>/labelsets/<labelset>/")
def get_labelset(owner: str, dataset: str, labelset: str) -> dict:
    """One labelset."""
    record, _ = load_dataset(owner, dataset)
    return labelset_json(load_labelset(record, labelset))


@datasets.delete("/datasets/<owner>/<dataset>/labelsets/<labelset>/")
def delete_labelset(owner: str, dataset: str, labelset: str) -> Response:
    """Delete a labelset and its labels; ground-truth stays."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    row = load_labelset(record, labelset)
    if labelset == GROUND_TRUTH:
        raise field_error("name", "The ground-truth labelset cannot be deleted.")
    sandbox().store.delete_labelset(row["id"])
    return no_content()


# -- releases ---------------------------------------------------------------------------------


@datasets.get("/datasets/<owner>/<dataset>/releases/")
def list_releases(owner: str, dataset: str) -> list:
    """The dataset's releases, oldest first."""
    record, _ = load_dataset(owner, dataset)
    return [release_response(row) for row in sandbox().store.releases(record["id"])]


@datasets.post("/datasets/<owner>/<dataset>/releases/")
def create_release(owner: str, dataset: str) -> tuple[dict, int]:
    """Snapshot the dataset into a release that finishes after the release delay."""
    state = sandbox()
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    fields = release_body(json_body(request))
    faults = state.faults.current
    description = fields.get("description", "")
    labelsets, samples, labels = state.store.snapshot(record["id"])
    release = {
        "uuid": new_uuid(),
        "dataset_id": record["id"],
        "name": fields["name"],
        "description": description,
        "created_at": now_iso(),
        # Fixed now, so later changes to the faults do not move an existing release.
        "ready_at": time.time() + faults.release_seconds,
        "fails": faults.release_fail or FAIL_MARK in description,
        "samples_count": len(samples),
    }
    release["export"] = build_export(release, record, labelsets, samples, labels)
    try:
        row = state.store.create_release(release)
    except DuplicateError:
        raise already_exists("release") from None
    return release_response(row), 201


@datasets.get("/datasets/<owner>/<dataset>/releases/<release>/")
def get_release(owner: str, dataset: str, release: str) -> dict:
    """One release, its status as of now."""
    record, _ = load_dataset(owner, dataset)
    row = sandbox().store.get_release(record["id"], release)
    if row is None:
        raise not_found()
    return release_response(row)


@datasets.delete("/datasets/<owner>/<dataset>/releases/<release>/")
def delete_release(owner: str, dataset: str, release: str) -> Response:
    """Delete a release."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    row = sandbox().store.get_release(record["id"], release)
    if row is None:
        raise not_found()
    sandbox().store.delete_release(row["uuid"])
    return no_content()


# -- assets -----------------------------------------------------------------------------------


@datasets.post("/assets/")
def create_asset() -> tuple[dict, int]:
    """Reserve an upload and answer with its presigned POST."""
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
