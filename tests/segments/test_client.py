"""Unit tests for SegmentsClient over a scripted transport: paths, bodies, paging, retries."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from relay.segments import client as client_module
from relay.segments.client import SegmentsClient, backoff_delay, split_dataset
from relay.segments.errors import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    SegmentsError,
    ServerError,
    ValidationError,
)

BASE = "http://segments.test/api"
KEY = "secret-key-123"
IMAGE = {"image": {"url": "https://example.com/a.jpg"}}
DUPLICATE = {"name": ["A sample with this name already exists."]}


@dataclass
class Sent:
    """One request as it left the client."""

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict
    body: bytes | None
    timeout: Any

    def json(self) -> Any:
        raw = self.body or b""
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        return json.loads(raw)


class ScriptedApi(BaseAdapter):
    """A transport that answers from a script and records every request."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[int, Any, dict[str, str]] | Exception] = []
        self.sent: list[Sent] = []

    def answer(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None):
        self.answers.append((status, body, headers or {}))

    def fail(self, exc: Exception) -> None:
        self.answers.append(exc)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url)
        if url.netloc == "segments.test":
            assert url.path.startswith("/api/"), "the base URL's path prefix must be kept"
            path = url.path.removeprefix("/api")
        else:
            path = f"{url.scheme}://{url.netloc}{url.path}"
        self.sent.append(
            Sent(
                method=request.method,
                path=path,
                query=dict(parse_qsl(url.query)),
                headers=CaseInsensitiveDict(request.headers),
                body=request.body,
                timeout=kwargs.get("timeout"),
            )
        )
        answer = self.answers.pop(0) if self.answers else (200, {"ok": True}, {})
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        if body is None or isinstance(body, str | bytes):
            response._content = body.encode() if isinstance(body, str) else body or b""
        else:
            response._content = json.dumps(body).encode()
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def api() -> ScriptedApi:
    return ScriptedApi()


@pytest.fixture
def make_client(api: ScriptedApi) -> Iterator[Callable[..., SegmentsClient]]:
    session = requests.Session()
    session.mount("http://", api)

    def make(**options: Any) -> SegmentsClient:
        return SegmentsClient(BASE, KEY, session=session, **options)

    yield make
    session.close()


@pytest.fixture
def client(make_client: Callable[..., SegmentsClient]) -> SegmentsClient:
    return make_client()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's back-off sleeps instead of sleeping."""
    slept: list[float] = []
    monkeypatch.setattr(client_module, "sleep", slept.append)
    return slept


DATASET_BODY = {
    "name": "cats",
    "description": "",
    "task_type": "segmentation-bitmap",
    "task_attributes": {"format_version": "0.1", "categories": [{"id": 1, "name": "object"}]},
    "category": "other",
    "public": False,
}
VECTOR_TASK = {"format_version": "0.1", "categories": [{"id": 0, "name": "cat"}]}

ENDPOINTS = [
    (lambda c: c.api_status(), "GET", "/api_status/", {"lib_version": "1.33.0"}, None),
    (lambda c: c.get_user(), "GET", "/user", {}, None),
    (lambda c: c.get_user("jane"), "GET", "/users/jane", {}, None),
    (lambda c: c.get_dataset("jane/cats"), "GET", "/datasets/jane/cats/", {}, None),
    (lambda c: c.create_dataset("cats"), "POST", "/user/datasets/", {}, DATASET_BODY),
    (
        lambda c: c.create_dataset(
            "cats", task_type="vector", task_attributes=VECTOR_TASK, description="Cats.",
            public=True, category="garden", organization="acme", readme="# Cats",
        ),
        "POST", "/organizations/acme/datasets/", {},
        {
            "name": "cats", "description": "Cats.", "task_type": "vector",
            "task_attributes": VECTOR_TASK, "category": "garden", "public": True,
            "readme": "# Cats",
        },
    ),
    (
        lambda c: c.update_dataset("jane/cats", description="new"),
        "PATCH", "/datasets/jane/cats/", {}, {"description": "new"},
    ),
    (lambda c: c.delete_dataset("jane/cats"), "DELETE", "/datasets/jane/cats/", {}, None),
    (
        lambda c: c.add_collaborator("jane/cats", "john", "reviewer"),
        "POST", "/datasets/jane/cats/collaborators/", {}, {"user": "john", "role": "reviewer"},
    ),
    (
        lambda c: c.get_collaborator("jane/cats", "john"),
        "GET", "/datasets/jane/cats/collaborators/john", {}, None,
    ),
    (
        lambda c: c.update_collaborator("jane/cats", "john", "admin"),
        "PATCH", "/datasets/jane/cats/collaborators/john", {}, {"role": "admin"},
    ),
    (
        lambda c: c.delete_collaborator("jane/cats", "john"),
        "DELETE", "/datasets/jane/cats/collaborators/john", {}, None,
    ),
    (lambda c: c.get_sample("u-1"), "GET", "/samples/u-1/", {}, None),
    (
        lambda c: c.get_sample("u-1", labelset="ground-truth"),
        "GET", "/samples/u-1/", {"labelset": "ground-truth"}, None,
    ),
    (
        lambda c: c.create_sample("jane/cats", "a.jpg", IMAGE),
        "POST", "/datasets/jane/cats/samples/", {},
        {"name": "a.jpg", "attributes": IMAGE, "priority": 0},
    ),
    (
        lambda c: c.create_sample("jane/cats", "a.jpg", IMAGE, metadata={"cam": 3}, priority=5),
        "POST", "/datasets/jane/cats/samples/", {},
        {"name": "a.jpg", "attributes": IMAGE, "priority": 5, "metadata": {"cam": 3}},
    ),
    (
        lambda c: c.create_samples_bulk(
            "jane/cats", ({"name": n, "attributes": IMAGE} for n in "ab")
        ),
        "POST", "/datasets/jane/cats/samples_bulk/", {},
        [{"name": "a", "attributes": IMAGE}, {"name": "b", "attributes": IMAGE}],
    ),
    (lambda c: c.update_sample("u-1", priority=3), "PATCH", "/samples/u-1/", {}, {"priority": 3}),
    (lambda c: c.delete_sample("u-1"), "DELETE", "/samples/u-1/", {}, None),
    (lambda c: c.get_label("u-1", "ground-truth"), "GET", "/labels/u-1/ground-truth/", {}, None),
    (
        lambda c: c.put_label("u-1", "ground-truth", {"annotations": []}),
        "PUT", "/labels/u-1/ground-truth/", {},
        {"label_status": "PRELABELED", "attributes": {"annotations": []}},
    ),
    (
        lambda c: c.put_label(
            "u-1", "preds", {"annotations": []}, label_status="LABELED", score=0.9
        ),
        "PUT", "/labels/u-1/preds/", {},
        {"label_status": "LABELED", "attributes": {"annotations": []}, "score": 0.9},
    ),
    (
        lambda c: c.update_label("u-1", "ground-truth", label_status="REVIEWED"),
        "PATCH", "/labels/u-1/ground-truth/", {}, {"label_status": "REVIEWED"},
    ),
    (
        lambda c: c.update_label("u-1", "ground-truth", attributes={"annotations": []}, score=0.0),
        "PATCH", "/labels/u-1/ground-truth/", {}, {"attributes": {"annotations": []}, "score": 0.0},
    ),
    (
        lambda c: c.delete_label("u-1", "ground-truth"),
        "DELETE", "/labels/u-1/ground-truth/", {}, None,
    ),
    (lambda c: c.list_labelsets("jane/cats"), "GET", "/datasets/jane/cats/labelsets/", {}, None),
    (
        lambda c: c.create_labelset("jane/cats", "predictions"),
        "POST", "/datasets/jane/cats/labelsets/", {},
        {"name": "predictions", "description": "", "attributes": "{}"},
    ),
    (lambda c: c.list_releases("jane/cats"), "GET", "/datasets/jane/cats/releases/", {}, None),
    (
        lambda c: c.get_release("jane/cats", "v0.1"),
        "GET", "/datasets/jane/cats/releases/v0.1/", {}, None,
    ),
    (
        lambda c: c.create_release("jane/cats", "v0.1", "First."),
        "POST", "/datasets/jane/cats/releases/", {}, {"name": "v0.1", "description": "First."},
    ),
    (
        lambda c: c.delete_release("jane/cats", "v0.1"),
        "DELETE", "/datasets/jane/cats/releases/v0.1/", {}, None,
    ),
]  # fmt: skip


class TestEndpoints:
    @pytest.mark.parametrize(("call", "method", "path", "query", "body"), ENDPOINTS)
    def test_request_line_and_body(
        self,
        client: SegmentsClient,
        api: ScriptedApi,
        call: Callable[[SegmentsClient], Any],
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
    ) -> None:
        call(client)
        [sent] = api.sent
        assert (sent.method, sent.path, sent.query) == (method, path, query)
        if body is None:
            assert sent.body is None
        else:
            assert sent.headers["Content-Type"] == "application/json"
            assert sent.json() == body

    def test_every_request_carries_the_key_user_agent_and_both_timeouts(
        self, make_client: Callable[..., SegmentsClient], api: ScriptedApi
    ) -> None:
        client = make_client(connect_timeout=1.5, read_timeout=7, user_agent="relay-test/1")
        client.get_dataset("jane/cats")
        client.delete_release("jane/cats", "v1")
        for sent in api.sent:
            assert sent.headers["Authorization"] == f"APIKey {KEY}"
            assert sent.headers["User-Agent"] == "relay-test/1"
            assert sent.headers["Accept"] == "application/json"
            assert sent.timeout == (1.5, 7)

    def test_default_timeouts(self, client: SegmentsClient, api: ScriptedApi) -> None:
        client.get_user()
        assert api.sent[0].timeout == (3.05, 30.0)

    def test_names_are_quoted_as_single_path_segments(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        client.get_release("jane/my cats", "v1 #2?")
        assert urlsplit(api.sent[0].path).path == "/datasets/jane/my%20cats/releases/v1%20%232%3F/"

    def test_returns_parsed_json(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(200, {"uuid": "u-1", "name": "a.jpg"})
        assert client.get_sample("u-1") == {"uuid": "u-1", "name": "a.jpg"}

    def test_empty_answer_is_none(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(204, b"")
        assert client.delete_sample("u-1") is None
        api.answer(200, b"")
        assert client.api_status() is None

    def test_non_json_success_is_an_api_error(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(200, "<html>proxy login</html>")
        with pytest.raises(ApiError, match="not JSON") as caught:
            client.get_user()
        assert caught.value.body == "<html>proxy login</html>"

    def test_redirects_are_errors_not_followed(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(301, "", {"Location": f"{BASE}/datasets/jane/cats/samples"})
        with pytest.raises(ApiError) as caught:
            client.create_sample("jane/cats", "a.jpg", IMAGE)
        assert caught.value.status == 301
        assert len(api.sent) == 1


STORAGE = "http://storage.test/bucket/"
PRESIGNED_FIELDS = {"acl": "public-read", "key": "assets/jane/u-9.png", "policy": "p0licy"}
ASSET = {
    "uuid": "u-9",
    "filename": "mask.png",
    "url": f"{STORAGE}assets/jane/u-9.png",
    "presignedPostFields": {"url": STORAGE, "fields": PRESIGNED_FIELDS},
}


class TestUploadAsset:
    def test_reserves_then_posts_the_file_to_the_presigned_url(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(201, ASSET)
        api.answer(204, b"")
        assert client.upload_asset(b"\x89PNG-bytes", "mask.png") == ASSET
        reserve, upload = api.sent
        assert (reserve.method, reserve.path, reserve.json()) == (
            "POST",
            "/assets/",
            {"filename": "mask.png"},
        )
        assert (upload.method, upload.path) == ("POST", STORAGE)
        assert upload.headers["Content-Type"].startswith("multipart/form-data")
        assert "Authorization" not in upload.headers
        for name, value in PRESIGNED_FIELDS.items():
            assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in upload.body
        assert b'name="file"; filename="mask.png"' in upload.body
        assert b"\x89PNG-bytes" in upload.body

    def test_a_refused_upload_raises(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(201, ASSET)
        api.answer(403, "<Error><Code>AccessDenied</Code></Error>")
        with pytest.raises(PermissionDeniedError) as caught:
            client.upload_asset(b"png")
        assert str(caught.value) == (
            "POST /bucket/ -> 403: <Error><Code>AccessDenied</Code></Error>"
        )

    def test_a_failed_upload_is_retried_without_reserving_again(
        self, make_client: Callable[..., SegmentsClient], api: ScriptedApi, sleeps: list[float]
    ) -> None:
        api.answer(201, ASSET)
        api.answer(503, "")
        api.answer(204, b"")
        assert make_client(max_retries=1).upload_asset(b"png")["url"] == ASSET["url"]
        assert [sent.path for sent in api.sent] == ["/assets/", STORAGE, STORAGE]
        assert len(sleeps) == 1


class TestCompression:
    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.create_sample("jane/cats", "a.jpg", IMAGE),
            lambda c: c.create_samples_bulk("jane/cats", [{"name": "a.jpg", "attributes": IMAGE}]),
            lambda c: c.update_sample("u-1", name="b.jpg"),
            lambda c: c.put_label("u-1", "ground-truth", {"annotations": []}),
            lambda c: c.update_label("u-1", "ground-truth", label_status="LABELED"),
        ],
    )
    def test_sample_and_label_writes_are_gzipped_when_asked(
        self,
        make_client: Callable[..., SegmentsClient],
        api: ScriptedApi,
        call: Callable[[SegmentsClient], Any],
    ) -> None:
        call(make_client(compress=True))
        call(make_client())
        compressed, plain = api.sent
        assert compressed.headers["Content-Encoding"] == "gzip"
        assert compressed.headers["Content-Type"] == "application/json"
        assert "Content-Encoding" not in plain.headers
        assert compressed.json() == plain.json()
        assert gzip.decompress(compressed.body) == plain.body

    def test_other_writes_are_never_gzipped(
        self, make_client: Callable[..., SegmentsClient], api: ScriptedApi
    ) -> None:
        make_client(compress=True).create_release("jane/cats", "v1")
        assert "Content-Encoding" not in api.sent[0].headers


class TestArguments:
    @pytest.mark.parametrize(
        "dataset",
        [
            "jane",
            "jane/",
            "/cats",
            "jane/cats/x",
            " jane/cats",
            "jane/cats ",
            "",
            "jane//cats",
            None,
        ],
    )
    def test_dataset_must_be_owner_slash_name(
        self, client: SegmentsClient, api: ScriptedApi, dataset: Any
    ) -> None:
        with pytest.raises(ValueError, match="owner/name") as caught:
            client.get_dataset(dataset)
        assert repr(dataset) in str(caught.value)
        assert api.sent == []

    def test_split_dataset(self) -> None:
        assert split_dataset("jane/cats") == ("jane", "cats")

    @pytest.mark.parametrize(
        ("call", "what"),
        [
            (lambda c: c.get_sample(""), "uuid"),
            (lambda c: c.get_sample("a/b"), "uuid"),
            (lambda c: c.get_label("u-1", ""), "labelset"),
            (lambda c: c.get_release("jane/cats", "v/1"), "release name"),
            (lambda c: c.get_collaborator("jane/cats", ""), "username"),
            (lambda c: c.get_user("a/b"), "username"),
        ],
    )
    def test_path_segments_must_be_plain_names(
        self, client: SegmentsClient, call: Callable[[SegmentsClient], Any], what: str
    ) -> None:
        with pytest.raises(ValueError, match=what):
            call(client)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"base_url": "segments.test"}, "base_url"),
            ({"base_url": "ftp://segments.test"}, "base_url"),
            ({"api_key": ""}, "api_key"),
            ({"max_retries": -1}, "max_retries"),
        ],
    )
    def test_constructor_rejects_bad_settings(self, options: dict, message: str) -> None:
        settings = {"base_url": BASE, "api_key": KEY, **options}
        with pytest.raises(ValueError, match=message):
            SegmentsClient(settings.pop("base_url"), settings.pop("api_key"), **settings)

    def test_per_page_must_be_positive(self, client: SegmentsClient) -> None:
        with pytest.raises(ValueError, match="per_page"):
            list(client.iter_samples("jane/cats", per_page=0))


class TestSession:
    def test_own_session_pools_connections_without_urllib3_retries(self) -> None:
        with SegmentsClient(BASE, KEY) as client:
            for scheme in ("http://", "https://"):
                adapter = client._session.get_adapter(scheme + "segments.test")
                assert isinstance(adapter, HTTPAdapter)
                assert adapter.poolmanager.connection_pool_kw["maxsize"] >= 10
                assert adapter.max_retries.total == 0

    def test_a_given_session_is_left_open(self, api: ScriptedApi) -> None:
        session = requests.Session()
        session.mount("http://", api)
        with SegmentsClient(BASE, KEY, session=session) as client:
            client.get_user()
        assert session.get(f"{BASE}/user", timeout=1).json() == {"ok": True}
        assert "Authorization" not in session.headers, "the key must not leak into a shared session"
        session.close()


class TestPaging:
    def test_pages_until_a_short_page(self, client: SegmentsClient, api: ScriptedApi) -> None:
        for page in (
            [{"name": "a"}, {"name": "b"}],
            [{"name": "c"}, {"name": "d"}],
            [{"name": "e"}],
        ):
            api.answer(200, page)
        names = [s["name"] for s in client.iter_samples("jane/cats", per_page=2)]
        assert names == ["a", "b", "c", "d", "e"]
        assert [sent.query["page"] for sent in api.sent] == ["1", "2", "3"]
        assert {sent.query["per_page"] for sent in api.sent} == {"2"}

    def test_stops_at_invalid_page(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(200, [{"name": "a"}, {"name": "b"}])
        api.answer(404, {"detail": "Invalid page."})
        assert [s["name"] for s in client.iter_samples("jane/cats", per_page=2)] == ["a", "b"]

    def test_missing_dataset_still_raises(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(404, {"detail": "Not found."})
        with pytest.raises(NotFoundError):
            list(client.iter_samples("jane/cats"))

    def test_is_lazy(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(200, [{"name": "a"}])
        samples = client.iter_samples("jane/cats", per_page=1)
        assert api.sent == []
        assert next(samples) == {"name": "a"}
        assert len(api.sent) == 1

    @pytest.mark.parametrize(
        ("filters", "query"),
        [
            ({}, {}),
            ({"name_contains": "a&b c"}, {"name__contains": "a&b c"}),
            ({"label_status": "LABELED"}, {"label_status": "LABELED"}),
            ({"label_status": ["LABELED", "REVIEWED"]}, {"label_status": "LABELED,REVIEWED"}),
            ({"labelset": "ground-truth"}, {"labelset": "ground-truth"}),
        ],
    )
    def test_sample_filters(
        self, client: SegmentsClient, api: ScriptedApi, filters: dict, query: dict
    ) -> None:
        api.answer(200, [])
        assert list(client.iter_samples("jane/cats", **filters)) == []
        [sent] = api.sent
        assert sent.path == "/datasets/jane/cats/samples/"
        assert sent.query == {**query, "per_page": "100", "page": "1"}

    @pytest.mark.parametrize(
        ("owner", "path"), [(None, "/user/datasets/"), ("john", "/users/john/datasets/")]
    )
    def test_list_datasets(
        self, client: SegmentsClient, api: ScriptedApi, owner: str | None, path: str
    ) -> None:
        api.answer(200, [{"name": "cats"}])
        assert list(client.list_datasets(owner)) == [{"name": "cats"}]
        assert (api.sent[0].path, api.sent[0].query) == (path, {"per_page": "100", "page": "1"})


class TestIdempotentHelpers:
    def test_create_or_get_sample_creates(self, client: SegmentsClient, api: ScriptedApi) -> None:
        api.answer(201, {"uuid": "u-1", "name": "a.jpg"})
        assert client.create_or_get_sample("jane/cats", "a.jpg", IMAGE) == (
            {"uuid": "u-1", "name": "a.jpg"},
            True,
        )

    def test_create_or_get_sample_finds_the_exact_name(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(400, DUPLICATE)
        api.answer(200, [{"uuid": "u-0", "name": "a.jpg.bak"}, {"uuid": "u-1", "name": "a.jpg"}])
        sample, created = client.create_or_get_sample("jane/cats", "a.jpg", IMAGE)
        assert (sample["uuid"], created) == ("u-1", False)
        assert api.sent[1].query["name__contains"] == "a.jpg"

    def test_create_or_get_sample_reraises_when_not_found(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(400, DUPLICATE)
        api.answer(200, [{"uuid": "u-0", "name": "a.jpg.bak"}])
        with pytest.raises(AlreadyExistsError):
            client.create_or_get_sample("jane/cats", "a.jpg", IMAGE)

    def test_create_or_get_sample_passes_other_errors(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(400, {"attributes": ["Invalid image."]})
        with pytest.raises(ValidationError):
            client.create_or_get_sample("jane/cats", "a.jpg", IMAGE)
        assert len(api.sent) == 1

    @pytest.mark.parametrize(
        ("status", "body", "result"),
        [(200, {"label_status": "LABELED"}, {"label_status": "LABELED"}), (404, {}, None)],
    )
    def test_get_label_or_none(
        self, client: SegmentsClient, api: ScriptedApi, status: int, body: dict, result: Any
    ) -> None:
        api.answer(status, body)
        assert client.get_label_or_none("u-1", "ground-truth") == result

    def test_get_label_or_none_passes_other_errors(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(401, {"detail": "Invalid token."})
        with pytest.raises(AuthenticationError):
            client.get_label_or_none("u-1", "ground-truth")

    @pytest.mark.parametrize(("first", "created"), [(201, True), (400, False)])
    def test_create_or_get_release(
        self, client: SegmentsClient, api: ScriptedApi, first: int, created: bool
    ) -> None:
        api.answer(first, {"name": "v1"} if created else {"name": ["Release already exists."]})
        api.answer(200, {"name": "v1", "status": "SUCCEEDED"})
        release, was_created = client.create_or_get_release("jane/cats", "v1", "First.")
        assert (release["name"], was_created) == ("v1", created)
        assert [s.method for s in api.sent] == (["POST"] if created else ["POST", "GET"])


class TestRetries:
    def test_no_retries_by_default(
        self, client: SegmentsClient, api: ScriptedApi, sleeps: list[float]
    ) -> None:
        api.answer(503, {"detail": "Service unavailable."})
        with pytest.raises(ServerError):
            client.get_user()
        assert (len(api.sent), sleeps) == (1, [])

    @pytest.mark.parametrize(
        "failure",
        [
            (503, "", {}),
            (502, "", {}),
            (429, {"detail": "Request was throttled."}, {}),
            (408, "", {}),
            requests.ConnectionError("refused"),
            requests.ReadTimeout("slow"),
        ],
    )
    def test_retryable_failures_are_retried(
        self,
        make_client: Callable[..., SegmentsClient],
        api: ScriptedApi,
        sleeps: list[float],
        failure: Any,
    ) -> None:
        for _ in range(2):
            api.fail(failure) if isinstance(failure, Exception) else api.answer(*failure)
        api.answer(200, {"username": "jane"})
        assert make_client(max_retries=2).get_user() == {"username": "jane"}
        assert len(api.sent) == 3
        assert len(sleeps) == 2
        assert 0 <= sleeps[0] <= 0.5
        assert 0 <= sleeps[1] <= 1.0

    def test_gives_up_after_max_retries(
        self, make_client: Callable[..., SegmentsClient], api: ScriptedApi, sleeps: list[float]
    ) -> None:
        for _ in range(4):
            api.fail(requests.ConnectionError("refused"))
        with pytest.raises(ApiConnectionError):
            make_client(max_retries=3).get_user()
        assert (len(api.sent), len(sleeps)) == (4, 3)

    def test_retry_after_is_honoured_and_capped(
        self, make_client: Callable[..., SegmentsClient], api: ScriptedApi, sleeps: list[float]
    ) -> None:
        api.answer(429, {"detail": "Request was throttled."}, {"Retry-After": "2"})
        api.answer(429, {"detail": "Request was throttled."}, {"Retry-After": "3600"})
        api.answer(200, {})
        make_client(max_retries=2).get_user()
        assert sleeps == [2.0, 30.0]

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
    def test_permanent_failures_are_not_retried(
        self,
        make_client: Callable[..., SegmentsClient],
        api: ScriptedApi,
        sleeps: list[float],
        status: int,
    ) -> None:
        api.answer(status, {"detail": "nope"})
        with pytest.raises(SegmentsError) as caught:
            make_client(max_retries=3).get_user()
        assert not caught.value.retryable
        assert (len(api.sent), sleeps) == (1, [])

    def test_rate_limit_error_surfaces_retry_after(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.answer(429, {"detail": "Request was throttled."}, {"Retry-After": "5"})
        with pytest.raises(RateLimitError) as caught:
            client.get_user()
        assert caught.value.retry_after == 5.0

    def test_timeouts_are_request_timeout_errors(
        self, client: SegmentsClient, api: ScriptedApi
    ) -> None:
        api.fail(requests.ReadTimeout("read timed out"))
        with pytest.raises(RequestTimeoutError):
            client.get_user()


class TestBackoffDelay:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"),
        [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (10, 30.0), (10_000, 30.0)],
    )
    def test_full_jitter_under_a_capped_exponential(self, attempt: int, ceiling: float) -> None:
        assert backoff_delay(attempt, rand=lambda: 1.0) == ceiling
        assert backoff_delay(attempt, rand=lambda: 0.0) == 0.0
        assert backoff_delay(attempt, rand=lambda: 0.5) == ceiling / 2

    @pytest.mark.parametrize("attempt", range(12))
    def test_real_jitter_stays_in_bounds(self, attempt: int) -> None:
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1

    @pytest.mark.parametrize(
        ("retry_after", "delay"), [(0.0, 0.0), (2.0, 2.0), (30.0, 30.0), (600.0, 30.0), (-1.0, 0.0)]
    )
    def test_retry_after_wins_but_is_capped(self, retry_after: float, delay: float) -> None:
        assert backoff_delay(0, retry_after=retry_after, rand=lambda: 1.0) == delay

    def test_base_and_cap_are_adjustable(self) -> None:
        assert backoff_delay(3, base=2, cap=10, rand=lambda: 1.0) == 10.0
        assert backoff_delay(2, base=2, cap=10, rand=lambda: 1.0) == 8.0

    def test_negative_attempt_is_a_bug(self) -> None:
        with pytest.raises(ValueError, match="attempt"):
            backoff_delay(-1)


class TestSecrecy:
    def test_repr_hides_the_key(self, client: SegmentsClient) -> None:
        assert KEY not in repr(client)
        assert repr(client) == f"SegmentsClient(base_url={BASE!r}, max_retries=0)"

    @pytest.mark.parametrize(
        "failure",
        [
            (401, {"detail": "Invalid token."}, {}),
            (500, "boom", {}),
            (429, "", {"Retry-After": "1"}),
            requests.ConnectionError("refused"),
            requests.ReadTimeout("slow"),
        ],
    )
    def test_errors_and_logs_never_show_the_key(
        self,
        make_client: Callable[..., SegmentsClient],
        api: ScriptedApi,
        sleeps: list[float],
        caplog: pytest.LogCaptureFixture,
        failure: Any,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        for _ in range(2):
            api.fail(failure) if isinstance(failure, Exception) else api.answer(*failure)
        with pytest.raises(SegmentsError) as caught:
            make_client(max_retries=1).get_user()
        error = caught.value
        for text in (str(error), repr(error), repr(vars(error)), caplog.text):
            assert KEY not in text
