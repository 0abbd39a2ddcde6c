"""Routes pick objects by bucket, prefix and suffix; templates name samples and image URLs."""

from __future__ import annotations

import pytest

from config.sources import Route, Source
from relay.hooks.base import StorageObject
from relay.routing import match_route, plan_sample


def obj(key: str, bucket: str = "photos", provider: str = "s3", **kw) -> StorageObject:
    return StorageObject(provider=provider, bucket=bucket, key=key, **kw)


SOURCE = Source(
    name="uploads",
    type="s3",
    routes=(
        Route(dataset="a/raw", bucket="photos", prefix="raw/", suffixes=(".JPG", ".png")),
        Route(dataset="a/other", bucket="archive"),
        Route(dataset="a/catchall", prefix="", suffixes=(".jpg",)),
    ),
)


class TestMatchRoute:
    @pytest.mark.parametrize(
        ("key", "bucket", "dataset"),
        [
            ("raw/cat.jpg", "photos", "a/raw"),
            ("raw/cat.PNG", "photos", "a/raw"),
            ("raw/notes.txt", "photos", None),
            ("raw/cat.jpg", "archive", "a/other"),
            ("anything/at/all.bin", "archive", "a/other"),
            ("cooked/cat.jpg", "photos", "a/catchall"),
            ("cooked/cat.gif", "photos", None),
        ],
    )
    def test_first_matching_route_wins(self, key, bucket, dataset):
        route = match_route(SOURCE, obj(key, bucket))
        assert (route.dataset if route else None) == dataset


class TestPlanSample:
    def test_default_names_and_urls_per_provider(self):
        route = Route(dataset="a/b")
        cases = {
            "s3": "https://photos.s3.amazonaws.com/images/red%20flower%20%281%29%2Bv2.jpg",
            "gcs": "https://storage.googleapis.com/photos/images/red%20flower%20%281%29%2Bv2.jpg",
        }
        for provider, url in cases.items():
            plan = plan_sample(
                SOURCE, route, obj("images/red flower (1)+v2.jpg", provider=provider)
            )
            assert plan.name == "images/red flower (1)+v2.jpg"
            assert plan.image_url == url

    def test_azure_uses_the_senders_url(self):
        url = "https://acct.blob.core.windows.net/c/new file.jpg"
        plan = plan_sample(
            SOURCE, Route(dataset="a/b"), obj("new file.jpg", "acct/c", "azure", url=url)
        )
        assert plan.image_url == url

    def test_templates_and_metadata(self):
        route = Route(
            dataset="a/b",
            sample_name="{bucket}/{stem}.{ext}",
            image_url="https://cdn/{key_url}?v={version}",
        )
        o = obj(
            "x/y z.png",
            size=10,
            etag="e1",
            version="v9",
            event_time="2024-01-01T00:00:00Z",
            event_name="Put",
        )
        plan = plan_sample(SOURCE, route, o)
        assert plan.name == "photos/y z.png"
        assert plan.image_url == "https://cdn/x/y%20z.png?v=v9"
        assert plan.metadata == {
            "source": "uploads",
            "provider": "s3",
            "bucket": "photos",
            "key": "x/y z.png",
            "size": 10,
            "etag": "e1",
            "version": "v9",
            "event_time": "2024-01-01T00:00:00Z",
            "event_name": "Put",
        }
