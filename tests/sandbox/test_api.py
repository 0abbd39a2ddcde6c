"""The sandbox's REST API over real HTTP: paths, bodies, auth, errors, faults and persistence."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SANDBOX_KEY, SANDBOX_USER, Sandbox
from tests.procs import free_port, python, running, wait_for_http

JANE_KEY, JOHN_KEY = "jane-key", "john-key"
IMAGE = {"image": {"url": "https://example.com/a.jpg"}}
ATTRS = {"attributes": IMAGE}
BBOX = {"annotations": [{"id": 1, "category_id": 1, "type": "bbox", "points": [[1, 2], [3, 4]]}]}
LABEL = {"attributes": BBOX}

# The examples of the original API document, sent exactly as written there (no trailing slash).
DOC_SAMPLE = {
    "name": "flowers.png",
    "attributes": {"image": {"url": "https://example.com/image.png"}},
    "metadata": {"city": "London", "weather": "cloudy", "robot_id": 3},
    "priority": 10,
}
DOC_LABEL = {
    "attributes": {
        "format_version": "0.1",
        "annotations": [{"id": 1, "category_id": 0}],
        "segmentation_bitmap": {"url": "https://example.com/label.png"},
    },
    "label_status": "PRELABELED",
    "score": 0.9254,
}


@pytest.fixture
def jane(sandbox: Sandbox) -> Iterator[requests.Session]:
    with sandbox.session(JANE_KEY) as session:
        yield session


@pytest.fixture
def john(sandbox: Sandbox) -> Iterator[requests.Session]:
    with sandbox.session(JOHN_KEY) as session:
        yield session


@pytest.fixture
def anonymous() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def cats(sandbox: Sandbox, jane: requests.Session) -> dict[str, str]:
    """jane's private bboxes dataset `cats` with one unlabeled sample; john is its labeler."""
    post(jane, sandbox, "/user/datasets/", {"name": "cats", "task_type": "bboxes"})
    sample = post(jane, sandbox, "/datasets/jane/cats/samples/", {"name": "a.jpg", **ATTRS})
    post(jane, sandbox, "/datasets/jane/cats/collaborators/", {"user": "john"})
    return {"sample": sample["uuid"]}


def post(session: requests.Session, sandbox: Sandbox, path: str, body: Any) -> Any:
    response = session.post(f"{sandbox.url}{path}", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def call(
    session: requests.Session, sandbox: Sandbox, method: str, path: str, body: Any = None
) -> requests.Response:
    """One request; bytes go out as they are, anything else as JSON."""
    raw = {"data": body} if isinstance(body, bytes) else {"json": body}
    return session.request(method, f"{sandbox.url}{path}", **raw, allow_redirects=False, timeout=10)


# -- the original document's examples ----------------------------------------------------------


def test_original_document_examples_work_without_trailing_slash(
    sandbox: Sandbox, jane: requests.Session
) -> None:
    def send(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = call(jane, sandbox, method, path, body)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    created = send(
        "POST", "/user/datasets", {"name": "cats", "description": "A dataset of cat images."}, 201
    )
    assert (created["full_name"], created["task_type"]) == ("jane/cats", "segmentation-bitmap")
    assert send("GET", "/datasets/jane/cats")["description"] == "A dataset of cat images."
    assert [d["name"] for d in send("GET", "/user/datasets")] == ["cats"]
    assert [d["name"] for d in send("GET", "/users/jane/datasets")] == ["cats"]
    collaborator = send(
        "POST", "/datasets/jane/cats/collaborators", {"user": "john", "role": "reviewer"}, 201
    )
    assert (collaborator["user"]["username"], collaborator["role"]) == ("john", "reviewer")

    sample = send("POST", "/datasets/jane/cats/samples", DOC_SAMPLE, 201)
    assert (sample["name"], sample["priority"], sample["metadata"]["robot_id"]) == (
        "flowers.png",
        10,
        3,
    )
    assert [s["uuid"] for s in send("GET", "/datasets/jane/cats/samples")] == [sample["uuid"]]
    assert send("GET", f"/samples/{sample['uuid']}")["dataset_full_name"] == "jane/cats"
    assert send("PATCH", f"/samples/{sample['uuid']}", {"priority": 5})["priority"] == 5

    label = send("PUT", f"/labels/{sample['uuid']}/ground-truth", DOC_LABEL, 201)
    assert (label["label_status"], label["score"]) == ("PRELABELED", 0.9254)
    assert (
        send("GET", f"/labels/{sample['uuid']}/ground-truth")["attributes"]
        == DOC_LABEL["attributes"]
    )

    release = send(
        "POST",
        "/datasets/jane/cats/releases",
        {"name": "v0.1", "description": "My first release."},
        201,
    )
    assert (release["status"], release["attributes"]) == ("PENDING", {})
    assert send("GET", "/datasets/jane/cats/releases/v0.1")["name"] == "v0.1"
    assert [r["name"] for r in send("GET", "/datasets/jane/cats/releases")] == ["v0.1"]

    send("DELETE", "/datasets/jane/cats/releases/v0.1", status=204)
    send("DELETE", f"/labels/{sample['uuid']}/ground-truth", status=204)
    send("DELETE", f"/samples/{sample['uuid']}", status=204)
    send("DELETE", "/datasets/jane/cats", status=204)
    send("GET", "/datasets/jane/cats", status=404)


# -- slash forms, gzip --------------------------------------------------------------------------

READ_PATHS = [
    "/api_status",
    "/user",
    "/users/jane",
    "/user/datasets",
    "/users/jane/datasets",
    "/datasets/jane/cats",
    "/datasets/jane/cats/samples",
    "/samples/{sample}",
    "/labels/{sample}/ground-truth",
    "/datasets/jane/cats/labelsets",
    "/datasets/jane/cats/labelsets/ground-truth",
    "/datasets/jane/cats/releases",
    "/datasets/jane/cats/collaborators/john",
]
CREATE_PATHS = [
    ("/user/datasets", lambda n: {"name": n}),
    ("/datasets/jane/cats/samples", lambda n: {"name": n, **ATTRS}),
    ("/datasets/jane/cats/samples_bulk", lambda n: [{"name": n, **ATTRS}]),
    ("/datasets/jane/cats/labelsets", lambda n: {"name": n}),
    ("/datasets/jane/cats/releases", lambda n: {"name": n}),
    ("/assets", lambda n: {"filename": f"{n}.png"}),
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_answer_alike_with_and_without_slash(
    sandbox: Sandbox, jane: requests.Session, cats: dict, path: str
) -> None:
    bare = path.format(**cats)

    without, with_slash = (call(jane, sandbox, "GET", form) for form in (bare, f"{bare}/"))

    assert without.status_code == with_slash.status_code
    assert without.status_code in {200, 404}
    assert without.json() == with_slash.json()


@pytest.mark.parametrize(("path", "body"), CREATE_PATHS)
def test_creates_are_never_redirected(
    sandbox: Sandbox, jane: requests.Session, cats: dict, path: str, body: Any
) -> None:
    statuses = [
        call(jane, sandbox, "POST", form, body(name)).status_code
        for form, name in ((path, "bare"), (f"{path}/", "slashed"))
    ]

    assert statuses == [201, 201]


def test_gzip_body_is_inflated(sandbox: Sandbox, jane: requests.Session, cats: dict) -> None:
    body = gzip.compress(json.dumps({"name": "zipped.jpg", **ATTRS}).encode())

    response = jane.post(
        f"{sandbox.url}/datasets/jane/cats/samples/",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 201
    assert response.json()["name"] == "zipped.jpg"


@pytest.mark.parametrize(
    "body",
    [b"not gzip at all", gzip.compress(b"\xff\xfe not utf-8"), gzip.compress(b"{")[:-4]],
    ids=["not-gzip", "not-utf8", "truncated"],
)
def test_bad_gzip_body_is_a_400(
    sandbox: Sandbox, jane: requests.Session, cats: dict, body: bytes
) -> None:
    response = jane.post(
        f"{sandbox.url}/datasets/jane/cats/samples/",
        data=body,
        headers={"Content-Encoding": "gzip"},
        timeout=10,
    )

    assert response.status_code == 400
    assert "detail" in response.json()


# -- authentication and access ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer jane-key", "Authentication credentials were not provided."),
        ("APIKey not-a-key", "Invalid token."),
        ("APIKey", "Invalid token."),
    ],
)
def test_missing_or_wrong_key_is_a_401(
    sandbox: Sandbox, anonymous: requests.Session, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = anonymous.get(f"{sandbox.url}/user", headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.json() == {"detail": message}


@pytest.mark.parametrize(
    "path",
    [
        "/datasets/jane/cats/",
        "/datasets/jane/cats/samples/",
        "/samples/{sample}/",
        "/labels/{sample}/ground-truth/",
        "/datasets/jane/cats/releases/",
    ],
)
def test_private_dataset_is_invisible_to_strangers(
    sandbox: Sandbox, jane: requests.Session, cats: dict, path: str
) -> None:
    call(jane, sandbox, "DELETE", "/datasets/jane/cats/collaborators/john")

    with sandbox.session(SANDBOX_KEY) as stranger:
        response = call(stranger, sandbox, "GET", path.format(**cats))
        listed = call(stranger, sandbox, "GET", "/users/jane/datasets/").json()

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert listed == []


def test_public_dataset_is_readable_but_not_writable_by_strangers(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    call(jane, sandbox, "PATCH", "/datasets/jane/cats/", {"public": True})

    with sandbox.session(SANDBOX_KEY) as stranger:
        read = call(stranger, sandbox, "GET", "/datasets/jane/cats/samples/")
        write = call(stranger, sandbox, "PUT", f"/labels/{cats['sample']}/ground-truth/", LABEL)
        listed = call(stranger, sandbox, "GET", "/users/jane/datasets/").json()

    assert read.status_code == 200
    assert [d["name"] for d in listed] == ["cats"]
    assert write.status_code == 403
    assert write.json() == {"detail": "You do not have permission to perform this action."}


ROLE_CASES = [
    ("labeler", "GET", "/datasets/jane/cats/samples/", None, 200),
    ("labeler", "PUT", "/labels/{sample}/ground-truth/", LABEL, 201),
    ("labeler", "POST", "/datasets/jane/cats/samples/", {"name": "b.jpg", **ATTRS}, 403),
    ("labeler", "POST", "/datasets/jane/cats/releases/", {"name": "v1"}, 403),
    ("reviewer", "PATCH", "/labels/{sample}/ground-truth/", {"label_status": "REVIEWED"}, 200),
    ("reviewer", "DELETE", "/samples/{sample}/", None, 403),
    ("manager", "POST", "/datasets/jane/cats/samples/", {"name": "b.jpg", **ATTRS}, 201),
    ("manager", "POST", "/datasets/jane/cats/releases/", {"name": "v1"}, 201),
    ("manager", "POST", "/datasets/jane/cats/collaborators/", {"user": SANDBOX_USER}, 201),
    ("manager", "PATCH", "/datasets/jane/cats/", {"description": "mine now"}, 403),
    ("manager", "DELETE", "/datasets/jane/cats/", None, 403),
    ("admin", "PATCH", "/datasets/jane/cats/", {"description": "mine now"}, 200),
    ("admin", "DELETE", "/datasets/jane/cats/", None, 204),
]


@pytest.mark.parametrize(("role", "method", "path", "body", "status"), ROLE_CASES)
def test_collaborator_roles(
    sandbox: Sandbox,
    jane: requests.Session,
    john: requests.Session,
    cats: dict,
    role: str,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    if method == "PATCH" and path.startswith("/labels"):
        call(jane, sandbox, "PUT", f"/labels/{cats['sample']}/ground-truth/", LABEL)
    call(jane, sandbox, "PATCH", "/datasets/jane/cats/collaborators/john", {"role": role})

    response = call(john, sandbox, method, path.format(**cats), body)

    assert response.status_code == status, response.text


# -- bad input: always a 4xx with a JSON body, never a 500 ---------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
NEW = "/user/datasets/"
CATS = "/datasets/jane/cats/"
SAMPLES = "/datasets/jane/cats/samples/"
BULK = "/datasets/jane/cats/samples_bulk/"
SAMPLE = "/samples/{sample}/"
GT = "/labels/{sample}/ground-truth/"
RELEASES = "/datasets/jane/cats/releases/"
PEOPLE = "/datasets/jane/cats/collaborators/"
LABELSETS = "/datasets/jane/cats/labelsets/"


def new_dataset(**fields: Any) -> dict:
    return {"name": "x", **fields}


def new_sample(**fields: Any) -> dict:
    return {"name": "b.jpg", **ATTRS, **fields}


def bbox_label(**changes: Any) -> dict:
    """A label body with one bbox annotation, changed by `changes`."""
    annotation = {"id": 1, "category_id": 1, "type": "bbox", "points": [[1, 2], [3, 4]], **changes}
    return {"attributes": {"annotations": [annotation]}}


BAD_INPUT = [
    # datasets
    ("POST", NEW, {}, 400, "name"),
    ("POST", NEW, {"name": "cats"}, 400, "name"),
    ("POST", NEW, {"name": "a/b"}, 400, "name"),
    ("POST", NEW, {"name": ""}, 400, "name"),
    ("POST", NEW, new_dataset(task_type="video"), 400, "task_type"),
    ("POST", NEW, new_dataset(category="cars"), 400, "category"),
    ("POST", NEW, new_dataset(public="yes"), 400, "public"),
    ("POST", NEW, new_dataset(enable_ratings=None), 400, "enable_ratings"),
    (
        "POST",
        NEW,
        new_dataset(task_attributes={"categories": [{"name": "a"}]}),
        400,
        "task_attributes",
    ),
    ("POST", NEW, new_dataset(metadata=[]), 400, "metadata"),
    ("POST", NEW, [new_dataset()], 400, "non_field_errors"),
    ("POST", NEW, "cats", 400, "non_field_errors"),
    ("POST", NEW, b"{not json", 400, "detail"),
    ("POST", NEW, b'{"name": "\xff\xfe"}', 400, "detail"),
    ("POST", NEW, b'{"name": NaN}', 400, "detail"),
    ("POST", NEW, b'{"name": "x", "labeling_inactivity_timeout_seconds": 1e400}', 400, "detail"),
    ("POST", NEW, b'{"name": "x", "priority": 1' + b"0" * 5000 + b"}", 400, "detail"),
    ("POST", NEW, DEEP, 400, "detail"),
    ("PATCH", CATS, {"task_type": 3}, 400, "task_type"),
    ("GET", f"{NEW}?page=2", None, 404, "detail"),
    ("POST", "/organizations/nobody/datasets/", new_dataset(), 404, "detail"),
    ("GET", "/users/nobody", None, 404, "detail"),
    # samples
    ("POST", SAMPLES, {}, 400, "attributes"),
    ("POST", SAMPLES, {"name": "b.jpg"}, 400, "attributes"),
    ("POST", SAMPLES, new_sample(attributes={}), 400, "attributes"),
    ("POST", SAMPLES, new_sample(attributes={"image": {}}), 400, "attributes"),
    ("POST", SAMPLES, new_sample(attributes={"image": {"url": 5}}), 400, "attributes"),
    ("POST", SAMPLES, new_sample(name="a.jpg"), 400, "name"),
    ("POST", SAMPLES, new_sample(priority="high"), 400, "priority"),
    ("POST", SAMPLES, new_sample(metadata=[1]), 400, "metadata"),
    ("POST", "/datasets/nobody/cats/samples/", new_sample(), 404, "detail"),
    ("POST", BULK, new_sample(), 400, "non_field_errors"),
    ("POST", BULK, [{"name": "b.jpg"}], 400, None),
    ("DELETE", BULK, {}, 400, "uuids"),
    ("DELETE", BULK, {"uuids": []}, 400, "uuids"),
    ("DELETE", BULK, {"uuids": [1]}, 400, "uuids"),
    ("PATCH", SAMPLE, {"name": ""}, 400, "name"),
    ("GET", "/samples/not-a-uuid/", None, 404, "detail"),
    ("GET", f"{SAMPLES}?label_status=DONE", None, 400, "label_status"),
    ("GET", f"{SAMPLES}?sort=size", None, 400, "sort"),
    ("GET", f"{SAMPLES}?per_page=many", None, 400, "per_page"),
    ("GET", f"{SAMPLES}?filters=nocolon", None, 400, "filters"),
    ("GET", f"{SAMPLES}?page=0", None, 404, "detail"),
    ("GET", f"{SAMPLES}?page=99", None, 404, "detail"),
    ("GET", f"{SAMPLES}?page=99999999999999999999999", None, 404, "detail"),
    ("GET", f"{SAMPLES}?labelset=nope", None, 404, "detail"),
    # labels
    ("GET", GT, None, 404, "detail"),
    ("PATCH", GT, {"label_status": "LABELED"}, 404, "detail"),
    ("DELETE", GT, None, 404, "detail"),
    ("PUT", "/labels/{sample}/nope/", LABEL, 404, "detail"),
    ("PUT", GT, {}, 400, "attributes"),
    ("PUT", GT, {"attributes": {}}, 400, "attributes"),
    ("PUT", GT, {**LABEL, "label_status": "DONE"}, 400, "label_status"),
    ("PUT", GT, {**LABEL, "score": "high"}, 400, "score"),
    ("PUT", GT, bbox_label(type="circle"), 400, "attributes"),
    ("PUT", GT, bbox_label(points=[[1, 2]] * 3), 400, "attributes"),
    ("PUT", GT, bbox_label(points=[["a", 2], [3, 4]]), 400, "attributes"),
    ("PUT", GT, bbox_label(points=[[1, 2, 3], [3, 4]]), 400, "attributes"),
    ("PUT", GT, bbox_label(type="polygon", points=[[1, 2]] * 3), 400, "attributes"),  # bboxes only
    ("PUT", GT, bbox_label(id=None), 400, "attributes"),
    ("PUT", GT, bbox_label(category_id="cat"), 400, "attributes"),
    # releases, collaborators, labelsets, assets and storage
    ("POST", RELEASES, {}, 400, "name"),
    ("POST", RELEASES, {"name": "v1", "description": None}, 400, "description"),
    ("GET", f"{RELEASES}nope/", None, 404, "detail"),
    ("POST", PEOPLE, {}, 400, "user"),
    ("POST", PEOPLE, {"user": "nobody"}, 400, "user"),
    ("POST", PEOPLE, {"user": "john"}, 400, "user"),
    ("POST", PEOPLE, {"user": SANDBOX_USER, "role": "boss"}, 400, "role"),
    ("PATCH", f"{PEOPLE}john", {"role": "boss"}, 400, "role"),
    ("PATCH", f"{PEOPLE}john", {}, 400, "role"),
    ("GET", f"{PEOPLE}nobody", None, 404, "detail"),
    ("POST", LABELSETS, {}, 400, "name"),
    ("POST", LABELSETS, {"name": "ground-truth"}, 400, "name"),
    ("DELETE", f"{LABELSETS}ground-truth/", None, 400, "name"),
    ("POST", "/assets/", {}, 400, "filename"),
    ("POST", "/storage/", b"", 400, "key"),
    ("GET", "/storage/assets/jane/nothing.png", None, 404, "detail"),
    ("GET", "/storage/releases/nothing.json", None, 404, "detail"),
    # routing
    ("GET", "/no/such/route", None, 404, "detail"),
    ("PUT", CATS, {}, 405, "detail"),
    ("POST", SAMPLE, {}, 405, "detail"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    BAD_INPUT,
    ids=[f"{i}-{case[0]}-{case[1]}" for i, case in enumerate(BAD_INPUT)],
)
def test_bad_input_gets_a_json_4xx(
    sandbox: Sandbox,
    jane: requests.Session,
    cats: dict,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    response = call(jane, sandbox, method, path.format(**cats), body)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    if field is not None:
        assert field in response.json()


@pytest.mark.parametrize(
    ("path", "body", "what"),
    [
        ("/user/datasets/", {"name": "cats"}, "dataset"),
        ("/datasets/jane/cats/samples/", {"name": "a.jpg", **ATTRS}, "sample"),
        ("/datasets/jane/cats/releases/", {"name": "v1"}, "release"),
    ],
)
def test_taken_names_say_already_exists(
    sandbox: Sandbox, jane: requests.Session, cats: dict, path: str, body: dict, what: str
) -> None:
    if what == "release":
        post(jane, sandbox, path, body)

    response = call(jane, sandbox, "POST", path, body)

    assert response.status_code == 400
    assert response.json() == {"name": [f"A {what} with this name already exists."]}


def test_unsupported_content_encoding_is_a_415(sandbox: Sandbox, jane: requests.Session) -> None:
    response = jane.post(
        f"{sandbox.url}/user/datasets/",
        data=b"{}",
        headers={"Content-Encoding": "br"},
        timeout=10,
    )

    assert response.status_code == 415
    assert "detail" in response.json()


def test_method_not_allowed_names_the_allowed_ones(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    response = call(jane, sandbox, "PUT", "/datasets/jane/cats/")

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


# -- behaviour worth pinning ---------------------------------------------------------------------


def test_bulk_create_and_delete(sandbox: Sandbox, jane: requests.Session, cats: dict) -> None:
    created = post(
        jane,
        sandbox,
        "/datasets/jane/cats/samples_bulk/",
        [
            {"name": "a.jpg", "attributes": {"image": {"url": "https://x/new.jpg"}}},
            {"name": "b.jpg", **ATTRS},
        ],
    )

    deleted = call(
        jane,
        sandbox,
        "DELETE",
        "/datasets/jane/cats/samples_bulk/",
        {"uuids": [s["uuid"] for s in created] + ["not-in-this-dataset"]},
    )

    assert created[0]["uuid"] == cats["sample"]
    assert created[0]["attributes"] == IMAGE
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted_count": 2}


def test_sample_listing_embeds_label_summaries(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    post(jane, sandbox, "/datasets/jane/cats/samples/", {"name": "b.jpg", **ATTRS})
    call(jane, sandbox, "PUT", f"/labels/{cats['sample']}/ground-truth/", {**LABEL, "score": 0.5})

    listed = call(jane, sandbox, "GET", "/datasets/jane/cats/samples/?labelset=ground-truth").json()
    plain = call(jane, sandbox, "GET", "/datasets/jane/cats/samples/").json()

    assert [s["label"] and s["label"]["label_status"] for s in listed] == ["PRELABELED", None]
    assert listed[0]["label"]["score"] == 0.5
    assert "label" not in plain[0]


def test_samples_filter_by_metadata(sandbox: Sandbox, jane: requests.Session, cats: dict) -> None:
    post(
        jane,
        sandbox,
        "/datasets/jane/cats/samples/",
        {"name": "b.jpg", **ATTRS, "metadata": {"city": "Ghent", "n": 3}},
    )

    listed = call(jane, sandbox, "GET", "/datasets/jane/cats/samples/?filters=city:Ghent,n:3")

    assert [s["name"] for s in listed.json()] == ["b.jpg"]


def test_concurrent_creates_keep_names_unique(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    def create(name: str) -> int:
        body = {"name": name, **ATTRS}
        return call(jane, sandbox, "POST", "/datasets/jane/cats/samples/", body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, [f"{i}.jpg" for i in range(16)] + ["same.jpg"] * 8))

    assert statuses[:16] == [201] * 16
    assert sorted(statuses[16:]) == [201] + [400] * 7
    assert call(jane, sandbox, "GET", "/datasets/jane/cats/").json()["samples_count"] == 18


def test_export_is_not_served_before_the_release_succeeds(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    sandbox.faults(release_seconds=3600)
    release = post(jane, sandbox, "/datasets/jane/cats/releases/", {"name": "slow"})

    response = requests.get(f"{sandbox.url}/storage/releases/{release['uuid']}.json", timeout=10)

    assert response.status_code == 404


def test_a_release_keeps_the_delay_it_was_created_with(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    post(jane, sandbox, "/datasets/jane/cats/releases/", {"name": "quick"})
    sandbox.faults(release_seconds=3600)
    post(jane, sandbox, "/datasets/jane/cats/releases/", {"name": "slow"})

    quick = eventually_done(sandbox, jane, "/datasets/jane/cats/releases/quick/")
    slow = call(jane, sandbox, "GET", "/datasets/jane/cats/releases/slow/").json()

    assert quick["status"] == "SUCCEEDED"
    assert quick["attributes"]["url"].startswith(f"{sandbox.url}/storage/releases/")
    assert slow["status"] == "PENDING"


def eventually_done(
    sandbox: Sandbox, session: requests.Session, path: str, timeout: float = 30.0
) -> dict:
    """Poll a release until it leaves PENDING."""
    deadline = time.monotonic() + timeout
    while (release := call(session, sandbox, "GET", path).json())["status"] == "PENDING":
        assert time.monotonic() < deadline, "release stayed PENDING"
        time.sleep(0.1)
    return release


# -- faults, stats, reset -----------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.parametrize("status", [500, 503])
def test_fail_rate_one_fails_every_api_request(
    sandbox: Sandbox, jane: requests.Session, status: int
) -> None:
    sandbox.faults(fail_rate=1.0, fail_status=status)

    answers = [call(jane, sandbox, "GET", path) for path in ("/user", "/api_status/")]

    assert [a.status_code for a in answers] == [status, status]
    assert all("detail" in a.json() for a in answers)
    assert requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).status_code == 200


@pytest.mark.faults
def test_faults_spare_storage_downloads(sandbox: Sandbox, jane: requests.Session) -> None:
    asset = post(jane, sandbox, "/assets/", {"filename": "label.png"})
    fields = asset["presignedPostFields"]
    upload = requests.post(
        fields["url"], data=fields["fields"], files={"file": b"png bytes"}, timeout=10
    )
    sandbox.faults(fail_rate=1.0)

    download = requests.get(asset["url"], timeout=10)

    assert (upload.status_code, upload.content) == (204, b"")
    assert (download.status_code, download.content) == (200, b"png bytes")
    assert download.headers["Content-Type"] == "image/png"


@pytest.mark.faults
def test_rate_limit_answers_429_with_retry_after(sandbox: Sandbox, jane: requests.Session) -> None:
    sandbox.faults(rate_limit=1, retry_after=2)
    deadline = time.monotonic() + 30

    while (response := call(jane, sandbox, "GET", "/user")).status_code != 429:
        assert response.status_code == 200
        assert time.monotonic() < deadline, "never throttled"

    assert response.headers["Retry-After"] == "2"
    assert response.json() == {"detail": "Request was throttled. Expected available in 2 seconds."}


@pytest.mark.faults
def test_latency_delays_api_requests(sandbox: Sandbox, jane: requests.Session) -> None:
    sandbox.faults(latency_ms=300)
    started = time.monotonic()

    response = call(jane, sandbox, "GET", "/user")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.faults
def test_hang_outlasts_a_client_read_timeout(sandbox: Sandbox, jane: requests.Session) -> None:
    sandbox.faults(hang_rate=1.0, hang_seconds=1)

    with pytest.raises(requests.ReadTimeout):
        jane.get(f"{sandbox.url}/user", timeout=(5, 0.2))

    # The hung request still finishes on the server; wait for it so it cannot spill into the
    # counts of the next test.
    deadline = time.monotonic() + 30
    while not sandbox.stats()["requests"]:
        assert time.monotonic() < deadline, "the hung request never finished"
        time.sleep(0.1)
    assert sandbox.stats()["requests"][0]["route"] == "/user"


@pytest.mark.faults
def test_release_fail_fault_fails_new_releases(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    sandbox.faults(release_fail=True)
    post(jane, sandbox, "/datasets/jane/cats/releases/", {"name": "doomed"})

    release = eventually_done(sandbox, jane, "/datasets/jane/cats/releases/doomed/")

    assert (release["status"], release["attributes"]) == ("FAILED", {})


def test_faults_start_from_the_command_line(sandbox: Sandbox) -> None:
    faults = requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).json()

    assert faults == {
        "latency_ms": 0,
        "fail_rate": 0.0,
        "fail_status": 500,
        "rate_limit": None,
        "retry_after": 1,
        "hang_rate": 0.0,
        "hang_seconds": 30.0,
        "release_fail": False,
        "release_seconds": 1.0,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"latency_ms": -1},
        {"latency_ms": 1.5},
        {"fail_rate": 2},
        {"fail_status": 502},
        {"rate_limit": 0},
        {"retry_after": 0},
        {"hang_rate": "always"},
        {"hang_seconds": -1},
        {"release_fail": "yes"},
        {"release_seconds": None},
        {"explode": True},
    ],
    ids=lambda change: next(iter(change)),
)
def test_bad_fault_changes_are_400s_naming_the_field(sandbox: Sandbox, change: dict) -> None:
    response = requests.patch(f"{sandbox.url}/_sandbox/faults", json=change, timeout=10)

    assert response.status_code == 400
    assert list(response.json()) == list(change)


def test_stats_count_api_requests_by_route_and_status(
    sandbox: Sandbox, jane: requests.Session
) -> None:
    for path in ("/user", "/user/", "/datasets/jane/nope/"):
        call(jane, sandbox, "GET", path)
    requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10)

    stats = sandbox.stats()

    assert stats == {
        "requests": [
            {"method": "GET", "route": "/datasets/<owner>/<dataset>/", "status": 404, "count": 1},
            {"method": "GET", "route": "/user", "status": 200, "count": 2},
        ],
        "total": 3,
    }


def test_reset_empties_data_and_restores_faults(
    sandbox: Sandbox, jane: requests.Session, cats: dict
) -> None:
    sandbox.faults(latency_ms=5, release_fail=True)

    sandbox.reset()

    assert call(jane, sandbox, "GET", "/user/datasets/").json() == []
    assert call(jane, sandbox, "GET", f"/samples/{cats['sample']}/").status_code == 404
    faults = requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).json()
    assert (faults["latency_ms"], faults["release_fail"]) == (0, False)
    assert sandbox.stats()["total"] == 2


# -- a sandbox of our own: --data survives a restart ---------------------------------------------


@pytest.mark.integration
def test_data_dir_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = python("-m", "relay.sandbox", "--port", str(port), "--data", str(tmp_path / "state"))
    log = tmp_path / "sandbox.log"
    own = Sandbox(url)

    with running(args, log=log) as first, own.session() as session:
        wait_for_http(f"{url}/_sandbox/stats", proc=first)
        post(session, own, "/user/datasets/", {"name": "kept"})
        sample = post(session, own, "/datasets/demo/kept/samples/", {"name": "a.jpg", **ATTRS})
    with running(args, log=log) as second, own.session() as session:
        wait_for_http(f"{url}/_sandbox/stats", proc=second)
        fetched = call(session, own, "GET", f"/samples/{sample['uuid']}/")

    assert (first.returncode, second.returncode) == (0, 0)
    assert fetched.status_code == 200
    assert fetched.json()["dataset_full_name"] == "demo/kept"
    output = log.read_text()
    assert "Users: demo" in output
    assert SANDBOX_KEY not in output
