"""Releases through the ops API: the relay under gunicorn, a real worker, Redis, the sandbox
(releases stay PENDING for 1 s) and a local notify receiver."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from relay.hooks import standard_webhooks
from relay.hooks.base import InboundRequest
from relay.releases import ReleaseStore, TrackedRelease, iso, parse_time, release_key, split_key
from tests.conftest import OPS_TOKEN, RELEASE_SECRETS, wait_for
from tests.hooks import swfakes

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}
DATASET = "demo/images"
NOTIFY_SECRET = RELEASE_SECRETS["TEST_NOTIFY_SECRET"]


def unique(prefix: str = "rel") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ask(stack, body, headers=AUTH, path="") -> requests.Response:
    return requests.post(f"{stack.url}/ops/releases{path}", json=body, headers=headers, timeout=10)


def tracked(stack, dataset: str, name: str) -> dict | None:
    r = requests.get(f"{stack.url}/ops/releases/{dataset}/{name}", headers=AUTH, timeout=10)
    return r.json() if r.status_code == 200 else None


def wait_ended(stack, dataset: str, name: str, timeout: float = 30.0) -> dict:
    return wait_for(
        lambda: (
            (r := tracked(stack, dataset, name))
            and r["status"] in ("SUCCEEDED", "FAILED", "timed_out")
            and r
        ),
        timeout=timeout,
        what=f"release {name} to end",
    )


def wait_notified(receiver, name: str, timeout: float = 30.0) -> list:
    """Wait for the first message about `name`, give duplicates a moment, return them all."""
    wait_for(lambda: receiver.received(name), timeout=timeout, what=f"a message about {name}")
    time.sleep(1.0)
    return receiver.received(name)


def assert_signed(message) -> None:
    """The message carries a valid Standard Webhooks signature with the target's secret."""
    h = message.headers
    expected = swfakes.signature(
        NOTIFY_SECRET, message.body, h["webhook-id"], h["webhook-timestamp"]
    )
    assert expected in h["webhook-signature"].split()
    inbound = InboundRequest("POST", "http://receiver/", h, {}, message.body)
    assert standard_webhooks.verify(inbound, [NOTIFY_SECRET], now=time.time()) == h["webhook-id"]


def sandbox_releases(stack, dataset: str = DATASET) -> list[dict]:
    s = stack.sandbox.session()
    r = s.get(f"{stack.sandbox.url}/datasets/{dataset}/releases/", timeout=10)
    r.raise_for_status()
    return r.json()


def make_sandbox_release(stack, name: str, description: str = "") -> dict:
    s = stack.sandbox.session()
    body = {"name": name, "description": description}
    r = s.post(f"{stack.sandbox.url}/datasets/{DATASET}/releases/", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "name", "key"),
    [
        ("jane/flowers", "v1", "jane/flowers/v1"),
        ("demo/images", "nightly-2026-11-27", "demo/images/nightly-2026-11-27"),
        ("o/d", "with space", "o/d/with space"),
    ],
)
def test_release_keys_round_trip(dataset, name, key):
    assert release_key(dataset, name) == key
    assert split_key(key) == (dataset, name)


@pytest.mark.parametrize("key", ["o/d", "o//n", "/d/n", "o/d/"])
def test_split_key_rejects_what_is_not_a_key(key):
    with pytest.raises(ValueError, match="not a release key"):
        split_key(key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T02:00:03.500000Z", 1795744803.5),
        ("2026-11-27T02:00:03+00:00", 1795744803.0),
        ("2026-11-27T03:00:03+01:00", 1795744803.0),
        ("2026-11-27T02:00:03", 1795744803.0),  # naive: UTC
        ("yesterday", None),
        ("", None),
        (None, None),
        (1795744803, None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_iso_shows_utc_with_milliseconds():
    assert iso(1795744803.5) == "2026-11-27T02:00:03.500Z"
    assert iso(None) is None


def test_tracked_release_json_hides_internals_and_shows_times():
    release = TrackedRelease(
        dataset="jane/flowers",
        name="v1",
        status="SUCCEEDED",
        origin="ops",
        requested_at=1795744800.0,
        finished_at=1795744842.25,
        duration_seconds=42.25,
        chain="abc",
        deliveries={"chat": {"status": "delivered", "attempts": 1, "at": 1795744843.0}},
    )
    body = release.to_json()
    assert body["key"] == "jane/flowers/v1"
    assert body["requested_at"] == "2026-11-27T02:00:00.000Z"
    assert body["finished_at"] == "2026-11-27T02:00:42.250Z"
    assert body["duration_seconds"] == 42.2
    assert "chain" not in body
    assert body["deliveries"]["chat"]["at"] == "2026-11-27T02:00:43.000Z"


# -- cutting a release through the API ---------------------------------------------------------


@pytest.mark.integration
class TestCutRelease:
    def test_pending_then_succeeded_and_reported_once(self, stack, notify_receiver):
        name = unique("nightly")
        r = ask(stack, {"dataset": DATASET, "name": name, "description": "end to end"})
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["result"] == "accepted"
        assert answer["url"] == f"/ops/releases/{DATASET}/{name}"
        assert answer["release"]["status"] == "creating"
        assert answer["release"]["origin"] == "ops"

        seen = []

        def ended():
            release = tracked(stack, DATASET, name)
            seen.append(release["status"])
            return release["status"] == "SUCCEEDED" and release

        release = wait_for(ended, timeout=30, interval=0.05, what="SUCCEEDED")
        assert "PENDING" in seen
        assert release["uuid"]
        assert release["export_url"].startswith("http")
        assert release["requested_at"] <= release["created_at"] <= release["finished_at"]
        assert release["duration_seconds"] >= 1.0  # the sandbox keeps it PENDING for 1 s
        assert release["polls"] >= 1
        assert release["last_error"] is None

        (message,) = wait_notified(notify_receiver, name)
        assert_signed(message)
        body = message.json
        assert body["type"] == "release.succeeded"
        assert body["dataset"] == DATASET
        assert body["status"] == "SUCCEEDED"
        assert body["export_url"] == release["export_url"]
        assert body["text"].startswith(f"Release {name} of {DATASET} SUCCEEDED in ")
        assert body["text"].endswith(f": {release['export_url']}")

        delivered = wait_for(
            lambda: (
                tracked(stack, DATASET, name)["deliveries"].get("receiver", {}).get("status")
                == "delivered"
            ),
            what="the delivery to be recorded",
        )
        assert delivered
        event = stack.store.get(answer["event"])
        assert event.kind == "release"
        assert event.status == "succeeded"
        assert event.result["created"] is True

    @pytest.mark.parametrize("how", ["fault", "description"])
    def test_failed_release_is_reported_once_as_failed(self, stack, notify_receiver, how):
        name = unique("failing")
        description = "[fail] on purpose" if how == "description" else "plain"
        if how == "fault":
            stack.sandbox.faults(release_fail=True)
        r = ask(stack, {"dataset": DATASET, "name": name, "description": description})
        assert r.status_code == 202, r.text
        release = wait_ended(stack, DATASET, name)
        assert release["status"] == "FAILED"
        assert release["last_error"] == "The export failed."
        assert release["export_url"] is None

        (message,) = wait_notified(notify_receiver, name)
        assert_signed(message)
        assert message.json["type"] == "release.failed"
        assert message.json["error"] == "The export failed."
        assert message.json["text"].startswith(f"Release {name} of {DATASET} FAILED after ")
        assert message.json["text"].endswith(": The export failed.")

    def test_existing_release_is_adopted_not_duplicated(self, stack, notify_receiver):
        name = unique("existing")
        make_sandbox_release(stack, name, "made by hand")
        r = ask(stack, {"dataset": DATASET, "name": name})
        assert r.status_code == 202, r.text
        release = wait_ended(stack, DATASET, name)
        assert release["status"] == "SUCCEEDED"
        assert [rel["name"] for rel in sandbox_releases(stack)].count(name) == 1
        assert stack.store.get(r.json()["event"]).result["created"] is False
        assert len(wait_notified(notify_receiver, name)) == 1

    def test_asking_twice_is_a_duplicate(self, stack):
        name = unique("twice")
        first = ask(stack, {"dataset": DATASET, "name": name}).json()
        second = ask(stack, {"dataset": DATASET, "name": name}).json()
        assert second["result"] == "duplicate"
        assert second["event"] == first["event"]
        wait_ended(stack, DATASET, name)
        assert [rel["name"] for rel in sandbox_releases(stack)].count(name) == 1

    def test_unknown_dataset_fails_with_the_api_message_and_can_be_retried(
        self, stack, notify_receiver
    ):
        name = unique("nodataset")
        r = ask(stack, {"dataset": "demo/missing", "name": name})
        assert r.status_code == 202, r.text  # no Segments.ai call on the request path
        release = wait_ended(stack, "demo/missing", name)
        assert release["status"] == "FAILED"
        assert "404" in release["last_error"]
        assert "Not found." in release["last_error"]
        event = stack.wait_finished(r.json()["event"])
        assert event.status == "failed"
        assert event.last_error == release["last_error"]
        (message,) = wait_notified(notify_receiver, name)
        assert message.json["type"] == "release.failed"
        assert "Not found." in message.json["text"]

        # Once the dataset exists, asking again tries the same event again.
        stack.create_dataset("missing")
        again = ask(stack, {"dataset": "demo/missing", "name": name}).json()
        assert again["result"] == "retried"
        assert again["event"] == r.json()["event"]
        release = wait_for(
            lambda: (rel := tracked(stack, "demo/missing", name))["status"] == "SUCCEEDED" and rel,
            what="the retried release to succeed",
        )
        assert release["generation"] == 1
        assert release["last_error"] is None
        types = [m.json["type"] for m in wait_notified(notify_receiver, name)]
        assert types == ["release.failed", "release.succeeded"]


@pytest.mark.integration
class TestTrackAndList:
    def test_track_an_existing_release(self, stack, notify_receiver):
        name = unique("tracked")
        make_sandbox_release(stack, name)
        r = ask(stack, {"dataset": DATASET, "name": name}, path="/track")
        assert r.status_code == 202, r.text
        assert r.json()["release"]["origin"] == "track"
        release = wait_ended(stack, DATASET, name)
        assert release["status"] == "SUCCEEDED"
        assert release["origin"] == "track"
        assert len(wait_notified(notify_receiver, name)) == 1
        assert [rel["name"] for rel in sandbox_releases(stack)].count(name) == 1

    def test_tracking_a_missing_release_ends_failed(self, stack):
        name = unique("ghost")
        r = ask(stack, {"dataset": DATASET, "name": name}, path="/track")
        assert r.status_code == 202, r.text
        release = wait_ended(stack, DATASET, name)
        assert release["status"] == "FAILED"
        assert "Not found." in release["last_error"]

    def test_list_newest_first_and_by_status(self, stack):
        good, bad = unique("good"), unique("bad")
        ask(stack, {"dataset": DATASET, "name": good})
        wait_ended(stack, DATASET, good)
        ask(stack, {"dataset": DATASET, "name": bad, "description": "[fail]"})
        wait_ended(stack, DATASET, bad)

        r = requests.get(f"{stack.url}/ops/releases", headers=AUTH, timeout=10)
        assert r.status_code == 200
        names = [rel["name"] for rel in r.json()["releases"]]
        assert names.index(bad) < names.index(good)

        r = requests.get(
            f"{stack.url}/ops/releases", params={"status": "FAILED"}, headers=AUTH, timeout=10
        )
        assert [rel["name"] for rel in r.json()["releases"]] == [bad]


@pytest.mark.integration
class TestBadRequests:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"dataset": DATASET}, "name"),
            ({"dataset": DATASET, "name": ""}, "name"),
            ({"dataset": DATASET, "name": "a/b"}, "name"),
            ({"dataset": DATASET, "name": " padded "}, "name"),
            ({"name": "v1"}, "dataset"),
            ({"dataset": "no-owner", "name": "v1"}, "dataset"),
            ({"dataset": "a/b/c", "name": "v1"}, "dataset"),
            ({"dataset": DATASET, "name": "v1", "colour": "red"}, "colour"),
            ({"dataset": DATASET, "name": 7}, "name"),
            ([1, 2], "body"),
        ],
    )
    def test_create_names_the_wrong_field(self, stack, body, field):
        r = ask(stack, body)
        assert r.status_code == 400, r.text
        assert field in r.json()["fields"]
        assert field in r.json()["message"]

    def test_body_that_is_not_json(self, stack):
        r = requests.post(f"{stack.url}/ops/releases", data=b"{nope", headers=AUTH, timeout=10)
        assert r.status_code == 400
        assert r.json()["fields"] == {"body": ["invalid JSON"]}

    def test_track_refuses_a_description(self, stack):
        r = ask(stack, {"dataset": DATASET, "name": "v1", "description": "x"}, path="/track")
        assert r.status_code == 400
        assert "description" in r.json()["fields"]

    @pytest.mark.parametrize(
        "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": OPS_TOKEN}]
    )
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", ""),
            ("POST", "/track"),
            ("GET", ""),
            ("GET", f"/{DATASET}/v1"),
        ],
    )
    def test_bad_or_missing_token_is_401(self, stack, headers, method, path):
        r = requests.request(
            method,
            f"{stack.url}/ops/releases{path}",
            json={"dataset": DATASET, "name": "v1"},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"

    def test_unknown_release_is_404(self, stack):
        r = requests.get(f"{stack.url}/ops/releases/{DATASET}/nothing", headers=AUTH, timeout=10)
        assert r.status_code == 404
        assert r.json()["error"] == "unknown_release"

    @pytest.mark.parametrize(
        ("query", "field"), [({"status": "DONE"}, "status"), ({"limit": "0"}, "limit")]
    )
    def test_bad_list_query(self, stack, query, field):
        r = requests.get(f"{stack.url}/ops/releases", params=query, headers=AUTH, timeout=10)
        assert r.status_code == 400
        assert field in r.json()["fields"]


# -- the store against a real Redis ------------------------------------------------------------


@pytest.fixture
def releases(redis_url) -> ReleaseStore:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("relay:release*"):
        client.delete(key)
    return ReleaseStore(client, ttl_seconds=3600)


def pending(name: str, **fields) -> TrackedRelease:
    values = {"status": "PENDING", "origin": "track", "requested_at": time.time(), **fields}
    return TrackedRelease(dataset="jane/flowers", name=name, **values)


@pytest.mark.integration
class TestReleaseStore:
    def test_track_keeps_the_first_record(self, releases):
        assert releases.track(pending("v1", description="first"))
        assert not releases.track(pending("v1", description="second"))
        assert releases.get("jane/flowers/v1").description == "first"

    def test_only_one_caller_ends_a_release_and_claims_its_notification(self, releases):
        releases.track(pending("v1"))
        assert releases.finish("jane/flowers/v1", "SUCCEEDED", notify_due=1.0)
        assert not releases.finish("jane/flowers/v1", "FAILED", notify_due=1.0)
        release = releases.get("jane/flowers/v1")
        assert release.status == "SUCCEEDED"
        assert release.notified
        assert releases.due_notifications(2.0) == ["jane/flowers/v1"]

    def test_updates_respect_status_and_chain(self, releases):
        releases.track(pending("v1", chain="a"))
        assert not releases.update("jane/flowers/v1", allowed_from=("creating",), polls=5)
        assert not releases.update("jane/flowers/v1", on_chain="b", polls=5)
        assert releases.update("jane/flowers/v1", on_chain="a", next_poll_at=10.0, polls=5)
        assert releases.get("jane/flowers/v1").polls == 5
        assert releases.due_polls(11.0) == ["jane/flowers/v1"]
        releases.finish("jane/flowers/v1", "SUCCEEDED", notify_due=None)
        assert releases.due_polls(11.0) == []

    def test_reopen_a_failed_create_clears_the_outcome(self, releases):
        releases.track(pending("v1", status="creating"))
        releases.finish("jane/flowers/v1", "FAILED", notify_due=5.0, last_error="Not found.")
        releases.record_delivery("jane/flowers/v1", "chat", {"status": "delivered"})
        assert releases.reopen("jane/flowers/v1", ("FAILED",), "creating", only_uncreated=True)
        release = releases.get("jane/flowers/v1")
        assert (release.status, release.notified, release.deliveries) == ("creating", False, {})
        assert (release.generation, release.last_error) == (1, None)
        assert releases.due_notifications(10.0) == []

    def test_reopen_leaves_a_release_segments_made(self, releases):
        releases.track(pending("v1", uuid="u-1"))
        releases.finish("jane/flowers/v1", "FAILED", notify_due=None)
        assert not releases.reopen("jane/flowers/v1", ("FAILED",), "creating", only_uncreated=True)

    def test_a_late_delivery_record_does_not_revive_an_expired_release(self, releases):
        releases.record_delivery("jane/flowers/gone", "chat", {"status": "delivered"})
        assert not releases.redis.exists("relay:release:jane/flowers/gone")
        releases.redis.hset("relay:release:jane/flowers/gone", "delivery:chat", "{}")
        assert releases.get("jane/flowers/gone") is None

    def test_a_schedule_slot_is_claimed_once(self, releases):
        assert releases.claim_slot(0, "20261127T0200Z", "nightly-2026-11-27")
        assert not releases.claim_slot(0, "20261127T0200Z", "nightly-2026-11-27")
        assert releases.claim_slot(1, "20261127T0200Z", "other")
        releases.redis.delete("relay:schedule:0:20261127T0200Z", "relay:schedule:1:20261127T0200Z")
