"""How each API resource is stored and shown: defaults on create, and rows turned into JSON."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from relay.sandbox.store import GROUND_TRUTH
from relay.sandbox.validation import DATASET_FLAGS

# Accounts come from the API keys, not the database, so they share one creation time.
ACCOUNT_CREATED_AT = "2020-01-01T00:00:00.000000Z"
DEFAULT_TASK_ATTRIBUTES = {"format_version": "0.1", "categories": [{"id": 1, "name": "object"}]}
# Dataset fields kept as columns; everything else the API knows about lives in `settings`.
DATASET_COLUMN_DEFAULTS: dict[str, Any] = {
    "description": "",
    "task_type": "segmentation-bitmap",
    "task_attributes": DEFAULT_TASK_ATTRIBUTES,
    "category": "other",
    "public": False,
    "archived": False,
    "readme": "",
    "metadata": {},
}
SETTINGS_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(DATASET_FLAGS, False),
    "enable_skip_labeling": True,
    "enable_interpolation": True,
    "labeling_inactivity_timeout_seconds": 300,
    "data_type": "IMAGE",
    "region_of_interest": None,
}
PENDING, SUCCEEDED, FAILED = "PENDING", "SUCCEEDED", "FAILED"
SAFE_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


def user_json(username: str) -> dict[str, Any]:
    """A User."""
    return {
        "username": username,
        "email": f"{username}@sandbox.invalid",
        "created_at": ACCOUNT_CREATED_AT,
        "is_organization": False,
    }


def dataset_columns(owner: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The stored row of a new dataset, defaults filled in."""
    columns = {key: fields.get(key, default) for key, default in DATASET_COLUMN_DEFAULTS.items()}
    settings = {key: fields.get(key, default) for key, default in SETTINGS_DEFAULTS.items()}
    return {"owner": owner, "name": fields["name"], **columns, "settings": settings}


def dataset_changes(dataset: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The stored columns a dataset update changes."""
    columns = {key: value for key, value in fields.items() if key not in SETTINGS_DEFAULTS}
    settings = {key: value for key, value in fields.items() if key in SETTINGS_DEFAULTS}
    if settings:
        columns["settings"] = {**dataset["settings"], **settings}
    return columns


def full_name(dataset: dict[str, Any]) -> str:
    """`owner/name`."""
    return f"{dataset['owner']}/{dataset['name']}"


def labelset_json(labelset: dict[str, Any]) -> dict[str, Any]:
    """A Labelset."""
    return {
        "name": labelset["name"],
        "description": labelset["description"],
        "is_groundtruth": labelset["name"] == GROUND_TRUTH,
        "created_at": labelset["created_at"],
    }


def dataset_json(
    dataset: dict[str, Any],
    counts: dict[str, Any],
    labelsets: list[dict[str, Any]],
    role: str | None,
) -> dict[str, Any]:
    """A Dataset with every field the SDK requires."""
    return {
        "name": dataset["name"],
        "full_name": full_name(dataset),
        "cloned_from": None,
        "description": dataset["description"],
        "category": dataset["category"],
        "public": bool(dataset["public"]),
        "archived": bool(dataset["archived"]),
        "owner": {"username": dataset["owner"], "created_at": ACCOUNT_CREATED_AT},
        "created_at": dataset["created_at"],
        **{**SETTINGS_DEFAULTS, **dataset["settings"]},
        "task_type": dataset["task_type"],
        "task_attributes": dataset["task_attributes"],
        "labelsets": [labelset_json(labelset) for labelset in labelsets],
        "role": role,
        "readme": dataset["readme"],
        "metadata": dataset["metadata"],
        "noncollaborator_can_label": False,
        "noncollaborator_can_review": False,
        **counts,
    }


def collaborator_json(username: str, role: str) -> dict[str, Any]:
    """A Collaborator: the user as an object, and the role."""
    return {"user": user_json(username), "role": role}


def sample_json(sample: dict[str, Any], dataset_full_name: str) -> dict[str, Any]:
    """A Sample, without its label."""
    return {
        "uuid": sample["uuid"],
        "name": sample["name"],
        "data_type": "IMAGE",
        "attributes": sample["attributes"],
        "metadata": sample["metadata"],
        "priority": sample["priority"],
        "created_at": sample["created_at"],
        "created_by": sample["created_by"],
        "readme": sample["readme"],
        "assigned_labeler": sample["assigned_labeler"],
        "assigned_reviewer": sample["assigned_reviewer"],
        "dataset_full_name": dataset_full_name,
    }


def label_json(label: dict[str, Any], labelset: str, task_type: str) -> dict[str, Any]:
    """A Label; its type is the dataset's task type."""
    return {
        "sample_uuid": label["sample_uuid"],
        "label_type": task_type,
        "label_status": label["label_status"],
        "labelset": labelset,
        "attributes": label["attributes"],
        "score": label["score"],
        "rating": None,
        "created_at": label["created_at"],
        "created_by": label["created_by"],
        "updated_at": label["updated_at"],
        "updated_by": label["updated_by"],
        "reviewed_at": None,
        "reviewed_by": None,
    }


def label_summary(label: dict[str, Any] | None) -> dict[str, Any] | None:
    """The short label a sample listing embeds (null when unlabeled)."""
    if label is None:
        return None
    return {
        "label_status": label["label_status"],
        "score": label["score"],
        "updated_at": label["updated_at"],
        "created_by": label["created_by"],
        "reviewed_by": None,
    }


def release_status(release: dict[str, Any], now: float) -> str:
    """PENDING until its ready time, then SUCCEEDED or FAILED as decided at creation."""
    if now < release["ready_at"]:
        return PENDING
    return FAILED if release["fails"] else SUCCEEDED


def release_json(release: dict[str, Any], now: float, export_url: str) -> dict[str, Any]:
    """A Release; `attributes.url` appears once it has succeeded."""
    status = release_status(release, now)
    return {
        "uuid": release["uuid"],
        "name": release["name"],
        "description": release["description"],
        "release_type": "JSON",
        "attributes": {"url": export_url} if status == SUCCEEDED else {},
        "status": status,
        "status_info": "The export failed." if status == FAILED else "",
        "created_at": release["created_at"],
        "samples_count": release["samples_count"],
    }


def export_json(
    release: dict[str, Any],
    dataset: dict[str, Any],
    labelsets: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    labels: list[dict[str, Any]],
) -> str:
    """The release file: the dataset as it was, every sample with its label in every labelset."""
    by_key = {(label["sample_uuid"], label["labelset_id"]): label for label in labels}

    def export_label(label: dict[str, Any] | None) -> dict[str, Any] | None:
        if label is None:
            return None
        keep = ("label_status", "attributes", "score", "created_by", "created_at", "updated_at")
        return {"label_type": dataset["task_type"], **{key: label[key] for key in keep}}

    return json.dumps(
        {
            "name": release["name"],
            "description": release["description"],
            "created_at": release["created_at"],
            "dataset": {
                "name": dataset["name"],
                "owner": dataset["owner"],
                "task_type": dataset["task_type"],
                "task_attributes": dataset["task_attributes"],
                "labelsets": [
                    {"name": labelset["name"], "description": labelset["description"]}
                    for labelset in labelsets
                ],
                "samples": [
                    {
                        "uuid": sample["uuid"],
                        "name": sample["name"],
                        "attributes": sample["attributes"],
                        "metadata": sample["metadata"],
                        "labels": {
                            labelset["name"]: export_label(
                                by_key.get((sample["uuid"], labelset["id"]))
                            )
                            for labelset in labelsets
                        },
                    }
                    for sample in samples
                ],
            },
        }
    )


def asset_key(owner: str, uuid: str, filename: str) -> str:
    """Where an upload is stored: `assets/<owner>/<uuid><ext>`, like the live bucket."""
    extension = PurePosixPath(filename).suffix.lower()
    return f"assets/{owner}/{uuid}{extension if SAFE_EXTENSION.fullmatch(extension) else ''}"


def file_json(asset: dict[str, Any], storage_url: str) -> dict[str, Any]:
    """A File whose presigned POST points back at the sandbox's own storage."""
    return {
        "uuid": asset["uuid"],
        "filename": asset["filename"],
        "url": f"{storage_url}{asset['key']}",
        "created_at": asset["created_at"],
        "presignedPostFields": {
            "url": storage_url,
            "fields": {
                "acl": "public-read",
                "Content-Type": asset["content_type"],
                "key": asset["key"],
                "x-amz-algorithm": "AWS4-HMAC-SHA256",
                "x-amz-credential": "SANDBOX/20200101/eu-west-2/s3/aws4_request",
                "x-amz-date": "20200101T000000Z",
                "policy": "sandbox",
                "x-amz-signature": "sandbox",
            },
        },
    }
