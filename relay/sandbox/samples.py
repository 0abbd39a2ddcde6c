"""API views for samples and labels."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from relay.sandbox.access import Right
from relay.sandbox.api import (
    check_access,
    guard,
    load_dataset,
    load_labelset,
    no_content,
    paged,
)
from relay.sandbox.bodies import json_body
from relay.sandbox.errors import already_exists, not_found
from relay.sandbox.resources import full_name, label_json, label_summary, sample_json
from relay.sandbox.state import sandbox
from relay.sandbox.store import GROUND_TRUTH, DuplicateError, SampleQuery
from relay.sandbox.validation import (
    flag,
    label_body,
    label_statuses,
    metadata_filters,
    paging,
    sample_body,
    sample_sort,
    samples_bulk_body,
    uuids_body,
)

samples = Blueprint("samples", __name__)
samples.before_request(guard)


def load_sample(uuid: str, needed: Right = Right.READ) -> tuple[dict, dict]:
    """A sample and its dataset, if the caller has `needed` on that dataset."""
    store = sandbox().store
    sample = store.get_sample(uuid)
    if sample is None:
        raise not_found()
    dataset = store.dataset_by_id(sample["dataset_id"])
    if dataset is None:
        raise not_found()
    check_access(dataset, needed)
    return sample, dataset


def full_label(label: dict | None, labelset: dict, dataset: dict) -> dict[str, Any] | None:
    """A label in full, or None."""
    return None if label is None else label_json(label, labelset["name"], dataset["task_type"])


# -- samples ----------------------------------------------------------------------------------


@samples.post("/datasets/<owner>/<dataset>/samples/")
def create_sample(owner: str, dataset: str) -> tuple[dict, int]:
    """Add one sample; a taken name is a 400."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    fields = sample_body(json_body(request))
    try:
        sample = sandbox().store.create_sample(record["id"], fields, g.user)
    except DuplicateError:
        raise already_exists("sample") from None
    return sample_json(sample, full_name(record)), 201


@samples.post("/datasets/<owner>/<dataset>/samples_bulk/")
def create_samples(owner: str, dataset: str) -> tuple[list, int]:
    """Add samples in bulk; names already there come back unchanged."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    items = samples_bulk_body(json_body(request))
    rows = sandbox().store.create_samples(record["id"], items, g.user)
    return [sample_json(row, full_name(record)) for row in rows], 201


@samples.delete("/datasets/<owner>/<dataset>/samples_bulk/")
def delete_samples(owner: str, dataset: str) -> dict:
    """Delete samples of the dataset by uuid."""
    record, _ = load_dataset(owner, dataset, Right.MANAGE)
    uuids = uuids_body(json_body(request))
    return {"deleted_count": sandbox().store.delete_samples(record["id"], uuids)}


@samples.get("/datasets/<owner>/<dataset>/samples/")
def list_samples(owner: str, dataset: str) -> list:
    """One page of samples, filtered by name, label status and metadata, and sorted."""
    store = sandbox().store
    record, _ = load_dataset(owner, dataset)
    args = request.args
    page, per_page = paging(args)
    labelset = load_labelset(record, args["labelset"]) if "labelset" in args else None
    query = SampleQuery(
        # Label statuses are those in the requested labelset, ground-truth by default.
        labelset_id=(labelset or load_labelset(record, GROUND_TRUTH))["id"],
        name_contains=args.get("name__contains"),
        statuses=label_statuses(args.get("label_status")),
        metadata=metadata_filters(args.get("filters")),
        sort=sample_sort(args.get("sort")),
    )
    rows = paged(store.list_samples(record["id"], query, page, per_page), page)
    listed = [sample_json(row, full_name(record)) for row in rows]
    if labelset is None:
        return listed
    labels = store.labels_of([row["uuid"] for row in rows], labelset["id"])
    in_full = flag(args.get("include_full_label"))
    for sample in listed:
        label = labels.get(sample["uuid"])
        sample["label"] = full_label(label, labelset, record) if in_full else label_summary(label)
    return listed


@samples.get("/samples/<uuid>/")
def get_sample(uuid: str) -> dict:
    """One sample, with its full label when `?labelset=` names a labelset."""
    sample, dataset = load_sample(uuid)
    shown = sample_json(sample, full_name(dataset))
    if "labelset" in request.args:
        labelset = load_labelset(dataset, request.args["labelset"])
        label = sandbox().store.get_label(uuid, labelset["id"])
        shown["label"] = full_label(label, labelset, dataset)
    return shown


@samples.patch("/samples/<uuid>/")
def update_sample(uuid: str) -> dict:
    """Change the given fields of a sample."""
    _, dataset = load_sample(uuid, Right.MANAGE)
    fields = sample_body(json_body(request), partial=True)
    try:
        sample = sandbox().store.update_sample(uuid, fields)
    except DuplicateError:
        raise already_exists("sample") from None
    return sample_json(sample, full_name(dataset))


@samples.delete("/samples/<uuid>/")
def delete_sample(uuid: str) -> Response:
    """Delete a sample and its labels."""
    load_sample(uuid, Right.MANAGE)
    sandbox().store.delete_sample(uuid)
    return no_content()


# -- labels -----------------------------------------------------------------------------------


def load_label_target(uuid: str, labelset_name: str, needed: Right) -> tuple[dict, dict]:
    """The dataset and labelset a label route is about."""
    _, dataset = load_sample(uuid, needed)
    return dataset, load_labelset(dataset, labelset_name)


@samples.get("/labels/<uuid>/<labelset>/")
def get_label(uuid: str, labelset: str) -> dict:
    """A sample's label in a labelset; 404 when it has none."""
    dataset, row = load_label_target(uuid, labelset, Right.READ)
    label = full_label(sandbox().store.get_label(uuid, row["id"]), row, dataset)
    if label is None:
        raise not_found()
    return label


@samples.put("/labels/<uuid>/<labelset>/")
def put_label(uuid: str, labelset: str) -> tuple[dict, int]:
    """Create or replace a label: 201 when new, 200 when replaced."""
    dataset, row = load_label_target(uuid, labelset, Right.LABEL)
    fields = {
        "label_status": "PRELABELED",
        "score": None,
        **label_body(json_body(request), dataset["task_type"]),
    }
    label, created = sandbox().store.put_label(uuid, row["id"], fields, g.user)
    return label_json(label, labelset, dataset["task_type"]), 201 if created else 200


@samples.patch("/labels/<uuid>/<labelset>/")
def update_label(uuid: str, labelset: str) -> dict:
    """Change the given fields of an existing label."""
    dataset, row = load_label_target(uuid, labelset, Right.LABEL)
    fields = label_body(json_body(request), dataset["task_type"], partial=True)
    label = sandbox().store.update_label(uuid, row["id"], fields, g.user)
    if label is None:
        raise not_found()
    return label_json(label, labelset, dataset["task_type"])


@samples.delete("/labels/<uuid>/<labelset>/")
def delete_label(uuid: str, labelset: str) -> Response:
    """Delete a label; 404 when there is none."""
    _, row = load_label_target(uuid, labelset, Right.LABEL)
    if not sandbox().store.delete_label(uuid, row["id"]):
        raise not_found()
    return no_content()
