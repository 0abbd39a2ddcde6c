"""Model callbacks become PRELABELED labels: relay under gunicorn, a real worker, Redis, sandbox."""

from __future__ import annotations

import io
import json
import time
import uuid

import boto3
import numpy as np
import pytest
import requests
from PIL import Image
from segments import SegmentsClient

from relay.segments import read_bitmap_png
from tests.conftest import FIXTURES, PREDICTION_SECRETS, SANDBOX_KEY, wait_for
from tests.hooks.swfakes import sign
from tests.procs import StaticServer

pytestmark = pytest.mark.integration

SECRET = PREDICTION_SECRETS["TEST_PREDICTIONS_SECRET"]
REPLICATE_SECRET = PREDICTION_SECRETS["TEST_REPLICATE_SECRET"]
S3 = {"X-Relay-Token": "s3-token-current"}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def post_signed(
    stack, source: str, body: dict, *, secret: str = SECRET, msg_id: str | None = None, **kw
):
    raw = json.dumps(body)
    headers = sign(secret, raw, msg_id or f"msg_{uuid.uuid4().hex}", int(time.time()))
    headers["Content-Type"] = "application/json"
    return stack.post(source, raw, headers, **kw)


def make_sample(stack, name: str = "street.jpg", dataset: str = "demo/images") -> dict:
    response = stack.sandbox.session().post(
        f"{stack.sandbox.url}/datasets/{dataset}/samples/",
        json={"name": name, "attributes": {"image": {"url": f"https://img.example/{name}"}}},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def label_of(stack, sample_uuid: str, labelset: str = "predictions") -> dict | None:
    response = stack.sandbox.session().get(
        f"{stack.sandbox.url}/labels/{sample_uuid}/{labelset}/", timeout=10
    )
    return None if response.status_code == 404 else response.json()


def finished(stack, response) -> object:
    assert response.status_code == 202, response.text
    (event_id,) = response.json()["accepted"]
    return stack.wait_finished(event_id, timeout=60)


BOXES = {
    "sample": {"name": "street.jpg"},
    "model": {"name": "yolov8n", "version": "2024-05-01"},
    "image": {"width": 640, "height": 480},
    "objects": [
        {"label": "car", "score": 0.9, "bbox": [10, 20, 110, 220]},
        {
            "label": "person",
            "score": 0.6,
            "bbox": [0.5, 0.5, 0.1, 0.2],
            "bbox_format": "xywh",
            "normalized": True,
        },
        {"label": "zebra", "score": 0.8, "bbox": [1, 1, 5, 5]},
    ],
}


class TestGenericCallback:
    def test_bboxes_prelabel_with_score_readable_by_the_sdk(self, stack):
        sample = make_sample(stack)
        event = finished(stack, post_signed(stack, "predictions", BOXES))
        assert event.status == "succeeded", event.last_error
        assert event.result["dropped"]["unknown_classes"] == {"zebra": 1}
        label = label_of(stack, sample["uuid"])
        assert label["label_status"] == "PRELABELED"
        assert label["score"] == pytest.approx(0.75)  # the mean of the kept objects' scores
        car, person = label["attributes"]["annotations"]
        assert (car["category_id"], car["type"], car["points"]) == (
            1,
            "bbox",
            [[10, 20], [110, 220]],
        )
        assert person["category_id"] == 2
        assert person["points"] == [
            [pytest.approx(320), pytest.approx(240)],
            [pytest.approx(384), pytest.approx(336)],
        ]
        assert label["attributes"]["image_attributes"] == {
            "model": "yolov8n",
            "model_version": "2024-05-01",
        }
        client = SegmentsClient(api_key=SANDBOX_KEY, api_url=stack.sandbox.url)
        parsed = client.get_label(sample["uuid"], "predictions")
        assert parsed.label_status == "PRELABELED"
        assert len(parsed.attributes.annotations) == 2

    def test_given_overall_score_wins(self, stack):
        sample = make_sample(stack)
        body = {**BOXES, "score": 0.42}
        assert finished(stack, post_signed(stack, "predictions", body)).status == "succeeded"
        assert label_of(stack, sample["uuid"])["score"] == pytest.approx(0.42)

    def test_vector_dataset_gets_every_geometry(self, stack):
        stack.create_dataset("shapes", task_type="vector", categories=("road", "lane", "sign"))
        sample = make_sample(stack, "road.png", "demo/shapes")
        body = {
            "sample": {"dataset": "demo/shapes", "name": "road.png"},
            "objects": [
                {"label": "road", "score": 0.9, "polygon": [[0, 0], [100, 0], [50, 80]]},
                {"label": "lane", "score": 0.8, "polyline": [[0, 10], [50, 20], [90, 40]]},
                {"label": "sign", "score": 0.7, "point": [12.5, 40]},
                {"label": "sign", "score": 0.6, "bbox": [1, 2, 3, 4]},
            ],
        }
        event = finished(stack, post_signed(stack, "predictions", body))
        assert event.status == "succeeded", event.last_error
        label = label_of(stack, sample["uuid"])
        assert [a["type"] for a in label["attributes"]["annotations"]] == [
            "polygon",
            "polyline",
            "point",
            "bbox",
        ]
        assert label["attributes"]["annotations"][2]["points"] == [[12.5, 40]]
        client = SegmentsClient(api_key=SANDBOX_KEY, api_url=stack.sandbox.url)
        assert len(client.get_label(sample["uuid"], "predictions").attributes.annotations) == 4

    def test_segmentation_bitmap_from_a_mask_url(self, stack):
        stack.create_dataset("masks", task_type="segmentation-bitmap", categories=("car", "person"))
        sample = make_sample(stack, "scene.png", "demo/masks")
        ids = np.zeros((6, 8), dtype=np.uint8)
        ids[1:3, 1:4] = 1
        ids[4:6, 5:8] = 2
        ids[0, 7] = 3  # an instance the callback does not list: becomes unlabeled
        png = io.BytesIO()
        Image.fromarray(ids, mode="L").save(png, format="PNG")
        with StaticServer(png.getvalue(), "image/png") as server:
            mask_url = f"{server.url}/mask.png"
            body = {
                "sample": {"dataset": "demo/masks", "name": "scene.png"},
                "mask": {
                    "url": mask_url,
                    "instances": [
                        {"id": 1, "label": "car", "score": 0.9},
                        {"id": 2, "label": "person", "score": 0.7},
                    ],
                },
            }
            event = finished(stack, post_signed(stack, "predictions", body))
        assert event.status == "succeeded", event.last_error
        label = label_of(stack, sample["uuid"])
        assert label["label_status"] == "PRELABELED"
        assert label["attributes"]["annotations"] == [
            {"id": 1, "category_id": 1},
            {"id": 2, "category_id": 2},
        ]
        bitmap = read_bitmap_png(
            requests.get(label["attributes"]["segmentation_bitmap"]["url"], timeout=10).content
        )
        assert bitmap.tolist() == np.where(ids == 3, 0, ids).tolist()
        client = SegmentsClient(api_key=SANDBOX_KEY, api_url=stack.sandbox.url)
        assert client.get_label(sample["uuid"], "predictions").attributes.segmentation_bitmap.url

    def test_prediction_before_its_upload_lands_once_the_sample_appears(self, stack):
        body = {
            "sample": {"bucket": "mybucket", "key": "HappyFace.jpg"},
            "objects": [{"label": "car", "score": 0.8, "bbox": [1, 1, 9, 9]}],
        }
        response = post_signed(stack, "predictions", body)
        (prediction_id,) = response.json()["accepted"]
        waiting = wait_for(
            lambda: (e := stack.event(prediction_id)).attempts >= 2 and e,
            what="a retry while waiting",
        )
        assert "sample not found yet" in waiting.last_error
        upload = stack.post("s3", fixture("s3_put.json"), S3).json()["accepted"][0]
        sample_uuid = stack.wait_finished(upload).result["sample_uuid"]
        event = stack.wait_finished(prediction_id, timeout=60)
        assert event.status == "succeeded", event.last_error
        assert event.result["sample_uuid"] == sample_uuid
        assert label_of(stack, sample_uuid)["label_status"] == "PRELABELED"

    def test_human_work_is_never_overwritten(self, stack):
        sample = make_sample(stack)
        stack.sandbox.session().post(
            f"{stack.sandbox.url}/datasets/demo/images/labelsets/",
            json={"name": "predictions", "description": ""},
            timeout=10,
        ).raise_for_status()
        human = {
            "format_version": "0.1",
            "annotations": [
                {"id": 1, "category_id": 1, "type": "bbox", "points": [[0, 0], [5, 5]]}
            ],
        }
        stack.sandbox.session().put(
            f"{stack.sandbox.url}/labels/{sample['uuid']}/predictions/",
            json={"attributes": human, "label_status": "LABELED"},
            timeout=10,
        ).raise_for_status()
        event = finished(stack, post_signed(stack, "predictions", BOXES))
        assert event.status == "skipped"
        assert "LABELED" in event.reason
        label = label_of(stack, sample["uuid"])
        assert label["label_status"] == "LABELED"
        assert label["attributes"]["annotations"][0]["points"] == [[0, 0], [5, 5]]
        # A route that explicitly allows it does overwrite.
        assert (
            finished(stack, post_signed(stack, "predictions-overwrite", BOXES)).status
            == "succeeded"
        )
        assert label_of(stack, sample["uuid"])["label_status"] == "PRELABELED"

    def test_newer_prediction_replaces_an_older_prelabel_and_replays_change_nothing(self, stack):
        sample = make_sample(stack)
        first = post_signed(stack, "predictions", BOXES, msg_id="msg_first")
        assert finished(stack, first).status == "succeeded"
        newer = {
            **BOXES,
            "model": {"name": "yolov9"},
            "objects": [{"label": "person", "score": 0.95, "bbox": [5, 5, 50, 50]}],
        }
        assert finished(stack, post_signed(stack, "predictions", newer)).status == "succeeded"
        label = label_of(stack, sample["uuid"])
        assert [a["category_id"] for a in label["attributes"]["annotations"]] == [2]
        replay = post_signed(stack, "predictions", BOXES, msg_id="msg_first")
        assert replay.json()["accepted"] == []
        assert len(replay.json()["duplicates"]) == 1
        assert label_of(stack, sample["uuid"]) == label

    def test_strict_route_fails_unknown_classes_and_drops_low_scores(self, stack):
        sample = make_sample(stack)
        event = finished(stack, post_signed(stack, "predictions-strict", BOXES))
        assert event.status == "failed"
        assert "class 'zebra' is not a category" in event.last_error
        assert label_of(stack, sample["uuid"], "model-b") is None
        body = {**BOXES, "objects": BOXES["objects"][:2]}
        event = finished(stack, post_signed(stack, "predictions-strict", body))
        assert event.status == "succeeded"
        assert event.result["dropped"]["below_min_score"] == 0
        assert len(label_of(stack, sample["uuid"], "model-b")["attributes"]["annotations"]) == 2

    def test_unknown_sample_uuid_fails_with_the_reason(self, stack):
        body = {"sample": {"uuid": str(uuid.uuid4())}, "objects": []}
        event = finished(stack, post_signed(stack, "predictions", body))
        assert event.status == "failed"
        assert "404" in event.last_error


class TestRefusedAtTheDoor:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"objects": [{"label": "car", "bbox": [10, 20, 5, 220]}]}, "objects[0].bbox"),
            ({"objects": [{"label": "car", "bbox": [10, 20, 700, 220]}]}, "objects[0].bbox"),
            ({"objects": [{"label": "car", "polygon": [[1, 2], [3, 4]]}]}, "objects[0].polygon"),
            ({"objects": [{"label": "car", "bbox": [1, 2, 3, 4], "point": [1, 2]}]}, "objects[0]"),
            ({"objects": [{"label": "car"}]}, "objects[0]"),
            ({"sample": {}}, "sample"),
            ({"score": "high"}, "score"),
            ({"colour": "red"}, "colour"),
        ],
    )
    def test_malformed_predictions_name_the_field(self, stack, change, field):
        response = post_signed(stack, "predictions", {**BOXES, **change})
        assert response.status_code == 400, response.text
        assert any(key.startswith(field) for key in response.json()["fields"]), response.json()
        assert sum(stack.store.counts().values()) == 0

    @pytest.mark.parametrize(
        ("mangle", "message"),
        [
            (lambda h: {**h, "webhook-signature": "v1,AAAA"}, "signature"),
            (lambda h: {k: v for k, v in h.items() if k != "webhook-id"}, "webhook-id"),
            (lambda h: {**h, "webhook-timestamp": str(int(time.time()) - 3600)}, "too old"),
        ],
    )
    def test_bad_signatures_and_stale_timestamps(self, stack, mangle, message):
        raw = json.dumps(BOXES)
        headers = mangle(sign(SECRET, raw, "msg_x", int(time.time())))
        response = stack.post("predictions", raw, headers)
        assert response.status_code == 401
        assert message in response.json()["message"]
        assert sum(stack.store.counts().values()) == 0

    def test_rotated_secret_is_accepted(self, stack):
        make_sample(stack)
        next_secret = PREDICTION_SECRETS["TEST_PREDICTIONS_SECRET_NEXT"]
        assert (
            finished(stack, post_signed(stack, "predictions", BOXES, secret=next_secret)).status
            == "succeeded"
        )


class TestReplicate:
    def test_in_progress_is_acknowledged_and_ignored(self, stack):
        response = post_signed(
            stack, "replicate", fixture("replicate_starting.json"), secret=REPLICATE_SECRET
        )
        assert response.status_code == 202
        assert "starting" in response.json()["ignored"][0]["reason"]

    def test_failed_prediction_is_recorded_with_replicates_error(self, stack):
        response = post_signed(
            stack,
            "replicate",
            fixture("replicate_failed.json"),
            secret=REPLICATE_SECRET,
            params={"sample": "street.jpg"},
        )
        assert response.status_code == 202
        (failed,) = response.json()["failed"]
        assert "CUDA out of memory" in failed["reason"]
        assert stack.event(failed["id"]).status == "failed"

    def test_text_output_is_not_a_detector(self, stack):
        response = post_signed(
            stack, "replicate", fixture("replicate_succeeded.json"), secret=REPLICATE_SECRET
        )
        assert "not a detection list" in response.json()["ignored"][0]["reason"]

    @pytest.mark.parametrize(
        ("output", "count"),
        [
            (
                [
                    {
                        "label": "car",
                        "confidence": 0.9,
                        "box": {"x1": 1, "y1": 2, "x2": 30, "y2": 40},
                    }
                ],
                1,
            ),
            (fixture("roboflow_detection_response.json"), 0),  # "helmet" is not a category
        ],
    )
    def test_succeeded_detections_become_a_prelabel(self, stack, output, count):
        sample = make_sample(stack)
        body = {**fixture("replicate_succeeded.json"), "output": output}
        response = post_signed(
            stack,
            "replicate",
            body,
            secret=REPLICATE_SECRET,
            params={"dataset": "demo/images", "sample": "street.jpg"},
        )
        event = finished(stack, response)
        assert event.status == "succeeded", event.last_error
        label = label_of(stack, sample["uuid"])
        assert len(label["attributes"]["annotations"]) == count
        assert label["attributes"]["image_attributes"]["model"] == "replicate/hello-world"


class TestSageMaker:
    def sns(self, message: dict) -> dict:
        return {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:inference-done",
            "Message": json.dumps(message),
            "Timestamp": "2026-01-01T00:00:00.000Z",
            "SignatureVersion": "2",
        }

    def test_success_reads_the_result_from_s3(self, stack, s3_server):
        stack.create_dataset("planes", task_type="vector", categories=("airplane",))
        sample = make_sample(stack, "runway/plane 1.jpg", "demo/planes")
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_server,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="results")
        output = (FIXTURES / "labelstudio_ml_predict_response.json").read_bytes()
        s3.put_object(Bucket="results", Key="out/1.json", Body=output)
        message = fixture("sagemaker_async_success.json")
        message["requestParameters"]["inputLocation"] = "s3://photos/runway/plane 1.jpg"
        message["responseParameters"]["outputLocation"] = "s3://results/out/1.json"
        message["inferenceId"] = str(uuid.uuid4())
        response = stack.post("sagemaker-planes", self.sns(message), {"Content-Type": "text/plain"})
        event = finished(stack, response)
        assert event.status == "succeeded", event.last_error
        assert event.result["sample_uuid"] == sample["uuid"]
        assert event.result["model_version"] == "yolov8n-2024-05-01"
        # Label Studio's result: a rectangle and a polygon in percent of 600x403 (the brush mask
        # is not convertible and left out).
        box, poly = label_of(stack, sample["uuid"])["attributes"]["annotations"]
        assert (box["type"], poly["type"]) == ("bbox", "polygon")
        assert box["points"][0] == [pytest.approx(29.88), pytest.approx(51.6646)]
        assert label_of(stack, sample["uuid"])["score"] == pytest.approx(0.87)

    def test_error_is_recorded_with_sagemakers_reason(self, stack):
        message = fixture("sagemaker_async_error.json")
        response = stack.post("sagemaker", self.sns(message), {"Content-Type": "text/plain"})
        assert response.status_code == 202, response.text
        (failed,) = response.json()["failed"]
        assert "sagemaker inference failed" in failed["reason"]
