"""Integration tests: SegmentsClient against a running sandbox over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from relay.segments import client as client_module
from relay.segments import labels
from relay.segments.client import SegmentsClient
from relay.segments.errors import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    ValidationError,
)
from tests.conftest import Sandbox
from tests.procs import free_port

pytestmark = pytest.mark.integration

CATS = "demo/cats"
VECTOR_TASK = {
    "format_version": "0.1",
    "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}],
}


def image(name: str) -> dict:
    return {"image": {"url": f"https://example.com/images/{name}"}}


@pytest.fixture
def connect(sandbox: Sandbox) -> Iterator[Callable[..., SegmentsClient]]:
    """Build clients on the sandbox (demo's key unless told), closed after the test."""
    made: list[SegmentsClient] = []

    def make(key: str = sandbox.key, **options: Any) -> SegmentsClient:
        made.append(SegmentsClient(sandbox.url, key, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(connect: Callable[..., SegmentsClient]) -> SegmentsClient:
    return connect()


@pytest.fixture
def cats(client: SegmentsClient) -> str:
    """An empty vector dataset owned by demo."""
    client.create_dataset("cats", task_type="vector", task_attributes=VECTOR_TASK)
    return CATS


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(client_module, "sleep", slept.append)
    return slept


def add_samples(client: SegmentsClient, dataset: str, *names: str) -> dict[str, str]:
    """Create samples and return their uuids by name."""
    return {name: client.create_sample(dataset, name, image(name))["uuid"] for name in names}


class TestStatusAndUsers:
    def test_api_status_accepts_the_key(self, client: SegmentsClient) -> None:
        client.api_status()

    def test_get_user(self, client: SegmentsClient) -> None:
        assert client.get_user()["username"] == "demo"
        assert client.get_user("jane")["username"] == "jane"

    def test_unknown_user(self, client: SegmentsClient) -> None:
        with pytest.raises(NotFoundError):
            client.get_user("nobody")

    def test_wrong_key(self, connect: Callable[..., SegmentsClient]) -> None:
        with pytest.raises(AuthenticationError) as caught:
            connect("wrong-key").get_user()
        assert caught.value.status == 401
        assert "wrong-key" not in str(caught.value)


class TestDatasets:
    def test_lifecycle(self, client: SegmentsClient) -> None:
        created = client.create_dataset(
            "cats", task_type="vector", task_attributes=VECTOR_TASK, description="Cats."
        )
        assert (created["full_name"], created["task_type"]) == (CATS, "vector")
        assert client.get_dataset(CATS)["description"] == "Cats."
        assert [d["full_name"] for d in client.list_datasets()] == [CATS]
        assert [d["full_name"] for d in client.list_datasets("demo")] == [CATS]
        assert client.update_dataset(CATS, description="Only cats.")["description"] == "Only cats."
        assert client.get_dataset(CATS)["description"] == "Only cats."
        client.delete_dataset(CATS)
        with pytest.raises(NotFoundError):
            client.get_dataset(CATS)

    def test_list_datasets_pages_through_everything(self, client: SegmentsClient) -> None:
        names = [f"set-{i}" for i in range(5)]
        for name in names:
            client.create_dataset(name)
        listed = [d["name"] for d in client.list_datasets(per_page=2)]
        assert sorted(listed) == names

    def test_duplicate_name(self, client: SegmentsClient, cats: str) -> None:
        with pytest.raises(AlreadyExistsError) as caught:
            client.create_dataset("cats")
        assert caught.value.status == 400
        assert "already exists" in str(caught.value)

    def test_invalid_fields(self, client: SegmentsClient) -> None:
        with pytest.raises(ValidationError) as caught:
            client.create_dataset("dogs", task_type="painting")
        assert caught.value.status == 400
        assert "task_type" in caught.value.fields

    def test_missing_dataset(self, client: SegmentsClient) -> None:
        with pytest.raises(NotFoundError) as caught:
            client.get_dataset("demo/nope")
        assert str(caught.value) == "GET /datasets/demo/nope/ -> 404: Not found."


class TestCollaborators:
    def test_lifecycle(self, client: SegmentsClient, cats: str) -> None:
        added = client.add_collaborator(cats, "john", "labeler")
        assert (added["user"]["username"], added["role"]) == ("john", "labeler")
        assert client.get_collaborator(cats, "john")["role"] == "labeler"
        assert client.update_collaborator(cats, "john", "reviewer")["role"] == "reviewer"
        client.delete_collaborator(cats, "john")
        with pytest.raises(NotFoundError):
            client.get_collaborator(cats, "john")

    def test_a_labeler_may_not_delete_the_dataset(
        self, client: SegmentsClient, connect: Callable[..., SegmentsClient], cats: str
    ) -> None:
        client.add_collaborator(cats, "john", "labeler")
        john = connect("john-key")
        assert john.get_dataset(cats)["full_name"] == cats
        with pytest.raises(PermissionDeniedError) as caught:
            john.delete_dataset(cats)
        assert caught.value.status == 403

    def test_a_stranger_cannot_see_a_private_dataset(
        self, connect: Callable[..., SegmentsClient], cats: str
    ) -> None:
        with pytest.raises(NotFoundError):
            connect("jane-key").get_dataset(cats)


class TestSamples:
    @pytest.mark.parametrize("compress", [False, True])
    def test_lifecycle(
        self, connect: Callable[..., SegmentsClient], cats: str, compress: bool
    ) -> None:
        client = connect(compress=compress)
        created = client.create_sample(
            cats, "a.jpg", image("a.jpg"), metadata={"camera": 3}, priority=5
        )
        assert (created["name"], created["attributes"]) == ("a.jpg", image("a.jpg"))
        fetched = client.get_sample(created["uuid"])
        assert (fetched["metadata"], fetched["priority"]) == ({"camera": 3}, 5)
        updated = client.update_sample(created["uuid"], priority=9, metadata={"camera": 4})
        assert (updated["priority"], updated["metadata"]) == (9, {"camera": 4})
        client.delete_sample(created["uuid"])
        with pytest.raises(NotFoundError):
            client.get_sample(created["uuid"])

    def test_iter_samples_pages_through_everything(self, client: SegmentsClient, cats: str) -> None:
        names = [f"img-{i}.jpg" for i in range(7)]
        add_samples(client, cats, *names)
        assert sorted(s["name"] for s in client.iter_samples(cats, per_page=3)) == names
        assert sorted(s["name"] for s in client.iter_samples(cats, per_page=7)) == names
        assert [s["name"] for s in client.iter_samples(cats, name_contains="img-4")] == [
            "img-4.jpg"
        ]

    def test_iter_samples_of_an_empty_or_missing_dataset(
        self, client: SegmentsClient, cats: str
    ) -> None:
        assert list(client.iter_samples(cats)) == []
        with pytest.raises(NotFoundError):
            list(client.iter_samples("demo/nope"))

    def test_bulk_create_returns_existing_names_unchanged(
        self, client: SegmentsClient, cats: str
    ) -> None:
        existing = add_samples(client, cats, "a.jpg")
        samples = [{"name": name, "attributes": image(name)} for name in ("a.jpg", "b.jpg")]
        created = client.create_samples_bulk(cats, samples)
        assert [s["name"] for s in created] == ["a.jpg", "b.jpg"]
        assert created[0]["uuid"] == existing["a.jpg"]
        assert len(list(client.iter_samples(cats))) == 2

    def test_duplicate_name(self, client: SegmentsClient, cats: str) -> None:
        add_samples(client, cats, "a.jpg")
        with pytest.raises(AlreadyExistsError):
            client.create_sample(cats, "a.jpg", image("a.jpg"))

    def test_create_or_get_sample(self, client: SegmentsClient, cats: str) -> None:
        # Names containing "a.jpg" come first so the exact match is not simply the first hit.
        add_samples(client, cats, "aa.jpg", "a.jpg.bak")
        first, created = client.create_or_get_sample(cats, "a.jpg", image("a.jpg"))
        again, created_again = client.create_or_get_sample(cats, "a.jpg", image("a.jpg"))
        assert (created, created_again) == (True, False)
        assert again["uuid"] == first["uuid"]
        assert len(list(client.iter_samples(cats))) == 3

    def test_invalid_sample(self, client: SegmentsClient, cats: str) -> None:
        with pytest.raises(ValidationError) as caught:
            client.create_sample(cats, "", image("a.jpg"))
        assert "name" in caught.value.fields


class TestLabels:
    def test_lifecycle(self, connect: Callable[..., SegmentsClient], cats: str) -> None:
        client = connect(compress=True)
        uuid = add_samples(client, cats, "a.jpg")["a.jpg"]
        assert client.get_label_or_none(uuid, "ground-truth") is None
        attributes = labels.vector_attributes(
            [labels.bbox(1, 0, 10, 10, 50, 60), labels.polygon(2, 1, [[0, 0], [9, 0], [5, 5]])],
            width=640,
            height=480,
        )
        put = client.put_label(uuid, "ground-truth", attributes, score=0.87)
        assert (put["label_status"], put["score"], put["attributes"]) == (
            "PRELABELED",
            0.87,
            attributes,
        )
        fetched = client.get_label(uuid, "ground-truth")
        assert (fetched["sample_uuid"], fetched["labelset"]) == (uuid, "ground-truth")
        updated = client.update_label(uuid, "ground-truth", label_status="LABELED")
        assert (updated["label_status"], updated["attributes"]) == ("LABELED", attributes)
        client.delete_label(uuid, "ground-truth")
        assert client.get_label_or_none(uuid, "ground-truth") is None
        with pytest.raises(NotFoundError):
            client.get_label(uuid, "ground-truth")

    def test_filter_samples_by_label_status(self, client: SegmentsClient, cats: str) -> None:
        uuids = add_samples(client, cats, "a.jpg", "b.jpg", "c.jpg")
        empty = labels.vector_attributes([])
        client.put_label(uuids["a.jpg"], "ground-truth", empty, label_status="LABELED")
        client.put_label(uuids["b.jpg"], "ground-truth", empty, label_status="REVIEWED")

        def names(**filters: Any) -> list[str]:
            return sorted(s["name"] for s in client.iter_samples(cats, **filters))

        assert names(label_status="LABELED") == ["a.jpg"]
        assert names(label_status=["LABELED", "REVIEWED"]) == ["a.jpg", "b.jpg"]
        assert names(label_status="UNLABELED", labelset="ground-truth") == ["c.jpg"]
        with_label = client.get_sample(uuids["b.jpg"], labelset="ground-truth")
        assert with_label["label"]["label_status"] == "REVIEWED"

    def test_segmentation_bitmap_label(self, client: SegmentsClient) -> None:
        client.create_dataset("masks", task_type="segmentation-bitmap")
        uuid = add_samples(client, "demo/masks", "a.jpg")["a.jpg"]
        attributes = labels.segmentation_bitmap_attributes(
            [{"id": 1, "category_id": 1}], "https://example.com/masks/a.png"
        )
        assert client.put_label(uuid, "ground-truth", attributes)["attributes"] == attributes

    def test_segmentation_bitmap_label_with_an_uploaded_mask(self, client: SegmentsClient) -> None:
        client.create_dataset("masks", task_type="segmentation-bitmap")
        uuid = add_samples(client, "demo/masks", "a.jpg")["a.jpg"]
        ids = [[0, 0, 1], [2, 2, 1], [0, 300, 300]]
        asset = client.upload_asset(labels.bitmap_png(ids), "a-mask.png")
        downloaded = requests.get(asset["url"], timeout=10)
        downloaded.raise_for_status()
        assert labels.read_bitmap_png(downloaded.content).tolist() == ids
        attributes = labels.segmentation_bitmap_attributes(
            [
                {"id": 1, "category_id": 1},
                {"id": 2, "category_id": 1},
                {"id": 300, "category_id": 1},
            ],
            asset["url"],
        )
        put = client.put_label(uuid, "ground-truth", attributes, label_status="LABELED")
        assert put["attributes"]["segmentation_bitmap"]["url"] == asset["url"]

    def test_invalid_label(self, client: SegmentsClient, cats: str) -> None:
        uuid = add_samples(client, cats, "a.jpg")["a.jpg"]
        with pytest.raises(ValidationError) as caught:
            client.put_label(uuid, "ground-truth", {"annotations": "none"})
        assert caught.value.fields

    def test_label_of_a_missing_sample(self, client: SegmentsClient, cats: str) -> None:
        missing = "00000000-0000-0000-0000-000000000000"
        with pytest.raises(NotFoundError):
            client.put_label(missing, "ground-truth", labels.vector_attributes([]))


class TestLabelsets:
    def test_list_and_create(self, client: SegmentsClient, cats: str) -> None:
        assert [ls["name"] for ls in client.list_labelsets(cats)] == ["ground-truth"]
        created = client.create_labelset(cats, "predictions", "Model output.")
        assert (created["name"], created["description"]) == ("predictions", "Model output.")
        assert [ls["name"] for ls in client.list_labelsets(cats)] == ["ground-truth", "predictions"]
        uuid = add_samples(client, cats, "a.jpg")["a.jpg"]
        client.put_label(uuid, "predictions", labels.vector_attributes([]))
        assert client.get_label_or_none(uuid, "ground-truth") is None
        assert client.get_label(uuid, "predictions")["labelset"] == "predictions"

    def test_duplicate_labelset(self, client: SegmentsClient, cats: str) -> None:
        with pytest.raises(AlreadyExistsError):
            client.create_labelset(cats, "ground-truth")


class TestReleases:
    def test_lifecycle(self, client: SegmentsClient, cats: str) -> None:
        add_samples(client, cats, "a.jpg")
        created = client.create_release(cats, "v0.1", "First.")
        assert (created["name"], created["status"]) == ("v0.1", "PENDING")
        deadline = time.monotonic() + 15
        while (release := client.get_release(cats, "v0.1"))["status"] == "PENDING":
            assert time.monotonic() < deadline, "release stayed PENDING"
            time.sleep(0.2)
        assert release["status"] == "SUCCEEDED"
        assert release["attributes"]["url"]
        assert [r["name"] for r in client.list_releases(cats)] == ["v0.1"]
        client.delete_release(cats, "v0.1")
        with pytest.raises(NotFoundError):
            client.get_release(cats, "v0.1")
        assert client.list_releases(cats) == []

    def test_duplicate_name(self, client: SegmentsClient, cats: str) -> None:
        client.create_release(cats, "v1")
        with pytest.raises(AlreadyExistsError):
            client.create_release(cats, "v1")

    def test_create_or_get_release(self, client: SegmentsClient, cats: str) -> None:
        first, created = client.create_or_get_release(cats, "v1", "First.")
        again, created_again = client.create_or_get_release(cats, "v1", "First.")
        assert (created, created_again) == (True, False)
        assert again["uuid"] == first["uuid"]
        assert len(client.list_releases(cats)) == 1


@pytest.mark.faults
class TestFaults:
    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors(self, sandbox: Sandbox, client: SegmentsClient, status: int) -> None:
        sandbox.faults(fail_rate=1.0, fail_status=status)
        with pytest.raises(ServerError) as caught:
            client.get_user()
        assert (caught.value.status, caught.value.retryable) == (status, True)

    def test_server_errors_are_retried_then_raised(
        self,
        sandbox: Sandbox,
        connect: Callable[..., SegmentsClient],
        sleeps: list[float],
    ) -> None:
        sandbox.faults(fail_rate=1.0, fail_status=503)
        with pytest.raises(ServerError):
            connect(max_retries=2).get_user()
        assert len(sleeps) == 2
        answers = [(r["method"], r["status"], r["count"]) for r in sandbox.stats()["requests"]]
        assert answers == [("GET", 503, 3)]

    def test_rate_limit(self, sandbox: Sandbox, client: SegmentsClient) -> None:
        sandbox.faults(rate_limit=1, retry_after=2)
        # Limits count per one-second window; three calls put two in the same window.
        with pytest.raises(RateLimitError) as caught:
            [client.get_user() for _ in range(3)]
        assert (caught.value.status, caught.value.retry_after) == (429, 2.0)
        assert "throttled" in caught.value.message

    def test_rate_limit_is_waited_out_when_retrying(
        self, sandbox: Sandbox, connect: Callable[..., SegmentsClient]
    ) -> None:
        sandbox.faults(rate_limit=1, retry_after=1)
        client = connect(max_retries=2)
        started = time.monotonic()
        # One call per one-second window: three calls cannot all pass within a second.
        for _ in range(3):
            assert client.get_user()["username"] == "demo"
        assert time.monotonic() - started >= 1.0

    def test_hang_hits_the_read_timeout(
        self, sandbox: Sandbox, connect: Callable[..., SegmentsClient]
    ) -> None:
        sandbox.faults(hang_rate=1.0, hang_seconds=5)
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as caught:
            connect(read_timeout=0.5).get_user()
        assert time.monotonic() - started < 4
        assert caught.value.retryable

    def test_nothing_listening(self) -> None:
        client = SegmentsClient(f"http://127.0.0.1:{free_port()}", "sandbox-demo-key")
        with client, pytest.raises(ApiConnectionError) as caught:
            client.get_user()
        assert caught.value.retryable
        assert "sandbox-demo-key" not in str(caught.value)

    def test_other_statuses_are_api_errors(self, client: SegmentsClient) -> None:
        # No public method sends a wrong verb, so go one level down to provoke a 405.
        with pytest.raises(ApiError) as caught:
            client._request("PUT", "/user")
        assert caught.value.status == 405
        assert not caught.value.retryable
