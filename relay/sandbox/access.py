"""Who may do what to a dataset: owner, collaborator roles, and everyone for public datasets."""

from __future__ import annotations

from enum import Enum

from relay.sandbox.errors import forbidden, not_found


class Right(Enum):
    """Things a user can do to a dataset."""

    READ = "read"  # see the dataset, its samples, labels, releases and collaborators
    LABEL = "label"  # write labels
    MANAGE = "manage"  # write samples, labelsets, releases and collaborators
    OWN = "own"  # update or delete the dataset itself


ROLE_RIGHTS = {
    "labeler": {Right.READ, Right.LABEL},
    "reviewer": {Right.READ, Right.LABEL},
    "manager": {Right.READ, Right.LABEL, Right.MANAGE},
    "admin": set(Right),
}


def rights(dataset: dict, username: str, role: str | None) -> set[Right]:
    """What `username`, with collaborator `role` (or None), may do to `dataset`."""
    if dataset["owner"] == username:
        return set(Right)
    if role is not None:
        return ROLE_RIGHTS[role]
    return {Right.READ} if dataset["public"] else set()


def require(granted: set[Right], needed: Right) -> None:
    """Refuse unless `needed` is granted: 404 for datasets the user may not see, else 403."""
    if Right.READ not in granted:
        raise not_found()
    if needed not in granted:
        raise forbidden()
