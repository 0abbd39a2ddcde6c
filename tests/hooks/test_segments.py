"""Segments.ai webhooks (through Svix): release.created starts tracking, the rest is ignored."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from config.sources import Source
from relay.errors import PayloadError, SignatureError
from relay.hooks import segments
from relay.hooks.base import Delivery, HookContext, InboundRequest, Notice, ReleaseRef
from tests.conftest import OPS_TOKEN, RELEASE_SECRETS, wait_for
from tests.hooks.swfakes import OTHER_SECRET, TEST_SECRET, sign

NOW = 1_795_744_800
SOURCE = Source(name="segments", type="segments", secrets=(TEST_SECRET,))


def context() -> HookContext:
    def no_fetch(url: str) -> bytes:
        raise AssertionError(f"unexpected fetch of {url}")

    return HookContext(http_get=no_fetch, now=lambda: NOW)


def webhook(event_type: str = "release.created", **changes: Any) -> dict[str, Any]:
    """A Segments.ai webhook body, as documented, with fields replaced."""
    body = {
        "event_type": event_type,
        "created_at": "2026-11-27T02:00:00.000000Z",
        "api_version": "2021-08-01",
        "dataset": "jane/flowers",
        "object": {
            "uuid": "43af6a1b-1c4c-4a26-9ae0-6c7e5a1b2f10",
            "name": "v1.0",
            "description": "",
            "release_type": "JSON",
            "attributes": {},
            "status": "PENDING",
            "created_at": "2026-11-27T02:00:00.000000Z",
            "samples_count": 3,
        },
        "text": "Release v1.0 created in jane/flowers",
    }
    return {**body, **changes}


def svix_headers(secret: str, raw: bytes, msg_id: str, timestamp: int) -> dict[str, str]:
    """Svix names the Standard Webhooks headers svix-id, svix-timestamp and svix-signature."""
    return {
        k.replace("webhook-", "svix-"): v for k, v in sign(secret, raw, msg_id, timestamp).items()
    }


def request(
    body: bytes | dict[str, Any],
    *,
    secret: str = TEST_SECRET,
    timestamp: int = NOW,
    headers: dict[str, str] | None = None,
) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = headers if headers is not None else svix_headers(secret, raw, "msg_svix1", timestamp)
    return InboundRequest("POST", "https://relay.test/hooks/segments", signed, {}, raw)


def test_release_created_starts_tracking():
    delivery = segments.receive(SOURCE, request(webhook()), context())
    assert delivery == Delivery(
        [
            Notice(
                message_id="msg_svix1",
                release=ReleaseRef(dataset="jane/flowers", name="v1.0"),
                event_name="release.created",
            )
        ]
    )


def test_webhook_header_names_work_too():
    raw = json.dumps(webhook()).encode()
    signed = request(raw, headers=sign(TEST_SECRET, raw, "msg_std", NOW))
    (notice,) = segments.receive(SOURCE, signed, context()).notices
    assert notice.message_id == "msg_std"


@pytest.mark.parametrize(
    "event_type",
    ["sample.created", "label.updated", "dataset.updated", "issue.created", "release.deleted"],
)
def test_other_events_are_acknowledged_and_ignored(event_type):
    (notice,) = segments.receive(SOURCE, request(webhook(event_type)), context()).notices
    assert notice.release is None
    assert notice.event_name == event_type
    assert f"event type {event_type}" in notice.ignored
    assert "release.created" in notice.ignored


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": OTHER_SECRET}, "no webhook-signature matches"),
        ({"timestamp": NOW - 301}, "too old"),
        ({"timestamp": NOW + 301}, "in the future"),
        ({"headers": {}}, "missing webhook-id"),
    ],
)
def test_bad_signatures_are_refused(kwargs, message):
    with pytest.raises(SignatureError, match=message):
        segments.receive(SOURCE, request(webhook(), **kwargs), context())


def test_a_rotated_secret_is_accepted():
    rotated = Source(name="segments", type="segments", secrets=(OTHER_SECRET, TEST_SECRET))
    (notice,) = segments.receive(rotated, request(webhook()), context()).notices
    assert notice.release == ReleaseRef("jane/flowers", "v1.0")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        ({"dataset": "jane/flowers"}, "event_type"),
        (webhook(event_type=7), "event_type"),
        (webhook(dataset="flowers"), "dataset"),
        (webhook(dataset=None), "dataset"),
        (webhook(object=None), "object"),
        (webhook(object="v1.0"), "object"),
        (webhook(object={"status": "PENDING"}), "object.name"),
        (webhook(object={"name": "a/b"}), "object.name"),
    ],
)
def test_bad_bodies_name_the_field(body, field):
    with pytest.raises(PayloadError) as info:
        segments.receive(SOURCE, request(body), context())
    assert field in info.value.fields


# -- end to end: the relay under gunicorn, a real worker, the sandbox, the notify receiver -----

SECRET = RELEASE_SECRETS["TEST_SEGMENTS_WEBHOOK_SECRET"]


def post_signed(stack, body: dict[str, Any], secret: str = SECRET) -> requests.Response:
    raw = json.dumps(body).encode()
    headers = svix_headers(secret, raw, f"msg_{uuid.uuid4().hex}", int(time.time()))
    return stack.post("segments", raw, {**headers, "Content-Type": "application/json"})


@pytest.mark.integration
class TestSegmentsSource:
    def test_a_signed_release_created_is_followed_to_the_end(self, stack, notify_receiver):
        name = f"hooked-{uuid.uuid4().hex[:8]}"
        s = stack.sandbox.session()
        r = s.post(
            f"{stack.sandbox.url}/datasets/demo/images/releases/", json={"name": name}, timeout=10
        )
        r.raise_for_status()
        body = webhook(dataset="demo/images", object=r.json())
        answer = post_signed(stack, body)
        assert answer.status_code == 202, answer.text
        (event_id,) = answer.json()["accepted"]
        event = stack.wait_finished(event_id)
        assert (event.kind, event.status) == ("release_track", "succeeded")

        auth = {"Authorization": f"Bearer {OPS_TOKEN}"}

        def ended():
            url = f"{stack.url}/ops/releases/demo/images/{name}"
            release = requests.get(url, headers=auth, timeout=10).json()
            return release.get("status") == "SUCCEEDED" and release

        release = wait_for(ended, what="the tracked release to succeed")
        assert release["origin"] == "webhook"
        wait_for(lambda: notify_receiver.received(name), what="the notification")
        time.sleep(1.0)
        assert len(notify_receiver.received(name)) == 1

    def test_the_same_message_twice_is_a_duplicate(self, stack):
        raw = json.dumps(webhook(dataset="demo/images")).encode()
        headers = svix_headers(SECRET, raw, "msg_twice", int(time.time()))
        first = stack.post("segments", raw, headers).json()
        second = stack.post("segments", raw, headers).json()
        assert second["duplicates"] == first["accepted"]

    def test_a_bad_signature_is_401(self, stack):
        answer = post_signed(stack, webhook(dataset="demo/images"), secret=OTHER_SECRET)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"

    def test_other_events_are_ignored_with_the_reason(self, stack):
        answer = post_signed(stack, webhook("label.updated", dataset="demo/images"))
        assert answer.status_code == 202, answer.text
        (ignored,) = answer.json()["ignored"]
        assert "label.updated" in ignored["reason"]
