"""Unit tests for the error hierarchy: status mapping, messages and Retry-After parsing."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest
import requests

from relay.segments.errors import (
    MAX_BODY_CHARS,
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
    api_message,
    error_for_exception,
    error_for_response,
    field_messages,
    parse_body,
    parse_retry_after,
)

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
DUPLICATE = {"name": ["A sample with this name already exists."]}


def make_error(status: int, body: object, headers: dict[str, str] | None = None) -> SegmentsError:
    return error_for_response(
        status, body, method="POST", path="/datasets/jane/cats/samples/", headers=headers, now=NOW
    )


class TestErrorForResponse:
    @pytest.mark.parametrize(
        ("status", "body", "expected"),
        [
            (400, {"name": ["This field is required."]}, ValidationError),
            (400, DUPLICATE, AlreadyExistsError),
            (400, {"name": ["Release with this name ALREADY EXISTS"]}, AlreadyExistsError),
            (400, {"detail": "A dataset with this name already exists."}, AlreadyExistsError),
            (400, "name already exists", ValidationError),  # text bodies carry no field messages
            (400, [{"name": ["A sample with this name already exists."]}], ValidationError),
            (401, {"detail": "Authentication credentials were not provided."}, AuthenticationError),
            (401, {"detail": "Invalid token."}, AuthenticationError),
            (403, {"detail": "You do not have permission."}, PermissionDeniedError),
            (404, {"detail": "Not found."}, NotFoundError),
            (404, {"detail": "Invalid page."}, NotFoundError),
            (404, DUPLICATE, NotFoundError),  # only 400 and 409 read "already exists"
            (408, "", RequestTimeoutError),
            (409, {"detail": "Conflict."}, AlreadyExistsError),
            (409, "", AlreadyExistsError),
            (422, {"attributes": ["Invalid label."]}, ValidationError),
            (429, {"detail": "Request was throttled."}, RateLimitError),
            (500, "<html>Internal Server Error</html>", ServerError),
            (502, "", ServerError),
            (503, {"detail": "Service unavailable."}, ServerError),
            (504, "504 Gateway Time-out", ServerError),
            (599, "", ServerError),
            (301, "", ApiError),
            (405, {"detail": 'Method "PUT" not allowed.'}, ApiError),
            (410, "", ApiError),
            (413, "Request Entity Too Large", ApiError),
            (426, "", ApiError),
        ],
    )  # fmt: skip
    def test_status_and_body_choose_the_class(
        self, status: int, body: object, expected: type[SegmentsError]
    ) -> None:
        error = make_error(status, body)
        assert type(error) is expected
        assert (error.status, error.body) == (status, body)
        assert (error.method, error.path) == ("POST", "/datasets/jane/cats/samples/")

    @pytest.mark.parametrize(
        ("cls", "retryable"),
        [
            (AuthenticationError, False),
            (PermissionDeniedError, False),
            (NotFoundError, False),
            (AlreadyExistsError, False),
            (ValidationError, False),
            (ApiError, False),
            (RateLimitError, True),
            (ServerError, True),
            (RequestTimeoutError, True),
            (ApiConnectionError, True),
        ],
    )
    def test_only_transient_failures_are_retryable(
        self, cls: type[SegmentsError], retryable: bool
    ) -> None:
        assert issubclass(cls, SegmentsError)
        assert cls.retryable is retryable

    def test_validation_error_carries_the_field_messages(self) -> None:
        body = {"name": ["This field is required."], "priority": "A valid number is required."}
        error = make_error(400, body)
        assert error.fields == {
            "name": ["This field is required."],
            "priority": ["A valid number is required."],
        }

    @pytest.mark.parametrize(
        ("headers", "retry_after"),
        [
            ({"Retry-After": "2"}, 2.0),
            ({"Retry-After": "Mon, 01 Jan 2024 12:00:30 GMT"}, 30.0),
            ({"Retry-After": "soon"}, None),
            ({}, None),
            (None, None),
        ],
    )
    def test_rate_limit_reads_retry_after(
        self, headers: dict[str, str] | None, retry_after: float | None
    ) -> None:
        error = make_error(429, {"detail": "Request was throttled."}, headers)
        assert isinstance(error, RateLimitError)
        assert error.retry_after == retry_after

    def test_rate_limit_header_lookup_is_case_insensitive_on_real_responses(self) -> None:
        headers = requests.structures.CaseInsensitiveDict({"retry-after": "7"})
        error = make_error(429, "", headers)
        assert isinstance(error, RateLimitError)
        assert error.retry_after == 7.0


class TestMessages:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"detail": "Not found."}, "Not found."),
            (DUPLICATE, "name: A sample with this name already exists."),
            ({"name": ["a", "b"], "priority": ["c"]}, "name: a b; priority: c"),
            ([{"name": ["x"]}, {"name": ["y"]}], "{'name': ['x']}; {'name': ['y']}"),
            ("  Bad Gateway \n", "Bad Gateway"),
            ("x" * 500, "x" * 200),
            ("", "HTTP 418"),
            ({}, "HTTP 418"),
            ([], "HTTP 418"),
            (None, "HTTP 418"),
            ({"detail": 5}, "HTTP 418"),
        ],
    )
    def test_api_message_prefers_the_apis_own_words(self, body: object, message: str) -> None:
        assert api_message(body, default="HTTP 418") == message

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({"detail": "Not found."}, {}),
            (DUPLICATE, DUPLICATE),
            ({"name": "Required.", "detail": "x"}, {"name": ["Required."]}),
            ({"points": [1, 2]}, {"points": ["1", "2"]}),
            ("text", {}),
            ([{"name": ["x"]}], {}),
            (None, {}),
        ],
    )
    def test_field_messages(self, body: object, fields: dict[str, list[str]]) -> None:
        assert field_messages(body) == fields

    def test_str_names_method_path_status_and_message(self) -> None:
        error = make_error(404, {"detail": "Not found."})
        assert str(error) == "POST /datasets/jane/cats/samples/ -> 404: Not found."
        assert (
            repr(error) == "NotFoundError('POST /datasets/jane/cats/samples/ -> 404: Not found.')"
        )

    def test_str_without_a_status(self) -> None:
        error = ApiConnectionError("connection failed: refused", method="GET", path="/user")
        assert str(error) == "GET /user: connection failed: refused"

    def test_str_of_a_bare_error_is_its_message(self) -> None:
        assert str(SegmentsError("something broke")) == "something broke"

    def test_survives_pickling_between_processes(self) -> None:
        error = make_error(429, {"detail": "Request was throttled."}, {"Retry-After": "3"})
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is RateLimitError
        assert (str(copy), copy.retry_after, copy.body) == (str(error), 3.0, error.body)


class TestParseBody:
    @pytest.mark.parametrize(
        ("text", "body"),
        [
            ('{"detail": "Not found."}', {"detail": "Not found."}),
            ("[1, 2]", [1, 2]),
            ("<html>oops</html>", "<html>oops</html>"),
            ("", ""),
            ("y" * (MAX_BODY_CHARS + 50), "y" * MAX_BODY_CHARS),
        ],
    )
    def test_json_is_parsed_and_text_is_truncated(self, text: str, body: object) -> None:
        assert parse_body(text) == body


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("0", 0.0),
            ("2", 2.0),
            (" 120 ", 120.0),
            ("1.5", 1.5),
            ("-3", 0.0),
            ("Mon, 01 Jan 2024 12:01:00 GMT", 60.0),
            ("Monday, 01-Jan-24 12:00:10 GMT", 10.0),
            ("Mon Jan  1 12:00:05 2024", 5.0),
            ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),  # a date in the past means "now"
            ("soon", None),
            ("nan", None),
            ("inf", None),
            ("Mon, 99 Foo 2024", None),
            ("", None),
            ("   ", None),
            (None, None),
        ],
    )
    def test_seconds_dates_and_garbage(self, value: str | None, seconds: float | None) -> None:
        assert parse_retry_after(value, now=NOW) == seconds


class TestErrorForException:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (requests.ReadTimeout("read timed out"), RequestTimeoutError),
            (requests.ConnectTimeout("connect timed out"), RequestTimeoutError),
            (requests.ConnectionError("refused"), ApiConnectionError),
            (requests.exceptions.ChunkedEncodingError("broken"), ApiConnectionError),
            (requests.TooManyRedirects("loop"), ApiError),
            (requests.exceptions.InvalidURL("bad"), ApiError),
        ],
    )
    def test_transport_failures(
        self, exc: requests.RequestException, expected: type[SegmentsError]
    ) -> None:
        error = error_for_exception(exc, method="GET", path="/user")
        assert type(error) is expected
        assert error.status is None
        assert str(exc) in str(error)
