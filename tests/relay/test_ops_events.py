"""/ops/events and replay: pure rules, the store's search, and the API end to end.

End to end: the relay under gunicorn, a real worker, Redis and the sandbox. A permanent failure is
made by deleting the sandbox's `demo/images` before a notification arrives (the API answers 404);
recreating the dataset and replaying the event then creates the sample.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from relay.events import Event, EventStore, new_event_id
from relay.ops.events import EventsQuerySchema, ReplayRequestSchema
from relay.replay import ReplayResult, Skipped, refusal
from tests.conftest import FIXTURES, OPS_TOKEN
from tests.relay.test_openapi import keep_logging, offline_app  # noqa: F401 - a fixture

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}
S3 = {"X-Relay-Token": "s3-token-current"}


def make_event(status: str = "failed", kind: str = "sample", **fields) -> Event:
    now = time.time()
    values = {
        "id": new_event_id(),
        "source": "s3",
        "kind": kind,
        "status": status,
        "created_at": now,
        "updated_at": now,
        "payload": {},
    }
    return Event(**{**values, **fields})


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (make_event("failed"), None),
        (make_event("succeeded"), None),
        (make_event("skipped", kind="prediction", payload={"prediction": {"failed": None}}), None),
        (make_event("failed", kind="release"), None),
        (make_event("failed", kind="release_track"), None),
        (make_event("queued"), "queued already"),
        (make_event("running"), "running already"),
        (make_event("ignored", kind="notice", reason="test event"), "ignored"),
        (make_event("failed", kind="mystery"), "no task runs mystery events"),
        (
            make_event("failed", kind="prediction", payload={"prediction": {"failed": "OOM"}}),
            "model run itself failed",
        ),
    ],
)
def test_refusal(event, reason):
    if reason is None:
        assert refusal(event) is None
    else:
        assert reason in refusal(event)


def test_replay_result_json():
    result = ReplayResult(replayed=["a"], skipped=[Skipped("b", "why")])
    assert result.to_json() == {"replayed": ["a"], "skipped": [{"id": "b", "reason": "why"}]}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({}, None),
        ({"status": "failed", "source": "s3", "kind": "sample", "limit": "500"}, None),
        ({"before": "1712345678.25"}, None),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"kind": "thing"}, "kind"),
        ({"before": "yesterday"}, "before"),
        ({"before": "nan"}, "before"),
        ({"before": "-1"}, "before"),
        ({"source": ""}, "source"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_events_query_schema(query, problem):
    errors = EventsQuerySchema().validate(query)
    assert set(errors) == ({problem} if problem else set())


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"ids": ["evt_1", "evt_2"]}, True),
        ({"status": "failed"}, True),
        ({"status": "failed", "source": "s3", "kind": "sample", "limit": 10}, True),
        ({}, False),
        ({"ids": []}, False),
        ({"ids": "evt_1"}, False),
        ({"ids": ["evt_1"], "status": "failed"}, False),
        ({"status": "queued"}, False),
        ({"status": "failed", "limit": 0}, False),
        ({"source": "s3"}, False),
        ({"status": "failed", "force": True}, False),
    ],
)
def test_replay_request_schema(body, ok):
    assert (ReplayRequestSchema().validate(body) == {}) is ok


def test_redis_unavailable_is_a_json_503(tmp_path, keep_logging):  # noqa: F811 - the fixture
    client = offline_app(tmp_path).test_client()
    for method, path, body in [
        ("GET", "/ops/events", None),
        ("GET", "/ops/events/stats", None),
        ("GET", "/ops/events/evt_1", None),
        ("POST", "/ops/events/evt_1/replay", None),
        ("POST", "/ops/events/replay", {"status": "failed"}),
    ]:
        response = client.open(path, method=method, json=body, headers=AUTH)
        assert response.status_code == 503, path
        assert response.get_json()["error"] == "unavailable"


# --- the store's search against a real Redis --------------------------------------------------


@pytest.fixture
def store(redis_url: str) -> EventStore:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("relay:*"):
        client.delete(key)
    return EventStore(client, ttl_seconds=3600, stale_seconds=60)


@pytest.mark.integration
class TestSearch:
    def record(self, store, n: int, **fields) -> list[Event]:
        events = []
        for _ in range(n):
            event = make_event(**fields)
            store.record(event)
            events.append(event)
        return events

    def test_filters_combine_and_newest_come_first(self, store):
        s3 = self.record(store, 3, status="failed", source="s3")
        self.record(store, 2, status="failed", source="minio")
        self.record(store, 2, status="succeeded", source="s3")
        found, cursor = store.search(status="failed", source="s3")
        assert [e.id for e in found] == [e.id for e in reversed(s3)]
        assert cursor is None
        assert len(store.search(source="s3")[0]) == 5
        assert len(store.search(kind="prediction")[0]) == 0

    def test_pages_follow_the_cursor_without_gaps(self, store):
        events = self.record(store, 7, status="failed", source="s3")
        self.record(store, 5, status="failed", source="gcs")
        seen, before = [], None
        while True:
            page, before = store.search(source="s3", limit=3, before=before)
            seen += [e.id for e in page]
            if before is None:
                break
        assert seen == [e.id for e in reversed(events)]

    def test_a_bounded_scan_hands_back_where_it_stopped(self, store):
        wanted = self.record(store, 1, source="rare")
        self.record(store, 10, source="common")
        found, cursor = store.search(source="rare", max_scan=4)
        assert found == []
        assert cursor is not None
        found, cursor = store.search(source="rare", before=cursor)
        assert [e.id for e in found] == [wanted[0].id]

    def test_rerun_resets_the_attempts(self, store):
        (event,) = self.record(store, 1, status="failed", attempts=8)
        assert store.rerun(event.id, from_statuses=("failed",))
        again = store.get(event.id)
        assert (again.status, again.attempts) == ("queued", 0)
        assert not store.rerun(event.id, from_statuses=("failed",))


# --- the API end to end -----------------------------------------------------------------------


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def s3_put(key: str) -> dict:
    body = copy.deepcopy(fixture("s3_put.json"))
    body["Records"][0]["s3"]["object"]["key"] = key
    body["Records"][0]["s3"]["object"]["versionId"] = f"v-{key}"
    return body


def ops(stack, method: str, path: str, headers=AUTH, **kw) -> requests.Response:
    return requests.request(
        method, f"{stack.url}/ops/events{path}", headers=headers, timeout=10, **kw
    )


def accepted(stack, key: str) -> str:
    response = stack.post("s3", s3_put(key), S3)
    assert response.status_code == 202, response.text
    (event_id,) = response.json()["accepted"]
    return event_id


def failed_events(stack, *keys: str) -> list[str]:
    """Events whose sample cannot be created: the dataset is gone (a permanent 404)."""
    delete = stack.sandbox.session().delete(
        f"{stack.sandbox.url}/datasets/demo/images/", timeout=10
    )
    assert delete.status_code == 204, delete.text
    ids = [accepted(stack, key) for key in keys]
    for event_id in ids:
        event = stack.wait_finished(event_id)
        assert event.status == "failed"
        assert event.last_error
    return ids


@pytest.mark.integration
class TestLookAtEvents:
    def test_list_filter_page_get_and_stats(self, stack):
        first = accepted(stack, "one.jpg")
        stack.wait_finished(first)
        ignored = stack.post("s3", fixture("s3_test_event.json"), S3).json()["ignored"][0]["id"]
        second = accepted(stack, "two.jpg")
        stack.wait_finished(second)

        everything = ops(stack, "GET", "").json()
        assert [e["id"] for e in everything["events"]] == [second, ignored, first]
        assert everything["next_before"] is None
        event = everything["events"][0]
        assert event["source"] == "s3"
        assert event["kind"] == "sample"
        assert event["status"] == "succeeded"
        assert event["attempts"] == 1
        assert event["result"]["sample_uuid"]

        only_ignored = ops(stack, "GET", "", params={"status": "ignored"}).json()["events"]
        assert [(e["id"], e["kind"]) for e in only_ignored] == [(ignored, "notice")]
        assert "test event" in only_ignored[0]["reason"]
        samples = ops(stack, "GET", "", params={"source": "s3", "kind": "sample"}).json()
        assert [e["id"] for e in samples["events"]] == [second, first]
        assert ops(stack, "GET", "", params={"source": "minio"}).json()["events"] == []

        page = ops(stack, "GET", "", params={"limit": 2}).json()
        assert [e["id"] for e in page["events"]] == [second, ignored]
        rest = ops(stack, "GET", "", params={"limit": 2, "before": page["next_before"]}).json()
        assert [e["id"] for e in rest["events"]] == [first]

        one = ops(stack, "GET", f"/{first}")
        assert one.status_code == 200
        assert one.json()["id"] == first
        assert one.json()["payload"]["name"] == "one.jpg"

        stats = ops(stack, "GET", "/stats").json()
        assert stats["counts"]["succeeded"] == 2
        assert stats["counts"]["ignored"] == 1
        assert stats["total"] == 3
        assert stats["recent_failures"] == []

    @pytest.mark.parametrize(
        "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": OPS_TOKEN}]
    )
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", ""), ("GET", "/stats"), ("GET", "/evt_x"), ("POST", "/evt_x/replay"),
         ("POST", "/replay")],
    )  # fmt: skip
    def test_a_token_is_required(self, stack, headers, method, path):
        response = ops(stack, method, path, headers=headers, json={"status": "failed"})
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert OPS_TOKEN not in response.text

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": "0"}, "limit"),
            ({"limit": "x"}, "limit"),
            ({"status": "lost"}, "status"),
            ({"kind": "x"}, "kind"),
            ({"before": "soon"}, "before"),
            ({"token": OPS_TOKEN}, "token"),
        ],
    )
    def test_bad_parameters_name_the_field(self, stack, params, field):
        response = ops(stack, "GET", "", params=params)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_payload"
        assert field in response.json()["fields"]
        assert field in response.json()["message"]

    def test_unknown_event_is_a_json_404(self, stack):
        for method, path in [("GET", "/evt_nope"), ("POST", "/evt_nope/replay")]:
            response = ops(stack, method, path)
            assert response.status_code == 404
            assert response.json()["error"] == "unknown_event"


@pytest.mark.integration
class TestReplay:
    def test_a_failed_event_replayed_creates_its_sample(self, stack):
        (event_id,) = failed_events(stack, "late.jpg")
        failed = ops(stack, "GET", f"/{event_id}").json()
        assert failed["status"] == "failed"
        assert "404" in failed["last_error"] or "not found" in failed["last_error"].lower()
        stats = ops(stack, "GET", "/stats").json()
        assert [e["id"] for e in stats["recent_failures"]] == [event_id]

        stack.create_dataset()
        response = ops(stack, "POST", f"/{event_id}/replay")
        assert response.status_code == 202, response.text
        assert response.json()["replayed"] == event_id

        event = stack.wait_finished(event_id)
        assert event.status == "succeeded", event.last_error
        assert event.attempts == 1  # a fresh budget
        assert [s["name"] for s in stack.samples()] == ["late.jpg"]
        assert event.result["sample_uuid"] == stack.samples()[0]["uuid"]

    def test_events_that_cannot_be_replayed_are_a_409_with_the_reason(self, stack):
        ignored = stack.post("s3", fixture("s3_test_event.json"), S3).json()["ignored"][0]["id"]
        queued = make_event("queued")
        model_failed = make_event(
            "failed", kind="prediction", payload={"prediction": {"failed": "CUDA OOM"}}
        )
        for event in (queued, model_failed):
            stack.store.record(event)
        for event_id, reason in [
            (ignored, "ignored"),
            (queued.id, "queued already"),
            (model_failed.id, "model run itself failed"),
        ]:
            response = ops(stack, "POST", f"/{event_id}/replay")
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "not_replayable"
            assert reason in response.json()["message"]
        assert stack.store.get(queued.id).status == "queued"
        assert stack.store.get(model_failed.id).status == "failed"

    def test_bulk_replay_by_ids(self, stack):
        ids = failed_events(stack, "a.jpg", "b.jpg")
        ignored = stack.post("s3", fixture("s3_test_event.json"), S3).json()["ignored"][0]["id"]
        stack.create_dataset()
        response = ops(stack, "POST", "/replay", json={"ids": [*ids, ignored, "evt_gone"]})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["replayed"] == ids
        skipped = {s["id"]: s["reason"] for s in answer["skipped"]}
        assert set(skipped) == {ignored, "evt_gone"}
        assert "ignored" in skipped[ignored]
        assert "no such event" in skipped["evt_gone"]
        for event_id in ids:
            assert stack.wait_finished(event_id).status == "succeeded"
        assert sorted(s["name"] for s in stack.samples()) == ["a.jpg", "b.jpg"]

    def test_bulk_replay_of_every_failed_event_of_a_source(self, stack):
        ids = failed_events(stack, "c.jpg", "d.jpg")
        stack.create_dataset()
        response = ops(stack, "POST", "/replay", json={"status": "failed", "source": "s3"})
        assert response.status_code == 200, response.text
        assert sorted(response.json()["replayed"]) == sorted(ids)
        assert response.json()["skipped"] == []
        for event_id in ids:
            assert stack.wait_finished(event_id).status == "succeeded"
        assert ops(stack, "GET", "/stats").json()["counts"]["failed"] == 0
        nothing = ops(stack, "POST", "/replay", json={"status": "failed"}).json()
        assert nothing == {"replayed": [], "skipped": []}

    @pytest.mark.parametrize(
        "body",
        [b"", b"{not json", b"[]", b"{}", b'{"ids": []}', b'{"ids": ["x"], "status": "failed"}'],
    )
    def test_bad_bulk_bodies_are_a_400(self, stack, body):
        response = ops(stack, "POST", "/replay", data=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_payload"

    def test_relay_replay_command(self, stack, relay_env):
        (event_id,) = failed_events(stack, "cli.jpg")
        stack.create_dataset()
        relay = Path(sys.executable).with_name("relay")
        done = subprocess.run(
            [str(relay), "replay", event_id, "evt_gone"],
            env={**os.environ, **relay_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr  # one of the two could not be replayed
        assert "replayed 1 event(s)" in done.stdout
        assert "evt_gone: not replayed: no such event" in done.stderr
        assert stack.wait_finished(event_id).status == "succeeded"
        assert [s["name"] for s in stack.samples()] == ["cli.jpg"]
