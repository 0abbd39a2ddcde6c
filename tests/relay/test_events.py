"""The event store against a real Redis: record, dedupe, transitions, overdue, index."""

from __future__ import annotations

import time

import pytest
import redis

from relay.events import Event, EventStore, new_event_id


@pytest.fixture
def store(redis_url: str) -> EventStore:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("relay:*"):
        client.delete(key)
    return EventStore(client, ttl_seconds=3600, stale_seconds=60)


def make(status: str = "queued", keys: tuple[str, ...] = ()) -> Event:
    now = time.time()
    return Event(
        id=new_event_id(),
        source="s3",
        kind="sample",
        status=status,
        created_at=now,
        updated_at=now,
        payload={"dataset": "a/b", "name": "n"},
        dedupe_keys=list(keys),
    )


class TestRecord:
    def test_record_and_get_round_trip(self, store):
        event = make()
        assert store.record(event) is None
        loaded = store.get(event.id)
        assert loaded.payload == {"dataset": "a/b", "name": "n"}
        assert loaded.status == "queued"
        assert loaded.attempts == 0

    def test_any_shared_dedupe_key_makes_a_duplicate(self, store):
        first = make(keys=("msg:1", "obj:x"))
        assert store.record(first) is None
        assert store.record(make(keys=("msg:2", "obj:x"))) == first.id
        assert store.record(make(keys=("msg:1",))) == first.id
        assert store.record(make(keys=("msg:3", "obj:y"))) is None
        assert store.counts()["queued"] == 2

    def test_forget_releases_the_keys(self, store):
        event = make(keys=("msg:9",))
        store.record(event)
        store.forget(event)
        assert store.get(event.id) is None
        assert store.record(make(keys=("msg:9",))) is None


class TestTransitions:
    def test_start_counts_attempts_and_finish_is_final(self, store):
        event = make()
        store.record(event)
        assert store.start(event.id).attempts == 1
        store.retry_later(event.id, "503 from API", 1.0)
        again = store.start(event.id)
        assert (again.attempts, again.last_error) == (2, "503 from API")
        store.finish(event.id, "succeeded", result={"sample_uuid": "u"})
        assert store.start(event.id) is None
        done = store.get(event.id)
        assert (done.status, done.result) == ("succeeded", {"sample_uuid": "u"})
        assert store.counts()["succeeded"] == 1
        assert store.counts()["queued"] == 0

    def test_overdue_lists_events_past_their_deadline(self, store):
        event = make()
        store.record(event)
        assert store.overdue(now=time.time()) == []
        assert store.overdue(now=time.time() + 61) == [event.id]
        store.finish(event.id, "failed", error="boom")
        assert store.overdue(now=time.time() + 61) == []

    def test_requeue_only_from_allowed_statuses(self, store):
        event = make()
        store.record(event)
        store.finish(event.id, "failed", error="400 bad")
        assert not store.requeue(event.id)
        assert store.requeue(event.id, from_statuses=("failed",))
        assert store.get(event.id).status == "queued"

    def test_list_newest_first_by_status(self, store):
        events = [make() for _ in range(3)]
        for e in events:
            store.record(e)
            time.sleep(0.002)
        store.finish(events[0].id, "failed", error="x")
        assert [e.id for e in store.list()] == [e.id for e in reversed(events)]
        assert [e.id for e in store.list(status="failed")] == [events[0].id]


def test_sample_index(store):
    assert store.find_sample("a/b", "bucket", "k.jpg") is None
    store.remember_sample("a/b", "bucket", "k.jpg", "https://img/k.jpg", "uuid-1")
    assert store.find_sample("a/b", "bucket", "k.jpg") == "uuid-1"
    assert store.find_sample_by_url("a/b", "https://img/k.jpg") == "uuid-1"
    assert store.find_sample("a/other", "bucket", "k.jpg") is None
