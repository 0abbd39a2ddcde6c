"""The official segments-ai SDK, unchanged, against the sandbox over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from segments import SegmentsClient
from segments.exceptions import AlreadyExistsError, CollaboratorError, NotFoundError
from segments.typing import Release
from segments.utils import bitmap2file, load_label_bitmap_from_url, load_release

from tests.conftest import SANDBOX_KEY, SANDBOX_USER, Sandbox

IMAGE = {"image": {"url": "https://example.com/a.jpg"}}
LABELS = {
    "bboxes": {
        "format_version": "0.1",
        "annotations": [
            {"id": 1, "category_id": 1, "type": "bbox", "points": [[10, 20], [30, 40]]},
        ],
    },
    "vector": {
        "format_version": "0.1",
        "annotations": [
            {"id": 1, "category_id": 1, "type": "polygon", "points": [[0, 0], [5, 0], [5, 5]]},
            {"id": 2, "category_id": 1, "type": "point", "points": [[3, 3]]},
        ],
    },
    "segmentation-bitmap": {
        "format_version": "0.1",
        "annotations": [{"id": 1, "category_id": 1}],
        "segmentation_bitmap": {"url": "https://example.com/label.png"},
    },
}
TASK_TYPES = sorted(LABELS)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SegmentsClient]:
    with SegmentsClient(api_key=SANDBOX_KEY, api_url=sandbox.url) as segments:
        yield segments


@pytest.fixture
def dataset(client: SegmentsClient) -> str:
    """A bboxes dataset of the demo user, by identifier."""
    return client.add_dataset("flowers", task_type="bboxes").full_name


def eventually(check: Callable[[], Release], timeout: float = 30.0) -> Release:
    """Poll a release until it is no longer PENDING."""
    deadline = time.monotonic() + timeout
    while (release := check()).status == "PENDING":
        assert time.monotonic() < deadline, "release stayed PENDING"
        time.sleep(0.1)
    return release


def add_images(client: SegmentsClient, dataset: str, *names: str) -> list[str]:
    samples = [{"name": name, "attributes": IMAGE} for name in names]
    return [sample.uuid for sample in client.add_samples(dataset, samples)]


def test_user_is_the_key_owner(client: SegmentsClient) -> None:
    assert client.get_user().username == SANDBOX_USER
    assert client.get_user("jane").username == "jane"


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_add_and_get_dataset_of_each_image_task_type(
    client: SegmentsClient, task_type: str
) -> None:
    created = client.add_dataset("cats", "Cat images.", task_type=task_type, category="people")

    fetched = client.get_dataset(f"{SANDBOX_USER}/cats")
    assert (created.full_name, fetched.full_name) == (f"{SANDBOX_USER}/cats",) * 2
    assert fetched.task_type == task_type
    assert fetched.description == "Cat images."
    assert fetched.category == "people"
    assert [labelset.name for labelset in fetched.labelsets] == ["ground-truth"]
    assert [d.name for d in client.get_datasets()] == ["cats"]


def test_update_and_delete_dataset(client: SegmentsClient, dataset: str) -> None:
    updated = client.update_dataset(dataset, description="Now with tulips.", public=True)
    assert (updated.description, updated.public) == ("Now with tulips.", True)

    client.delete_dataset(dataset)

    with pytest.raises(NotFoundError):
        client.get_dataset(dataset)


def test_dataset_name_is_unique_per_owner(client: SegmentsClient, dataset: str) -> None:
    with pytest.raises(AlreadyExistsError):
        client.add_dataset(dataset.split("/")[1])


def test_add_sample_then_bulk_returns_existing_names_unchanged(
    client: SegmentsClient, dataset: str
) -> None:
    first = client.add_sample(dataset, "a.jpg", IMAGE, metadata={"city": "Ghent"}, priority=3)
    other_url = {"image": {"url": "https://example.com/other.jpg"}}

    bulk = client.add_samples(
        dataset,
        [{"name": "b.jpg", "attributes": IMAGE}, {"name": "a.jpg", "attributes": other_url}],
    )

    assert [sample.name for sample in bulk] == ["b.jpg", "a.jpg"]
    assert bulk[1].uuid == first.uuid
    assert bulk[1].attributes.image.url == "https://example.com/a.jpg"
    assert bulk[1].metadata == {"city": "Ghent"}
    assert client.get_sample(first.uuid).priority == 3
    assert client.get_dataset(dataset).samples_count == 2


def test_duplicate_sample_name_is_already_exists(client: SegmentsClient, dataset: str) -> None:
    client.add_sample(dataset, "a.jpg", IMAGE)

    with pytest.raises(AlreadyExistsError):
        client.add_sample(dataset, "a.jpg", IMAGE)


def test_samples_page_by_two(client: SegmentsClient, dataset: str) -> None:
    add_images(client, dataset, *(f"{i}.jpg" for i in range(5)))

    pages = [
        [sample.name for sample in client.get_samples(dataset, per_page=2, page=page)]
        for page in (1, 2, 3)
    ]

    assert pages == [["0.jpg", "1.jpg"], ["2.jpg", "3.jpg"], ["4.jpg"]]
    with pytest.raises(NotFoundError):
        client.get_samples(dataset, per_page=2, page=4)


def test_samples_filter_by_name_and_label_status(client: SegmentsClient, dataset: str) -> None:
    cat, _, _ = add_images(client, dataset, "cat-1.jpg", "cat-2.jpg", "dog-1.jpg")
    client.add_label(cat, "ground-truth", LABELS["bboxes"], label_status="LABELED")

    def names(**filters: object) -> list[str]:
        return [sample.name for sample in client.get_samples(dataset, **filters)]

    assert names(name="cat") == ["cat-1.jpg", "cat-2.jpg"]
    assert names(labelset="ground-truth", label_status="LABELED") == ["cat-1.jpg"]
    assert names(labelset="ground-truth", label_status=["UNLABELED"]) == ["cat-2.jpg", "dog-1.jpg"]
    assert names(name="dog", label_status=["LABELED", "UNLABELED"]) == ["dog-1.jpg"]
    assert names(sort="name", direction="desc") == ["dog-1.jpg", "cat-2.jpg", "cat-1.jpg"]


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_label_add_get_update_delete(client: SegmentsClient, task_type: str) -> None:
    dataset = client.add_dataset("labels", task_type=task_type).full_name
    sample = client.add_sample(dataset, "a.jpg", IMAGE)

    added = client.add_label(sample.uuid, "ground-truth", LABELS[task_type], score=0.87)
    fetched = client.get_label(sample.uuid)
    updated = client.update_label(sample.uuid, "ground-truth", label_status="REVIEWED")

    assert (added.label_status, added.score, added.label_type) == ("PRELABELED", 0.87, task_type)
    assert added.created_by == SANDBOX_USER
    assert fetched.attributes == added.attributes
    assert (updated.label_status, updated.score) == ("REVIEWED", 0.87)
    assert updated.attributes == added.attributes
    assert client.get_sample(sample.uuid, labelset="ground-truth").label.label_status == "REVIEWED"
    listed = client.get_samples(dataset, labelset="ground-truth", include_full_label=True)
    assert listed[0].label.attributes == added.attributes

    client.delete_label(sample.uuid, "ground-truth")

    with pytest.raises(NotFoundError):
        client.get_label(sample.uuid)


def test_update_and_delete_samples(client: SegmentsClient, dataset: str) -> None:
    one, two, three = add_images(client, dataset, "1.jpg", "2.jpg", "3.jpg")

    updated = client.update_sample(one, name="first.jpg", metadata={"weather": "rain"})
    client.delete_sample(two)
    deleted = client.delete_samples(dataset, [three])

    assert (updated.name, updated.metadata) == ("first.jpg", {"weather": "rain"})
    assert deleted.deleted_count == 1
    assert [sample.uuid for sample in client.get_samples(dataset)] == [one]
    with pytest.raises(NotFoundError):
        client.get_sample(two)


def test_release_succeeds_with_a_downloadable_export(client: SegmentsClient, dataset: str) -> None:
    (uuid,) = add_images(client, dataset, "a.jpg")
    client.add_label(uuid, "ground-truth", LABELS["bboxes"], label_status="LABELED", score=0.5)

    created = client.add_release(dataset, "v0.1", "First release.")
    client.add_sample(dataset, "after-release.jpg", IMAGE)
    release = eventually(lambda: client.get_release(dataset, "v0.1"))

    assert (created.status, created.samples_count) == ("PENDING", 1)
    assert release.status == "SUCCEEDED"
    export = load_release(release)
    assert export["name"] == "v0.1"
    assert export["dataset"]["task_type"] == "bboxes"
    (sample,) = export["dataset"]["samples"]
    assert (sample["uuid"], sample["name"]) == (uuid, "a.jpg")
    label = sample["labels"]["ground-truth"]
    assert (label["label_status"], label["score"]) == ("LABELED", 0.5)
    assert label["attributes"]["annotations"][0]["points"] == [[10, 20], [30, 40]]
    assert [r.name for r in client.get_releases(dataset)] == ["v0.1"]

    client.delete_release(dataset, "v0.1")

    with pytest.raises(NotFoundError):
        client.get_release(dataset, "v0.1")


def test_release_marked_to_fail_ends_failed(client: SegmentsClient, dataset: str) -> None:
    client.add_release(dataset, "broken", "[fail] on purpose")

    release = eventually(lambda: client.get_release(dataset, "broken"))

    assert release.status == "FAILED"
    assert release.attributes.url is None


def test_duplicate_release_name_is_already_exists(client: SegmentsClient, dataset: str) -> None:
    client.add_release(dataset, "v1")

    with pytest.raises(AlreadyExistsError):
        client.add_release(dataset, "v1")


def test_collaborator_add_get_update_delete(client: SegmentsClient, dataset: str) -> None:
    added = client.add_dataset_collaborator(dataset, "jane", "reviewer")
    fetched = client.get_dataset_collaborator(dataset, "jane")
    updated = client.update_dataset_collaborator(dataset, "jane", "manager")

    assert (added.user.username, added.role) == ("jane", "reviewer")
    assert fetched.role == "reviewer"
    assert updated.role == "manager"
    assert client.get_dataset(dataset).collaborators_count == 1

    client.delete_dataset_collaborator(dataset, "jane")

    with pytest.raises(NotFoundError):
        client.get_dataset_collaborator(dataset, "jane")


@pytest.mark.parametrize("username", ["nobody", SANDBOX_USER])
def test_unknown_user_or_owner_cannot_be_collaborator(
    client: SegmentsClient, dataset: str, username: str
) -> None:
    with pytest.raises(CollaboratorError):
        client.add_dataset_collaborator(dataset, username)


def test_labelsets(client: SegmentsClient, dataset: str) -> None:
    client.add_labelset(dataset, "predictions", "Model output.")

    assert [ls.name for ls in client.get_labelsets(dataset)] == ["ground-truth", "predictions"]
    assert client.get_labelset(dataset, "predictions").description == "Model output."

    client.delete_labelset(dataset, "predictions")

    with pytest.raises(NotFoundError):
        client.get_labelset(dataset, "predictions")


def test_uploaded_bitmap_serves_as_a_segmentation_label(client: SegmentsClient) -> None:
    dataset = client.add_dataset("masks", task_type="segmentation-bitmap").full_name
    sample = client.add_sample(dataset, "a.jpg", IMAGE)
    bitmap = np.zeros((4, 6), dtype=np.uint32)
    bitmap[1:3, 2:5] = 7

    asset = client.upload_asset(bitmap2file(bitmap), "label.png")
    attributes = {
        "format_version": "0.1",
        "annotations": [{"id": 7, "category_id": 1}],
        "segmentation_bitmap": {"url": asset.url},
    }
    client.add_label(sample.uuid, "ground-truth", attributes, label_status="LABELED")

    label = client.get_label(sample.uuid)
    assert label.attributes.segmentation_bitmap.url == asset.url
    assert np.array_equal(load_label_bitmap_from_url(asset.url), bitmap)
