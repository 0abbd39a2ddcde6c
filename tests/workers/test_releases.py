"""The release work functions: backoff, polling, deadlines, notifications, schedules, the sweep.

Pure parts are tables. The rest runs the plain functions against the real Redis and sandbox with a
recording dispatch (nothing is queued), or against the whole stack where a real worker takes over.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from config import Settings
from relay.releases import ReleaseStore, TrackedRelease, release_key
from tests.conftest import RELEASE_SECRETS, wait_for
from tests.hooks import swfakes
from workers import releases as work
from workers.celery_app import create_celery
from workers.runtime import Runtime, build_runtime

DATASET = "demo/images"
NOTIFY_SECRET = RELEASE_SECRETS["TEST_NOTIFY_SECRET"]


@dataclass
class Recorder:
    """A dispatch that writes down what it was asked to hand on, instead of queueing it."""

    polls: list[tuple[str, str | None, float]] = field(default_factory=list)
    notifications: list[tuple[str, str]] = field(default_factory=list)

    def poll(self, key: str, chain: str | None, countdown: float) -> None:
        self.polls.append((key, chain, countdown))

    def notify(self, key: str, target: str) -> None:
        self.notifications.append((key, target))


@pytest.mark.parametrize(
    ("polls", "delay"),
    [
        (0, 2.0),
        (1, 3.0),
        (2, 4.5),
        (3, 6.75),
        (5, 15.1875),
        (8, 51.2578125),
        (9, 60.0),
        (500, 60.0),
    ],
)
def test_poll_delay_starts_short_and_grows_to_a_cap(polls, delay):
    assert work.poll_delay(polls) == pytest.approx(delay)


def test_poll_delay_rejects_negative_counts():
    with pytest.raises(ValueError, match="polls must be >= 0"):
        work.poll_delay(-1)


def test_beat_runs_the_sweep_and_each_schedule(tmp_path):
    from celery.schedules import crontab

    config = tmp_path / "relay.toml"
    config.write_text(
        """
[[sources]]
name = "s3"
type = "s3"
verify = false

[[schedules]]
dataset = "jane/flowers"
cron = "30 2 * * 1-5"
name = "weekday-{date}"

[[schedules]]
dataset = "jane/trees"
cron = "0 */6 * * *"
name = "six-hourly-{datetime}"
"""
    )
    settings = Settings.from_env({"RELAY_CONFIG": str(config), "RELAY_RELEASE_SWEEP_SECONDS": "45"})
    entries = work.beat_entries(settings)
    assert entries["sweep-releases"] == {"task": work.SWEEP_TASK, "schedule": 45.0}
    first, second = entries["release-schedule-0"], entries["release-schedule-1"]
    assert (first["task"], first["args"]) == (work.CUT_TASK, (0,))
    assert first["schedule"] == crontab(minute="30", hour="2", day_of_week="1,2,3,4,5")
    assert second["args"] == (1,)
    assert second["schedule"].hour == {0, 6, 12, 18}


# -- plain functions against Redis and the sandbox --------------------------------------------


@pytest.fixture
def rt(relay_env, sandbox) -> Runtime:
    """A worker runtime as the test worker has it (its Redis, the sandbox, the receiver)."""
    runtime = build_runtime(Settings.from_env(relay_env))
    for key in runtime.redis.scan_iter("relay:release*"):
        runtime.redis.delete(key)
    runtime.client.create_dataset("images")
    return runtime


def with_settings(rt: Runtime, **changes) -> Runtime:
    return dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, **changes))


def store(rt: Runtime) -> ReleaseStore:
    return work.release_store(rt)


def pending(rt: Runtime, name: str, *, requested_at: float, chain: str = "c1") -> str:
    """Track a PENDING release with a live poll chain, as create/track leave it."""
    key = release_key(DATASET, name)
    release = TrackedRelease(
        dataset=DATASET, name=name, status="PENDING", origin="ops", requested_at=requested_at
    )
    store(rt).track(release)
    store(rt).update(key, next_poll_at=requested_at + 2, chain=chain)
    return key


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.integration
class TestPoll:
    def test_pending_schedules_the_next_poll_with_backoff(self, rt, sandbox):
        sandbox.faults(release_seconds=600)
        name = unique("slow")
        rt.client.create_release(DATASET, name)
        now = time.time()
        key = pending(rt, name, requested_at=now)
        dispatch = Recorder()
        assert work.poll_release(rt, key, "c1", dispatch=dispatch, now=now) == "PENDING"
        assert dispatch.polls == [(key, "c1", 3.0)]
        release = store(rt).get(key)
        assert (release.polls, release.next_poll_at) == (1, pytest.approx(now + 3.0))
        assert release.uuid

    def test_a_stale_chain_stops_without_calling_the_api(self, rt, sandbox):
        key = pending(rt, unique("stale"), requested_at=time.time())
        before = sandbox.stats()
        dispatch = Recorder()
        assert work.poll_release(rt, key, "old-chain", dispatch=dispatch) == "stale"
        assert dispatch.polls == []
        assert sandbox.stats() == before

    def test_past_the_deadline_it_times_out_and_is_reported_once(self, rt):
        rt = with_settings(rt, release_poll_deadline_seconds=60)
        now = time.time()
        key = pending(rt, unique("slow"), requested_at=now - 61)
        dispatch = Recorder()
        assert work.poll_release(rt, key, "c1", dispatch=dispatch, now=now) == "timed_out"
        release = store(rt).get(key)
        assert release.status == "timed_out"
        assert release.last_error.startswith("still PENDING after 1m 1s")
        assert release.duration_seconds == pytest.approx(61, abs=0.01)
        assert dispatch.notifications == [(key, "receiver")]
        # A second chain arriving late does nothing more.
        assert work.poll_release(rt, key, "c1", dispatch=dispatch, now=now + 5) == "timed_out"
        assert dispatch.notifications == [(key, "receiver")]

    def test_the_next_poll_is_not_later_than_the_deadline(self, rt, sandbox):
        sandbox.faults(release_seconds=600)
        rt = with_settings(rt, release_poll_deadline_seconds=60)
        name = unique("slow")
        rt.client.create_release(DATASET, name)
        now = time.time()
        key = pending(rt, name, requested_at=now - 59)
        dispatch = Recorder()
        work.poll_release(rt, key, "c1", dispatch=dispatch, now=now)
        assert dispatch.polls[0][2] == pytest.approx(1.0, abs=0.01)

    def test_two_chains_seeing_the_end_report_it_once(self, rt, sandbox):
        sandbox.faults(release_seconds=0)
        name = unique("done")
        rt.client.create_release(DATASET, name)
        key = pending(rt, name, requested_at=time.time())
        dispatch = Recorder()
        assert work.poll_release(rt, key, "c1", dispatch=dispatch) == "SUCCEEDED"
        assert work.poll_release(rt, key, "c1", dispatch=dispatch) == "SUCCEEDED"
        assert work.end_release(rt, store(rt), key, "FAILED", dispatch, time.time()) is False
        assert dispatch.notifications == [(key, "receiver")]
        assert store(rt).get(key).status == "SUCCEEDED"

    def test_a_transient_error_polls_again_later(self, rt, sandbox):
        name = unique("flaky")
        rt.client.create_release(DATASET, name)
        key = pending(rt, name, requested_at=time.time())
        sandbox.faults(fail_rate=1.0, fail_status=503)
        dispatch = Recorder()
        assert work.poll_release(rt, key, "c1", dispatch=dispatch) == "retrying"
        release = store(rt).get(key)
        assert release.status == "PENDING"
        assert (release.poll_errors, release.polls) == (1, 0)
        assert "503" in release.last_error
        assert len(dispatch.polls) == 1
        assert dispatch.notifications == []

    def test_a_deleted_release_ends_failed_with_the_api_message(self, rt):
        key = pending(rt, unique("deleted"), requested_at=time.time())
        dispatch = Recorder()
        assert work.poll_release(rt, key, "c1", dispatch=dispatch) == "FAILED"
        release = store(rt).get(key)
        assert "404" in release.last_error
        assert "Not found." in release.last_error
        assert dispatch.notifications == [(key, "receiver")]


def ended(rt: Runtime, name: str, status: str = "SUCCEEDED") -> str:
    """A release that has just ended and claimed its notification."""
    key = pending(rt, name, requested_at=time.time() - 42)
    fields = {"export_url": "https://exports.example/r.json"} if status == "SUCCEEDED" else {}
    work.end_release(rt, store(rt), key, status, Recorder(), time.time(), **fields)
    return key


@pytest.mark.integration
class TestNotify:
    def test_delivered_once_and_signed(self, rt, notify_receiver):
        name = unique("notify")
        key = ended(rt, name)
        assert work.notify_release(rt, key, "receiver") is None
        assert work.notify_release(rt, key, "receiver") is None  # a duplicate task: no resend
        (message,) = notify_receiver.received(name)
        h = message.headers
        expected = swfakes.signature(
            NOTIFY_SECRET, message.body, h["webhook-id"], h["webhook-timestamp"]
        )
        assert h["webhook-signature"] == expected
        assert message.json["text"] == (
            f"Release {name} of {DATASET} SUCCEEDED in 42s: https://exports.example/r.json"
        )
        record = store(rt).get(key).deliveries["receiver"]
        assert (record["status"], record["attempts"], record["http_status"]) == (
            "delivered",
            1,
            200,
        )
        assert store(rt).due_notifications(time.time() + 10_000) == []

    def test_a_failed_delivery_is_retried_with_the_same_id(self, rt, notify_receiver):
        name = unique("retry")
        key = ended(rt, name)
        notify_receiver.answer_next(503)
        delay = work.notify_release(rt, key, "receiver")
        assert delay is not None
        assert 0 <= delay <= rt.settings.retry_max_seconds
        record = store(rt).get(key).deliveries["receiver"]
        assert (record["status"], record["last_error"]) == ("retrying", "answered HTTP 503")
        assert work.notify_release(rt, key, "receiver") is None
        first, second = notify_receiver.received(name)
        assert (first.status, second.status) == (503, 200)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert store(rt).get(key).deliveries["receiver"]["attempts"] == 2

    def test_attempts_are_bounded(self, rt, notify_receiver):
        rt = with_settings(rt, task_max_attempts=2)
        name = unique("bounded")
        key = ended(rt, name)
        notify_receiver.answer_next(500, 500)
        assert work.notify_release(rt, key, "receiver") is not None
        assert work.notify_release(rt, key, "receiver") is None
        assert store(rt).get(key).deliveries["receiver"]["status"] == "failed"
        assert len(notify_receiver.received(name)) == 2

    def test_a_client_error_is_not_retried(self, rt, notify_receiver):
        name = unique("refused")
        key = ended(rt, name, "FAILED")
        notify_receiver.answer_next(410)
        assert work.notify_release(rt, key, "receiver") is None
        record = store(rt).get(key).deliveries["receiver"]
        assert (record["status"], record["http_status"]) == ("failed", 410)

    def test_nothing_is_sent_for_a_release_that_has_not_ended(self, rt, notify_receiver):
        name = unique("early")
        key = pending(rt, name, requested_at=time.time())
        assert work.notify_release(rt, key, "receiver") is None
        assert notify_receiver.received(name) == []

    def test_the_sweep_resends_a_lost_notification(self, rt, notify_receiver):
        key = ended(rt, unique("lost"))
        dispatch = Recorder()
        assert work.sweep_releases(rt, dispatch=dispatch) == {"polls": 0, "notifications": 0}
        later = time.time() + work.NOTIFY_GRACE_SECONDS + 1
        counts = work.sweep_releases(rt, dispatch=dispatch, now=later)
        assert counts == {"polls": 0, "notifications": 1}
        assert dispatch.notifications == [(key, "receiver")]
        # Handed on again: the next sweep leaves it to that task for a while.
        assert work.sweep_releases(rt, dispatch=dispatch, now=later + 1)["notifications"] == 0


# -- the whole stack: a real worker picks up what the sweep and the schedule hand on ----------


@pytest.fixture
def celery_app(relay_env):
    return create_celery(Settings.from_env(relay_env))


@pytest.mark.integration
def test_sweep_restarts_a_lost_poll_chain(stack, relay_env, celery_app, notify_receiver):
    rt = build_runtime(Settings.from_env(relay_env))
    name = unique("crashed")
    rt.client.create_release(DATASET, name)
    # A worker died mid-poll: the release is PENDING, its next poll long overdue, none queued.
    now = time.time()
    key = pending(rt, name, requested_at=now - 300, chain="died-with-the-worker")
    store(rt).update(key, next_poll_at=now - 200)

    counts = work.sweep_releases(rt, dispatch=work.CeleryDispatch(celery_app))
    assert counts["polls"] == 1
    release = wait_for(
        lambda: (r := store(rt).get(key)).status == "SUCCEEDED" and r, what="the swept release"
    )
    assert release.chain != "died-with-the-worker"
    wait_for(lambda: notify_receiver.received(name), what="the notification")
    # The old chain, should its message ever come back, stops at once.
    assert work.poll_release(rt, key, "died-with-the-worker", dispatch=Recorder()) == "SUCCEEDED"
    time.sleep(1.0)
    assert len(notify_receiver.received(name)) == 1
    assert work.sweep_releases(rt, dispatch=work.CeleryDispatch(celery_app))["polls"] == 0


@pytest.mark.integration
def test_a_schedule_fires_once_per_slot(stack, relay_env, celery_app, notify_receiver):
    rt = build_runtime(Settings.from_env(relay_env))
    # Schedule #0 of the test config: demo/images, "0 2 * * *", "nightly-{date}".
    monday_0300 = datetime(2031, 3, 3, 3, 0, tzinfo=UTC).timestamp()
    first = work.cut_scheduled_release(rt, 0, celery=celery_app, now=monday_0300)
    assert first is not None
    assert first.result == "accepted"
    # Beat ran it twice (or came back after being down): the same slot is not cut again.
    assert work.cut_scheduled_release(rt, 0, celery=celery_app, now=monday_0300 + 600) is None
    key = release_key(DATASET, "nightly-2031-03-03")
    release = wait_for(
        lambda: (r := store(rt).get(key)) and r.status == "SUCCEEDED" and r,
        what="the scheduled release",
    )
    assert release.origin == "schedule"
    assert release.description == "Nightly release of images for 20310303-0200"
    names = [r["name"] for r in rt.client.list_releases(DATASET)]
    assert names == ["nightly-2031-03-03"]
    assert len(wait_for(lambda: notify_receiver.received("nightly-2031-03-03"))) == 1

    # The next day's slot is a new release.
    next_day = work.cut_scheduled_release(rt, 0, celery=celery_app, now=monday_0300 + 86400)
    assert next_day is not None
    wait_for(lambda: len(rt.client.list_releases(DATASET)) == 2, what="the second release")


@pytest.mark.integration
def test_a_missing_schedule_index_is_a_no_op(rt):
    assert work.cut_scheduled_release(rt, 99, celery=None) is None
