"""GET /ops/dashboard: the operators' page, through gunicorn with a real worker and Redis."""

from __future__ import annotations

import copy
import json
import re

import pytest
import requests

from relay.ops.dashboard import event_row, iso
from tests.conftest import FIXTURES, OPS_TOKEN
from tests.relay.test_openapi import keep_logging, offline_app  # noqa: F401 - a fixture
from tests.relay.test_ops_events import make_event

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}
S3 = {"X-Relay-Token": "s3-token-current"}
SCRIPT_KEY = "photos/<script>alert(1)</script>.png"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def page(stack, headers=AUTH, **params) -> requests.Response:
    return requests.get(f"{stack.url}/ops/dashboard", headers=headers, params=params, timeout=10)


def count_of(html: str, status: str) -> int:
    match = re.search(
        rf'data-status="{status}">\s*<span class="n">(\d+)</span>', html, flags=re.DOTALL
    )
    assert match, f"no count for {status}"
    return int(match.group(1))


@pytest.mark.integration
class TestDashboard:
    def test_counts_sources_and_event_rows(self, stack):
        response = stack.post("s3", fixture("s3_put.json"), S3)
        (event_id,) = response.json()["accepted"]
        stack.wait_finished(event_id)
        ignored = stack.post("s3", fixture("s3_test_event.json"), S3).json()["ignored"][0]["id"]

        response = page(stack)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        html = response.text
        assert count_of(html, "succeeded") == 1
        assert count_of(html, "ignored") == 1
        assert count_of(html, "failed") == 0
        row = re.search(rf'<tr>\s*<td class="id">{event_id}</td>(.*?)</tr>', html, re.DOTALL)
        assert row, "no row for the event"
        assert "<td>s3</td><td>sample</td>" in row.group(1)
        assert "succeeded" in row.group(1)
        assert ignored in html
        assert "/hooks/s3</td><td>s3</td>" in html
        assert "/hooks/azure</td><td>azure</td>" in html
        assert "no failed events" in html

    def test_self_contained_and_secret_free(self, stack):
        response = page(stack)
        html = response.text
        assert "http://" not in html
        assert "https://" not in html
        assert "<link" not in html
        assert not re.search(r"<script[^>]*\bsrc=", html)
        for secret in (OPS_TOKEN, "s3-token-current", "minio-token", "azure-token"):
            assert secret not in html
        csp = response.headers["Content-Security-Policy"]
        nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
        assert f'<script nonce="{nonce}">' in html
        assert "default-src 'none'" in csp
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert page(stack).headers["Content-Security-Policy"] != csp  # a nonce per response

    def test_failed_events_have_a_replay_button(self, stack):
        stack.sandbox.session().delete(f"{stack.sandbox.url}/datasets/demo/images/", timeout=10)
        (event_id,) = stack.post("s3", fixture("s3_put.json"), S3).json()["accepted"]
        assert stack.wait_finished(event_id).status == "failed"
        html = page(stack).text
        assert count_of(html, "failed") == 1
        assert f'<button type="button" class="replay" data-id="{event_id}">' in html
        assert 'id="replay-all"' in html
        # The script calls the replay endpoint under the events API's URL.
        assert 'data-events-url="/ops/events"' in html

    def test_the_token_may_come_in_the_query(self, stack):
        assert page(stack, headers={}, token=OPS_TOKEN).status_code == 200

    @pytest.mark.parametrize(
        ("headers", "params"),
        [
            ({}, {}),
            ({}, {"token": "wrong"}),
            ({}, {"token": ""}),
            ({"Authorization": "Bearer wrong"}, {}),
            # A header is checked when present, even with a good token in the query.
            ({"Authorization": "Bearer wrong"}, {"token": OPS_TOKEN}),
        ],
    )
    def test_no_or_a_wrong_token_is_a_json_401(self, stack, headers, params):
        response = page(stack, headers=headers, **params)
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"] == "unauthorized"

    def test_the_query_token_opens_only_the_dashboard(self, stack):
        response = requests.get(f"{stack.url}/ops/events", params={"token": OPS_TOKEN}, timeout=10)
        assert response.status_code == 401

    def test_sender_text_is_escaped(self, stack):
        body = copy.deepcopy(fixture("s3_put.json"))
        body["Records"][0]["s3"]["object"]["key"] = SCRIPT_KEY
        response = stack.post("only-jpegs", body, S3)
        (ignored,) = response.json()["ignored"]
        assert "<script>" in ignored["reason"]
        html = page(stack).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert html.count("<script") == 1  # only the page's own


def test_event_row_shows_the_error_or_else_the_reason():
    failed = make_event("failed", last_error="404 not found", created_at=0.0)
    ignored = make_event("ignored", kind="notice", reason="test event")
    assert event_row(failed)["note"] == "404 not found"
    assert event_row(failed)["created"] == "1970-01-01 00:00:00Z"
    assert event_row(ignored)["note"] == "test event"
    assert iso(None) == ""


def test_redis_unavailable_is_a_json_503(tmp_path, keep_logging):  # noqa: F811 - the fixture
    client = offline_app(tmp_path).test_client()
    response = client.get("/ops/dashboard", query_string={"token": OPS_TOKEN})
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
