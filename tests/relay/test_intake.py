"""Storage notifications end to end: relay under gunicorn, a real worker, Redis, the sandbox."""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import (
    FIXTURES,
    OPS_TOKEN,
    PREDICTION_SECRETS,
    SANDBOX_KEY,
    TOKENS,
    wait_for,
)
from tests.procs import StaticServer

pytestmark = pytest.mark.integration

S3 = {"X-Relay-Token": "s3-token-current"}
MINIO = {"Authorization": "Bearer minio-token"}
AZURE = {"X-Relay-Token": "azure-token"}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def accepted_sample(stack, source, body, headers, **kw) -> dict:
    """Post a notification, expect one accepted event, wait for it, return its sample."""
    response = stack.post(source, body, headers, **kw)
    assert response.status_code == 202, response.text
    (event_id,) = response.json()["accepted"]
    event = stack.wait_finished(event_id)
    assert event.status == "succeeded", event.last_error
    (sample,) = [s for s in stack.samples() if s["uuid"] == event.result["sample_uuid"]]
    return sample


def gcs_headers(stack_jwks, **claims) -> dict:
    return {
        "Authorization": f"Bearer {stack_jwks.token(**claims)}",
        "Content-Type": "application/json",
    }


class TestEveryStorageFixtureBecomesASample:
    def test_s3_direct_event(self, stack):
        sample = accepted_sample(stack, "s3", fixture("s3_put.json"), S3)
        assert sample["name"] == "HappyFace.jpg"
        assert sample["attributes"] == {
            "image": {"url": "https://mybucket.s3.amazonaws.com/HappyFace.jpg"}
        }
        assert sample["metadata"]["bucket"] == "mybucket"
        assert sample["metadata"]["size"] == 1024
        assert sample["metadata"]["source"] == "s3"

    def test_s3_through_eventbridge(self, stack):
        sample = accepted_sample(stack, "s3", fixture("eventbridge_s3_object_created.json"), S3)
        assert sample["name"] == "example-key"
        assert (
            sample["attributes"]["image"]["url"]
            == "https://DOC-EXAMPLE-BUCKET1.s3.amazonaws.com/example-key"
        )

    def test_s3_through_sns_text_plain(self, stack):
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification",
        }
        sample = accepted_sample(stack, "s3-local", fixture("sns_notification_s3.json"), headers)
        assert sample["name"] == "HappyFace.jpg"

    def test_minio(self, stack):
        sample = accepted_sample(stack, "minio", fixture("minio_put.json"), MINIO)
        assert sample["name"] == "myphoto.jpg"
        assert sample["attributes"]["image"]["url"] == "http://minio.local:9000/images/myphoto.jpg"
        assert sample["metadata"]["bucket"] == "images"

    def test_gcs_pubsub_push_with_oidc(self, stack, jwks):
        sample = accepted_sample(stack, "gcs", fixture("gcs_pubsub_push.json"), gcs_headers(jwks))
        assert sample["name"] == "folder/Test.cs"
        assert (
            sample["attributes"]["image"]["url"]
            == "https://storage.googleapis.com/sample-bucket/folder/Test.cs"
        )
        assert sample["metadata"]["version"] == "1587627537231057"

    def test_gcs_eventarc_structured_cloudevent(self, stack, jwks):
        headers = {**gcs_headers(jwks), "Content-Type": "application/cloudevents+json"}
        sample = accepted_sample(stack, "gcs", fixture("gcs_cloudevent_structured.json"), headers)
        assert sample["name"] == "folder/Test.cs"

    def test_gcs_eventarc_binary_cloudevent(self, stack, jwks):
        raw = fixture("gcs_eventarc_binary_headers.json")
        headers = {k: v for k, v in raw.items() if k.startswith("ce-")}
        headers.update(gcs_headers(jwks))
        sample = accepted_sample(stack, "gcs", fixture("gcs_object_resource.json"), headers)
        assert sample["name"] == "folder/Test.cs"

    def test_azure_event_grid_schema(self, stack):
        sample = accepted_sample(stack, "azure", fixture("eventgrid_blob_created.json"), AZURE)
        assert sample["name"] == "new-file.txt"
        assert sample["attributes"]["image"]["url"] == (
            "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt"
        )
        assert sample["metadata"]["bucket"] == "my-storage-account/test-container"

    def test_azure_cloudevents_schema_with_query_token(self, stack):
        headers = {"Content-Type": "application/cloudevents-batch+json"}
        sample = accepted_sample(
            stack,
            "azure",
            fixture("cloudevents_blob_created.json"),
            headers,
            params={"token": "azure-token-next"},
        )
        assert sample["name"] == "new-file.txt"

    def test_encoded_key_arrives_under_its_real_name(self, stack):
        body = fixture("s3_put.json")
        body["Records"][0]["s3"]["object"]["key"] = "images/red+flower+%281%29%2Bv2.jpg"
        sample = accepted_sample(stack, "s3", body, {"X-Relay-Token": "s3-token-next"})
        assert sample["name"] == "images/red flower (1)+v2.jpg"
        assert sample["attributes"]["image"]["url"] == (
            "https://mybucket.s3.amazonaws.com/images/red%20flower%20%281%29%2Bv2.jpg"
        )


class TestHandshakes:
    def test_event_grid_validation_echoes_the_code(self, stack):
        response = stack.post(
            "azure",
            fixture("eventgrid_validation.json"),
            {**AZURE, "aeg-event-type": "SubscriptionValidation"},
        )
        assert response.status_code == 200
        assert response.json() == fixture("eventgrid_validation_response.json")
        assert stack.store.counts()["queued"] == 0

    def test_cloudevents_options_abuse_protection(self, stack):
        response = requests.options(
            f"{stack.url}/hooks/azure",
            headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
            params={"token": "azure-token"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"

    def test_minio_head_reachability_check(self, stack):
        assert requests.head(f"{stack.url}/hooks/minio", timeout=10).status_code == 200

    def test_sns_subscription_is_confirmed_against_the_subscribe_url(self, stack):
        with StaticServer(b"<ConfirmSubscriptionResponse/>", "text/xml") as server:
            body = fixture("sns_subscription_confirmation.json")
            topic = body["TopicArn"]
            body["SubscribeURL"] = (
                f"{server.url}/?Action=ConfirmSubscription&TopicArn={topic}&Token=abc"
            )
            headers = {
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": "SubscriptionConfirmation",
            }
            response = stack.post("s3-local", body, headers)
        assert response.status_code == 200, response.text
        assert len(server.paths) == 1
        assert "Action=ConfirmSubscription" in server.paths[0]


class TestExactlyOnce:
    def test_same_object_three_times_through_two_envelopes_is_one_sample(self, stack):
        direct = fixture("s3_put.json")
        sns = fixture("sns_notification_s3.json")
        first = stack.post("s3", direct, S3).json()
        second = stack.post("s3", direct, S3).json()
        third = stack.post("s3-local", sns, {"Content-Type": "text/plain"}).json()
        (event_id,) = first["accepted"]
        assert second == {"accepted": [], "duplicates": [event_id], "ignored": [], "failed": []}
        assert third["accepted"] == []
        assert third["duplicates"] == [event_id]
        stack.wait_finished(event_id)
        assert [s["name"] for s in stack.samples()] == ["HappyFace.jpg"]

    def test_existing_sample_name_is_adopted(self, stack):
        s = stack.sandbox.session()
        existing = s.post(
            f"{stack.sandbox.url}/datasets/demo/images/samples/",
            json={
                "name": "HappyFace.jpg",
                "attributes": {"image": {"url": "https://elsewhere/x.jpg"}},
            },
            timeout=10,
        ).json()
        response = stack.post("s3", fixture("s3_put.json"), S3)
        event = stack.wait_finished(response.json()["accepted"][0])
        assert event.status == "succeeded"
        assert event.result["sample_uuid"] == existing["uuid"]
        assert event.result["created"] is False
        assert len(stack.samples()) == 1

    @pytest.mark.faults
    @pytest.mark.parametrize(
        "fault", [{"fail_rate": 1.0, "fail_status": 503}, {"rate_limit": 1, "retry_after": 1}]
    )
    def test_api_failing_for_a_while_still_creates_the_sample_once(self, stack, fault):
        stack.sandbox.faults(**fault)
        if "rate_limit" in fault:
            # Spend this second's allowance so the worker's first call is throttled.
            for _ in range(3):
                stack.sandbox.session().get(f"{stack.sandbox.url}/api_status/", timeout=5)
        response = stack.post("s3", fixture("s3_put.json"), S3)
        (event_id,) = response.json()["accepted"]
        if "fail_rate" in fault:
            failing = wait_for(
                lambda: (e := stack.event(event_id)).attempts >= 2 and e, what="two failed attempts"
            )
            assert "503" in failing.last_error
            stack.sandbox.faults(fail_rate=0.0)
        event = stack.wait_finished(event_id, timeout=60)
        assert event.status == "succeeded", event.last_error
        stack.sandbox.faults(rate_limit=None, fail_rate=0.0)
        assert [s["name"] for s in stack.samples()] == ["HappyFace.jpg"]


class TestIgnored:
    @pytest.mark.parametrize(
        ("source", "name", "headers", "reason"),
        [
            ("s3", "s3_test_event.json", S3, "test event"),
            (
                "s3-local",
                "sns_notification_s3_test_event.json",
                {"Content-Type": "text/plain"},
                "test event",
            ),
        ],
    )
    def test_test_events_are_acknowledged(self, stack, source, name, headers, reason):
        response = stack.post(source, fixture(name), headers)
        assert response.status_code == 202
        (ignored,) = response.json()["ignored"]
        assert reason in ignored["reason"]
        assert stack.event(ignored["id"]).status == "ignored"

    def test_deletion_is_ignored(self, stack):
        body = fixture("s3_put.json")
        body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
        response = stack.post("s3", body, S3)
        assert response.status_code == 202
        assert response.json()["accepted"] == []
        assert "deleted" in response.json()["ignored"][0]["reason"]

    @pytest.mark.parametrize(
        ("key", "accepted"),
        [("photos/cat.jpg", True), ("photos/cat.png", False), ("other/cat.jpg", False)],
    )
    def test_routes_filter_by_prefix_and_suffix(self, stack, key, accepted):
        body = fixture("s3_put.json")
        body["Records"][0]["s3"]["object"]["key"] = key
        response = stack.post("only-jpegs", body, S3).json()
        assert bool(response["accepted"]) is accepted
        if accepted:
            stack.wait_finished(response["accepted"][0])
            assert [s["name"] for s in stack.samples()] == ["mybucket-cat.jpg"]
        else:
            assert "no route matches" in response["ignored"][0]["reason"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("source", "body", "headers", "status", "error"),
        [
            ("s3", b"{not json", S3, 400, "invalid_payload"),
            ("s3", b"", S3, 400, "invalid_payload"),
            ("s3", b"[1, 2]", S3, 400, "invalid_payload"),
            ("s3", json.dumps({"Records": "nope"}), S3, 400, "invalid_payload"),
            ("s3", json.dumps({"Records": [{"s3": {"bucket": {}}}]}), S3, 400, "invalid_payload"),
            ("s3", json.dumps({"Records": []}), {}, 401, "unauthorized"),
            ("s3", json.dumps({"Records": []}), {"X-Relay-Token": "wrong"}, 401, "unauthorized"),
            ("minio", b"{}", {"Authorization": "Bearer nope"}, 401, "unauthorized"),
            ("azure", b"{}", {}, 401, "unauthorized"),
            ("gcs", b"{}", {"Authorization": "Bearer not.a.jwt"}, 401, "unauthorized"),
            ("nowhere", b"{}", {}, 404, "unknown_source"),
            ("only-jpegs", b"{" + b" " * 5000 + b"}", S3, 413, "request_entity_too_large"),
        ],
    )
    def test_clear_errors_and_nothing_enqueued(self, stack, source, body, headers, status, error):
        response = stack.post(source, body, headers)
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"] == error
        assert response.json()["message"]
        assert sum(stack.store.counts().values()) == 0

    def test_field_errors_name_the_field(self, stack):
        body = fixture("s3_put.json")
        body["Records"][0]["s3"]["object"]["size"] = "big"
        response = stack.post("s3", body, S3)
        assert response.status_code == 400
        assert "Records[0].s3.object.size" in response.json()["fields"]

    def test_gcs_token_for_another_audience_is_refused(self, stack, jwks):
        headers = gcs_headers(jwks, aud="https://someone-else.example/hooks/gcs")
        response = stack.post("gcs", fixture("gcs_pubsub_push.json"), headers)
        assert response.status_code == 401
        assert "audience" in response.json()["message"]

    def test_wrong_method(self, stack):
        response = requests.get(f"{stack.url}/hooks/s3", timeout=10)
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"

    def test_secrets_never_echoed(self, stack):
        response = stack.post("s3", b"{}", {"X-Relay-Token": "s3-token-currentX"})
        assert "s3-token-current" not in response.text


def test_readiness_and_metrics(stack):
    assert requests.get(f"{stack.url}/readyz", timeout=10).json()["redis"] == "ok"
    stack.post("s3", fixture("s3_test_event.json"), S3)
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert 'relay_notices_total{result="ignored",source="s3"}' in metrics
    accepted = stack.post("s3", fixture("s3_put.json"), S3).json()["accepted"][0]
    stack.wait_finished(accepted)
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert 'relay_tasks_total{kind="sample",result="succeeded"}' in metrics
    assert 'relay_events{status="succeeded"} 1.0' in metrics
    assert "s3-token-current" not in metrics
    assert OPS_TOKEN not in metrics


def test_secrets_stay_out_of_logs(stack, jwks, process_logs):
    """After good and bad deliveries of every kind, no secret is in the relay's or worker's log."""
    stack.post("s3", fixture("s3_put.json"), S3)
    stack.post("s3", fixture("s3_put.json"), {"X-Relay-Token": "s3-token-next-but-wrong"})
    stack.post("azure", fixture("eventgrid_blob_created.json"), {}, params={"token": "azure-token"})
    token = jwks.token()
    stack.post("gcs", fixture("gcs_pubsub_push.json"), {"Authorization": f"Bearer {token}"})
    stack.wait_finished(stack.store.list(status=None, limit=1)[0].id)
    secrets = [*TOKENS.values(), *PREDICTION_SECRETS.values(), SANDBOX_KEY, OPS_TOKEN, token]
    for name, path in process_logs.items():
        text = path.read_text()
        assert "evt_" in text  # the log does speak of events
        for secret in secrets:
            assert secret not in text, f"a secret is in the {name} log"
