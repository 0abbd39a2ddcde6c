"""Release notifications: URL checks, the message, its signature, and what one POST comes to."""

from __future__ import annotations

import time

import pytest

from config.releases import NotifyTarget
from relay import notify
from relay.hooks import standard_webhooks
from relay.hooks.base import InboundRequest
from relay.releases import TrackedRelease
from tests.hooks.swfakes import OTHER_SECRET, TEST_SECRET, signature
from tests.procs import free_port

ADDRESSES = {
    "hooks.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.20.30.40"],
    "sneaky.example.com": ["93.184.216.34", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
}


def resolve(host: str) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(f"cannot resolve {host}")
    return ADDRESSES[host]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_is_public(address, public):
    assert notify.is_public(address) is public


@pytest.mark.parametrize(
    ("url", "allow_http", "allow_private", "problem"),
    [
        ("https://hooks.example.com/services/T0/B0/x", False, False, None),
        ("https://dual.example.com/x", False, False, None),
        ("https://unresolvable.example.com/x", False, False, None),  # checked again on send
        ("https://93.184.216.34:8443/x", False, False, None),
        ("http://hooks.example.com/x", False, False, "allow_http"),
        ("http://hooks.example.com/x", True, False, None),
        ("ftp://hooks.example.com/x", True, False, "must be an https or http URL"),
        ("hooks.example.com/x", False, False, "must be an https URL"),
        ("https:///x", False, False, "has no host"),
        ("https://hooks.example.com:99999/x", False, False, "not a valid URL"),
        ("https://internal.example.com/x", False, False, "10.20.30.40"),
        ("https://sneaky.example.com/x", False, False, "127.0.0.1"),
        ("https://metadata.example.com/x", False, False, "169.254.169.254"),
        ("https://127.0.0.1:9000/x", False, False, "allow_private"),
        ("https://[::1]/x", False, False, "::1"),
        ("https://192.168.0.10/x", False, True, None),
        ("http://127.0.0.1:9000/x", True, True, None),
    ],
)
def test_url_problems(url, allow_http, allow_private, problem):
    problems = notify.url_problems(
        url, allow_http=allow_http, allow_private=allow_private, resolve=resolve
    )
    if problem is None:
        assert problems == []
    else:
        (text,) = problems
        assert problem in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "an unknown time"),
        (-3, "0s"),
        (0, "0s"),
        (41.6, "42s"),
        (59.4, "59s"),
        (60, "1m 0s"),
        (185, "3m 5s"),
        (3599, "59m 59s"),
        (3600, "1h 0m"),
        (7322, "2h 2m"),
    ],
)
def test_format_duration(seconds, text):
    assert notify.format_duration(seconds) == text


def release(status: str = "SUCCEEDED", **changes) -> TrackedRelease:
    values = {
        "dataset": "jane/flowers",
        "name": "nightly-2026-11-27",
        "status": status,
        "origin": "schedule",
        "requested_at": 1795744800.0,
        "finished_at": 1795744842.0,
        "duration_seconds": 42.0,
        **changes,
    }
    return TrackedRelease(**values)


@pytest.mark.parametrize(
    ("tracked", "text"),
    [
        (
            release(export_url="https://exports.example/r.json"),
            "Release nightly-2026-11-27 of jane/flowers SUCCEEDED in 42s: "
            "https://exports.example/r.json",
        ),
        (release(), "Release nightly-2026-11-27 of jane/flowers SUCCEEDED in 42s"),
        (
            release("FAILED", last_error="The export failed."),
            "Release nightly-2026-11-27 of jane/flowers FAILED after 42s: The export failed.",
        ),
        (release("FAILED"), "Release nightly-2026-11-27 of jane/flowers FAILED after 42s"),
        (
            release("timed_out", duration_seconds=3600.5),
            "Release nightly-2026-11-27 of jane/flowers TIMED OUT: still PENDING after 1h 0m, "
            "the relay stopped polling",
        ),
    ],
)
def test_message_text(tracked, text):
    assert notify.message_text(tracked) == text


def test_message_fields():
    body = notify.build_message(release(export_url="https://exports.example/r.json"))
    assert body == {
        "type": "release.succeeded",
        "dataset": "jane/flowers",
        "release": "nightly-2026-11-27",
        "status": "SUCCEEDED",
        "export_url": "https://exports.example/r.json",
        "duration_seconds": 42.0,
        "finished_at": "2026-11-27T02:00:42.000Z",
        "error": None,
        "text": notify.message_text(release(export_url="https://exports.example/r.json")),
    }
    assert notify.build_message(release("timed_out"))["type"] == "release.timed_out"
    assert notify.build_message(release("FAILED", last_error="x"))["error"] == "x"


def test_webhook_id_is_stable_per_release_outcome_and_round():
    first = notify.webhook_id(release())
    assert first == notify.webhook_id(release(export_url="changed", duration_seconds=1))
    assert first.startswith("msg_")
    others = {
        notify.webhook_id(release("FAILED")),
        notify.webhook_id(release(generation=1)),
        notify.webhook_id(release(name="other")),
    }
    assert first not in others
    assert len(others) == 3


@pytest.mark.parametrize("secrets", [(TEST_SECRET,), (TEST_SECRET, OTHER_SECRET)])
def test_signed_request_verifies_with_each_secret(secrets):
    body, headers = notify.signed_request(release(), secrets, 1_795_744_850)
    assert headers["webhook-timestamp"] == "1795744850"
    entries = headers["webhook-signature"].split()
    assert entries == [
        signature(secret, body, headers["webhook-id"], 1_795_744_850) for secret in secrets
    ]
    lowered = {k.lower(): v for k, v in headers.items()}
    for secret in secrets:
        inbound = InboundRequest("POST", "https://receiver/", lowered, {}, body)
        verified = standard_webhooks.verify(inbound, [secret], now=1_795_744_850)
        assert verified == headers["webhook-id"]


# -- one POST, to the local receiver -----------------------------------------------------------


def target(url: str, **changes) -> NotifyTarget:
    values = {"allow_http": True, "allow_private": True, **changes}
    return NotifyTarget(name="chat", url=url, secrets=(TEST_SECRET,), **values)


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (204, True, False),
        (301, False, False),
        (400, False, False),
        (404, False, False),
        (408, False, True),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
def test_send_classifies_the_answer(notify_receiver, status, ok, retryable):
    notify_receiver.answer_next(status)
    body, headers = notify.signed_request(
        release(name="send-check"), [TEST_SECRET], int(time.time())
    )
    result = notify.send(target(notify_receiver.url), body, headers)
    assert (result.ok, result.retryable, result.status) == (ok, retryable, status)
    assert notify_receiver.received()[-1].body == body


def test_send_to_nothing_listening_is_retryable_and_hides_the_url():
    url = f"http://127.0.0.1:{free_port()}/secret-token-in-path"
    body, headers = notify.signed_request(release(), [TEST_SECRET], int(time.time()))
    result = notify.send(target(url), body, headers)
    assert (result.ok, result.retryable) == (False, True)
    assert "secret-token-in-path" not in result.error
    assert result.error.startswith("connection failed")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"allow_private": False}, "private"),
        ({"allow_http": False}, "allow_http"),
    ],
)
def test_send_refuses_what_the_target_does_not_allow(notify_receiver, changes, problem):
    before = len(notify_receiver.received())
    body, headers = notify.signed_request(release(), [TEST_SECRET], int(time.time()))
    result = notify.send(target(notify_receiver.url, **changes), body, headers)
    assert (result.ok, result.retryable) == (False, False)
    assert problem in result.error
    assert len(notify_receiver.received()) == before


def test_a_host_that_does_not_resolve_is_retried_later():
    body, headers = notify.signed_request(release(), [TEST_SECRET], int(time.time()))
    chat = target("https://unresolvable.example.com/x", allow_private=False)
    result = notify.send(chat, body, headers, resolve=resolve)
    assert (result.ok, result.retryable) == (False, True)
    assert "cannot resolve unresolvable.example.com" in result.error


def test_a_target_never_shows_its_url_or_secret():
    chat = target("https://hooks.example.com/services/T0/B0/token123")
    assert "token123" not in repr(chat)
    assert TEST_SECRET not in repr(chat)
