"""The sandbox's state in SQLite: one connection, serialised by a lock, in memory or in a file."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    task_type TEXT NOT NULL,
    task_attributes TEXT NOT NULL,
    category TEXT NOT NULL,
    public INTEGER NOT NULL,
    archived INTEGER NOT NULL,
    readme TEXT NOT NULL,
    metadata TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE IF NOT EXISTS collaborators (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (dataset_id, username)
);
CREATE TABLE IF NOT EXISTS labelsets (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    metadata TEXT NOT NULL,
    priority REAL NOT NULL,
    readme TEXT NOT NULL,
    assigned_labeler TEXT,
    assigned_reviewer TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS labels (
    sample_uuid TEXT NOT NULL REFERENCES samples (uuid) ON DELETE CASCADE,
    labelset_id INTEGER NOT NULL REFERENCES labelsets (id) ON DELETE CASCADE,
    label_status TEXT NOT NULL,
    attributes TEXT NOT NULL,
    score REAL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (sample_uuid, labelset_id)
);
CREATE TABLE IF NOT EXISTS releases (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ready_at REAL NOT NULL,
    fails INTEGER NOT NULL,
    samples_count INTEGER NOT NULL,
    export TEXT NOT NULL,
    UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS assets (
    key TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data BLOB
);
"""
# Children first, so a reset never trips a foreign key.
TABLES = ("labels", "releases", "samples", "labelsets", "collaborators", "datasets", "assets")
JSON_COLUMNS = frozenset({"task_attributes", "metadata", "settings", "attributes"})
GROUND_TRUTH = "ground-truth"
DB_FILE = "sandbox.sqlite3"

FIND_LABEL = "SELECT * FROM labels WHERE sample_uuid = ? AND labelset_id = ?"

Params = Sequence[Any] | Mapping[str, Any]


class DuplicateError(Exception):
    """A name that must be unique within its parent is taken."""


@dataclass(frozen=True)
class SampleQuery:
    """Filters and order of a sample listing."""

    labelset_id: int | None = None
    name_contains: str | None = None
    statuses: list[str] = field(default_factory=list)
    metadata: list[tuple[str, str]] = field(default_factory=list)
    sort: tuple[str, bool] | None = None


def now_iso() -> str:
    """The current UTC time the way the live API writes it."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    """A fresh random UUID string."""
    return str(uuidlib.uuid4())


def decode(row: sqlite3.Row) -> dict:
    """A row as a dict, with its JSON columns parsed."""
    return {
        key: json.loads(row[key]) if key in JSON_COLUMNS and row[key] is not None else row[key]
        for key in row.keys()  # noqa: SIM118 - sqlite3.Row is not iterable by key
    }


def metadata_matches(metadata: str, key: str, wanted: str) -> bool:
    """Whether metadata[key], written as the query string would write it, equals `wanted`."""
    value = json.loads(metadata).get(key)
    return (value if isinstance(value, str) else json.dumps(value)) == wanted


def page_clause(page: int, per_page: int) -> str:
    """LIMIT/OFFSET for a 1-based page (both already bounded by validation)."""
    return f" LIMIT {int(per_page)} OFFSET {(int(page) - 1) * int(per_page)}"


class Store:
    """Every read and write of sandbox state; thread-safe."""

    def __init__(self, data_dir: Path | None = None) -> None:
        if data_dir is None:
            self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(data_dir / DB_FILE, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.create_function("metadata_matches", 3, metadata_matches, deterministic=True)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction, alone on the connection."""
        with self._lock, self._conn:
            yield self._conn

    def _one(self, sql: str, params: Params = ()) -> dict | None:
        with self._tx() as db:
            row = db.execute(sql, params).fetchone()
        return None if row is None else decode(row)

    def _all(self, sql: str, params: Params = ()) -> list[dict]:
        with self._tx() as db:
            rows = db.execute(sql, params).fetchall()
        return [decode(row) for row in rows]

    def _write(self, sql: str, params: Params = ()) -> int:
        """Run one statement; how many rows it touched."""
        with self._tx() as db:
            return db.execute(sql, params).rowcount

    @contextmanager
    def _unique(self, name: object) -> Iterator[sqlite3.Connection]:
        """A transaction in which a UNIQUE violation means `name` is taken."""
        try:
            with self._tx() as db:
                yield db
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(name) from exc

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Forget every dataset, sample, label, release and asset."""
        with self._tx() as db:
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # -- datasets ---------------------------------------------------------------------------------

    def create_dataset(self, columns: dict[str, Any]) -> dict:
        """Insert a dataset with its ground-truth labelset."""
        with self._unique(columns["name"]) as db:
            dataset_id = insert(db, "datasets", {**columns, "created_at": now_iso()})
            insert(db, "labelsets", labelset_columns(dataset_id, GROUND_TRUTH, ""))
            return fetch(db, "SELECT * FROM datasets WHERE id = ?", (dataset_id,))

    def get_dataset(self, owner: str, name: str) -> dict | None:
        """The dataset `owner/name`, or None."""
        return self._one("SELECT * FROM datasets WHERE owner = ? AND name = ?", (owner, name))

    def dataset_by_id(self, dataset_id: int) -> dict | None:
        """The dataset with this id, or None."""
        return self._one("SELECT * FROM datasets WHERE id = ?", (dataset_id,))

    def update_dataset(self, dataset_id: int, columns: dict[str, Any]) -> dict:
        """Overwrite the given columns of a dataset."""
        with self._unique(columns.get("name")) as db:
            update(db, "datasets", columns, id=dataset_id)
            return fetch(db, "SELECT * FROM datasets WHERE id = ?", (dataset_id,))

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a dataset and everything in it."""
        self._write("DELETE FROM datasets WHERE id = ?", (dataset_id,))

    def visible_datasets(
        self, viewer: str, owner: str | None, page: int, per_page: int
    ) -> list[dict]:
        """Without `owner`, datasets `viewer` owns or collaborates on; with it, that owner's
        datasets `viewer` may see, public ones included."""
        return self._all(
            "SELECT * FROM datasets d WHERE"
            " (d.owner = :viewer"
            "  OR EXISTS (SELECT 1 FROM collaborators c"
            "             WHERE c.dataset_id = d.id AND c.username = :viewer)"
            "  OR (:owner IS NOT NULL AND d.public))"
            " AND (:owner IS NULL OR d.owner = :owner)"
            " ORDER BY d.id" + page_clause(page, per_page),
            {"viewer": viewer, "owner": owner},
        )

    def dataset_counts(self, dataset_id: int) -> dict[str, Any]:
        """Samples, collaborators and ground-truth label statuses of a dataset."""
        with self._tx() as db:
            samples = db.execute(
                "SELECT COUNT(*) FROM samples WHERE dataset_id = ?", (dataset_id,)
            ).fetchone()[0]
            collaborators = db.execute(
                "SELECT COUNT(*) FROM collaborators WHERE dataset_id = ?", (dataset_id,)
            ).fetchone()[0]
            statuses = db.execute(
                "SELECT l.label_status, COUNT(*) FROM labels l"
                " JOIN labelsets ls ON ls.id = l.labelset_id"
                " WHERE ls.dataset_id = ? AND ls.name = ? GROUP BY l.label_status",
                (dataset_id, GROUND_TRUTH),
            ).fetchall()
        label_stats = {status: count for status, count in statuses}
        label_stats["UNLABELED"] = samples - sum(label_stats.values())
        label_stats["TOTAL"] = samples
        return {
            "samples_count": samples,
            "collaborators_count": collaborators,
            "label_stats": label_stats,
        }

    # -- collaborators ----------------------------------------------------------------------------

    def role_of(self, dataset_id: int, username: str) -> str | None:
        """The collaborator role of `username` on a dataset, or None."""
        row = self._one(
            "SELECT role FROM collaborators WHERE dataset_id = ? AND username = ?",
            (dataset_id, username),
        )
        return row["role"] if row else None

    def add_collaborator(self, dataset_id: int, username: str, role: str) -> None:
        """Make `username` a collaborator."""
        with self._unique(username) as db:
            insert(
                db, "collaborators", {"dataset_id": dataset_id, "username": username, "role": role}
            )

    def set_role(self, dataset_id: int, username: str, role: str) -> bool:
        """Change a collaborator's role; False when they are not one."""
        with self._tx() as db:
            return (
                update(
                    db, "collaborators", {"role": role}, dataset_id=dataset_id, username=username
                )
                > 0
            )

    def remove_collaborator(self, dataset_id: int, username: str) -> bool:
        """Remove a collaborator; False when they were not one."""
        return (
            self._write(
                "DELETE FROM collaborators WHERE dataset_id = ? AND username = ?",
                (dataset_id, username),
            )
            > 0
        )

    # -- labelsets --------------------------------------------------------------------------------

    def labelsets(self, dataset_id: int) -> list[dict]:
        """A dataset's labelsets, ground-truth first."""
        return self._all("SELECT * FROM labelsets WHERE dataset_id = ? ORDER BY id", (dataset_id,))

    def get_labelset(self, dataset_id: int, name: str) -> dict | None:
        """One labelset by name, or None."""
        return self._one(
            "SELECT * FROM labelsets WHERE dataset_id = ? AND name = ?", (dataset_id, name)
        )

    def create_labelset(self, dataset_id: int, name: str, description: str) -> dict:
        """Add a labelset."""
        with self._unique(name) as db:
            labelset_id = insert(db, "labelsets", labelset_columns(dataset_id, name, description))
            return fetch(db, "SELECT * FROM labelsets WHERE id = ?", (labelset_id,))

    def delete_labelset(self, labelset_id: int) -> None:
        """Delete a labelset and its labels."""
        self._write("DELETE FROM labelsets WHERE id = ?", (labelset_id,))

    # -- samples ----------------------------------------------------------------------------------

    def create_sample(self, dataset_id: int, fields: dict[str, Any], by: str) -> dict:
        """Add one sample; its name must be new in the dataset."""
        with self._unique(fields["name"]) as db:
            seq = insert(db, "samples", sample_columns(dataset_id, fields, by))
            return fetch(db, "SELECT * FROM samples WHERE seq = ?", (seq,))

    def create_samples(self, dataset_id: int, items: list[dict[str, Any]], by: str) -> list[dict]:
        """Add samples in one go; a name already in the dataset gives back that sample as it is."""
        find = "SELECT * FROM samples WHERE dataset_id = ? AND name = ?"
        with self._tx() as db:
            for item in items:
                if db.execute(find, (dataset_id, item["name"])).fetchone() is None:
                    insert(db, "samples", sample_columns(dataset_id, item, by))
            return [fetch(db, find, (dataset_id, item["name"])) for item in items]

    def get_sample(self, uuid: str) -> dict | None:
        """One sample by uuid, or None."""
        return self._one("SELECT * FROM samples WHERE uuid = ?", (uuid,))

    def update_sample(self, uuid: str, fields: dict[str, Any]) -> dict:
        """Overwrite the given fields of a sample."""
        with self._unique(fields.get("name")) as db:
            update(db, "samples", fields, uuid=uuid)
            return fetch(db, "SELECT * FROM samples WHERE uuid = ?", (uuid,))

    def delete_sample(self, uuid: str) -> None:
        """Delete a sample and its labels."""
        self._write("DELETE FROM samples WHERE uuid = ?", (uuid,))

    def delete_samples(self, dataset_id: int, uuids: list[str]) -> int:
        """Delete those of `uuids` that are in the dataset; how many went."""
        marks = ", ".join("?" * len(uuids))
        return self._write(
            f"DELETE FROM samples WHERE dataset_id = ? AND uuid IN ({marks})",  # noqa: S608
            (dataset_id, *uuids),
        )

    def list_samples(
        self, dataset_id: int, query: SampleQuery, page: int, per_page: int
    ) -> list[dict]:
        """One page of a dataset's samples, filtered and sorted."""
        sql = [
            "SELECT s.* FROM samples s",
            "LEFT JOIN labels l ON l.sample_uuid = s.uuid AND l.labelset_id = :labelset",
            "LEFT JOIN labels gt ON gt.sample_uuid = s.uuid AND gt.labelset_id ="
            " (SELECT id FROM labelsets WHERE dataset_id = :dataset AND name = :gt)",
            "WHERE s.dataset_id = :dataset",
        ]
        params: dict[str, Any] = {
            "dataset": dataset_id,
            "labelset": query.labelset_id,
            "gt": GROUND_TRUTH,
        }
        if query.name_contains:
            sql.append("AND instr(s.name, :name) > 0")
            params["name"] = query.name_contains
        if query.statuses:
            marks = ", ".join(f":status{i}" for i in range(len(query.statuses)))
            no_label = " OR l.sample_uuid IS NULL" if "UNLABELED" in query.statuses else ""
            sql.append(f"AND (l.label_status IN ({marks}){no_label})")
            params.update({f"status{i}": status for i, status in enumerate(query.statuses)})
        for i, (key, value) in enumerate(query.metadata):
            sql.append(f"AND metadata_matches(s.metadata, :key{i}, :value{i})")
            params.update({f"key{i}": key, f"value{i}": value})
        sql.append(order_by(query.sort) + page_clause(page, per_page))
        return self._all(" ".join(sql), params)

    # -- labels -----------------------------------------------------------------------------------

    def get_label(self, sample_uuid: str, labelset_id: int) -> dict | None:
        """The label of a sample in a labelset, or None."""
        return self._one(FIND_LABEL, (sample_uuid, labelset_id))

    def labels_of(self, sample_uuids: list[str], labelset_id: int) -> dict[str, dict]:
        """Labels in one labelset of several samples, by sample uuid."""
        marks = ", ".join("?" * len(sample_uuids))
        rows = self._all(
            f"SELECT * FROM labels WHERE labelset_id = ? AND sample_uuid IN ({marks})",  # noqa: S608
            (labelset_id, *sample_uuids),
        )
        return {row["sample_uuid"]: row for row in rows}

    def put_label(
        self, sample_uuid: str, labelset_id: int, fields: dict, by: str
    ) -> tuple[dict, bool]:
        """Create or replace a label; the label, and whether it was created."""
        now = now_iso()
        key = {"sample_uuid": sample_uuid, "labelset_id": labelset_id}
        changes = {**fields, "updated_at": now, "updated_by": by}
        with self._tx() as db:
            created = not update(db, "labels", changes, **key)
            if created:
                insert(db, "labels", {**key, **changes, "created_at": now, "created_by": by})
            return fetch(db, FIND_LABEL, (sample_uuid, labelset_id)), created

    def update_label(
        self, sample_uuid: str, labelset_id: int, fields: dict, by: str
    ) -> dict | None:
        """Overwrite the given fields of a label; None when there is none."""
        changes = {**fields, "updated_at": now_iso(), "updated_by": by}
        with self._tx() as db:
            if not update(db, "labels", changes, sample_uuid=sample_uuid, labelset_id=labelset_id):
                return None
            return fetch(db, FIND_LABEL, (sample_uuid, labelset_id))

    def delete_label(self, sample_uuid: str, labelset_id: int) -> bool:
        """Delete a label; False when there was none."""
        return (
            self._write(
                "DELETE FROM labels WHERE sample_uuid = ? AND labelset_id = ?",
                (sample_uuid, labelset_id),
            )
            > 0
        )

    # -- releases ---------------------------------------------------------------------------------

    def snapshot(self, dataset_id: int) -> tuple[list[dict], list[dict], list[dict]]:
        """Labelsets, samples and labels of a dataset, read in one transaction."""
        with self._tx() as db:
            rows = [
                db.execute(sql, (dataset_id,)).fetchall()
                for sql in (
                    "SELECT * FROM labelsets WHERE dataset_id = ? ORDER BY id",
                    "SELECT * FROM samples WHERE dataset_id = ? ORDER BY seq",
                    "SELECT l.* FROM labels l JOIN samples s ON s.uuid = l.sample_uuid"
                    " WHERE s.dataset_id = ?",
                )
            ]
        labelsets, samples, labels = ([decode(row) for row in part] for part in rows)
        return labelsets, samples, labels

    def create_release(self, columns: dict[str, Any]) -> dict:
        """Add a release (columns as in the releases table)."""
        with self._unique(columns["name"]) as db:
            seq = insert(db, "releases", columns)
            return fetch(db, "SELECT * FROM releases WHERE seq = ?", (seq,))

    def get_release(self, dataset_id: int, name: str) -> dict | None:
        """One release by name, or None."""
        return self._one(
            "SELECT * FROM releases WHERE dataset_id = ? AND name = ?", (dataset_id, name)
        )

    def release_by_uuid(self, uuid: str) -> dict | None:
        """One release by uuid (for its export file), or None."""
        return self._one("SELECT * FROM releases WHERE uuid = ?", (uuid,))

    def releases(self, dataset_id: int) -> list[dict]:
        """A dataset's releases, oldest first."""
        return self._all("SELECT * FROM releases WHERE dataset_id = ? ORDER BY seq", (dataset_id,))

    def delete_release(self, uuid: str) -> None:
        """Delete a release and its export."""
        self._write("DELETE FROM releases WHERE uuid = ?", (uuid,))

    # -- assets -----------------------------------------------------------------------------------

    def create_asset(self, columns: dict[str, Any]) -> dict:
        """Reserve an asset key, to be filled by the presigned upload."""
        with self._tx() as db:
            insert(db, "assets", {**columns, "created_at": now_iso()})
            return fetch(db, "SELECT * FROM assets WHERE key = ?", (columns["key"],))

    def get_asset(self, key: str) -> dict | None:
        """One asset by storage key, or None."""
        return self._one("SELECT * FROM assets WHERE key = ?", (key,))

    def fill_asset(self, key: str, data: bytes, content_type: str) -> bool:
        """Store an asset's bytes; False when the key was never reserved."""
        with self._tx() as db:
            return update(db, "assets", {"data": data, "content_type": content_type}, key=key) > 0


def insert(db: sqlite3.Connection, table: str, values: Mapping[str, Any]) -> int:
    """INSERT one row (JSON columns encoded); its rowid."""
    row = encode(values)
    columns, marks = ", ".join(row), ", ".join("?" * len(row))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - known columns
    return db.execute(sql, tuple(row.values())).lastrowid or 0


def update(db: sqlite3.Connection, table: str, values: Mapping[str, Any], **where: Any) -> int:
    """UPDATE the rows matching `where` (JSON columns encoded); how many matched."""
    row = encode(values)
    if not row:  # an empty change still tells whether the row exists
        row = dict([next(iter(where.items()))])
    assignments = ", ".join(f"{column} = ?" for column in row)
    condition = " AND ".join(f"{column} = ?" for column in where)
    sql = f"UPDATE {table} SET {assignments} WHERE {condition}"  # noqa: S608 - known columns
    return db.execute(sql, (*row.values(), *where.values())).rowcount


def fetch(db: sqlite3.Connection, sql: str, params: Params) -> dict:
    """The one row a query must find."""
    row = db.execute(sql, params).fetchone()
    if row is None:
        raise LookupError(sql)
    return decode(row)


def encode(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values ready for SQLite: JSON columns as text."""
    return {
        key: json.dumps(value) if key in JSON_COLUMNS else value for key, value in values.items()
    }


def labelset_columns(dataset_id: int, name: str, description: str) -> dict[str, Any]:
    """A new labelset row."""
    return {
        "dataset_id": dataset_id,
        "name": name,
        "description": description,
        "created_at": now_iso(),
    }


def sample_columns(dataset_id: int, fields: dict[str, Any], by: str) -> dict[str, Any]:
    """A new sample row, with the API's defaults for what was not given."""
    return {
        "uuid": new_uuid(),
        "dataset_id": dataset_id,
        "metadata": {},
        "priority": 0,
        "readme": "",
        **fields,
        "created_at": now_iso(),
        "created_by": by,
    }


def order_by(sort: tuple[str, bool] | None) -> str:
    """ORDER BY for a sample sort; ties fall back to insertion order."""
    if sort is None:
        return "ORDER BY s.seq"
    field_name, descending = sort
    column = {
        "name": "s.name",
        "created_at": "s.created_at",
        "priority": "s.priority",
        "gt_label__updated_at": "gt.updated_at",
    }[field_name]
    direction = "DESC" if descending else "ASC"
    return f"ORDER BY {column} {direction}, s.seq {direction}"
