"""The one Segments.ai API client: every call the relay and the workers make goes through here."""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import sleep
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from relay.segments.errors import (
    AlreadyExistsError,
    ApiError,
    NotFoundError,
    SegmentsError,
    error_for_exception,
    error_for_response,
    parse_body,
)

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "segments-relay"
# The SDK release whose paths and bodies this client follows (shared contract, section 3); the live
# API compares it on /api_status/ to warn about outdated clients.
SDK_CONTRACT_VERSION = "1.33.0"
DEFAULT_TASK_ATTRIBUTES = {"format_version": "0.1", "categories": [{"id": 1, "name": "object"}]}
POOL_SIZE = 10
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0


def backoff_delay(
    attempt: int,
    *,
    base: float = RETRY_BASE_SECONDS,
    cap: float = RETRY_CAP_SECONDS,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Return the seconds to wait before retry `attempt` (0 = first retry).

    Full jitter over a capped exponential (base * 2**attempt); a server's Retry-After wins, capped.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    # Clamp the exponent so huge attempt counts cannot overflow a float.
    return rand() * min(cap, base * 2 ** min(attempt, 64))


def split_dataset(dataset: str) -> tuple[str, str]:
    """Split an "owner/name" dataset id, rejecting anything else."""
    parts = dataset.split("/") if isinstance(dataset, str) else []
    if len(parts) != 2 or not all(part and part == part.strip() for part in parts):
        raise ValueError(f"dataset must look like 'owner/name', got {dataset!r}")
    return parts[0], parts[1]


def _segment(value: str, what: str) -> str:
    # Quote each path segment; a "/" would still be split by the server after decoding.
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"{what} must be a non-empty string without '/', got {value!r}")
    return quote(value, safe="")


def _dataset_path(dataset: str, *rest: str) -> str:
    owner, name = split_dataset(dataset)
    return "/".join(["", "datasets", quote(owner, safe=""), quote(name, safe=""), *rest])


def _is_invalid_page(error: NotFoundError) -> bool:
    return "invalid page" in error.message.lower()


class SegmentsClient:
    """A Segments.ai API client over one pooled HTTP session, returning parsed JSON."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        max_retries: int = 0,
        compress: bool = False,
        session: requests.Session | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.compress = compress
        self.user_agent = user_agent
        self._owns_session = session is None
        self._session = session or _pooled_session()

    def __repr__(self) -> str:
        return f"SegmentsClient(base_url={self.base_url!r}, max_retries={self.max_retries})"

    def __enter__(self) -> SegmentsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session, unless the caller passed it in."""
        if self._owns_session:
            self._session.close()

    # -- status and users -------------------------------------------------------------------

    def api_status(self) -> Any:
        """Check that the API answers and accepts the key (what the SDK does on construction)."""
        return self._request("GET", "/api_status/", params={"lib_version": SDK_CONTRACT_VERSION})

    def get_user(self, username: str | None = None) -> dict:
        """Return the key's own user, or the named user."""
        path = "/user" if username is None else f"/users/{_segment(username, 'username')}"
        return self._request("GET", path)

    # -- datasets ---------------------------------------------------------------------------

    def list_datasets(self, owner: str | None = None, *, per_page: int = 100) -> Iterator[dict]:
        """Yield the datasets the key can see, or those of `owner`, page by page."""
        user = "/user" if owner is None else f"/users/{_segment(owner, 'owner')}"
        return self._paged(f"{user}/datasets/", {}, per_page)

    def get_dataset(self, dataset: str) -> dict:
        """Return one dataset."""
        return self._request("GET", _dataset_path(dataset, ""))

    def create_dataset(
        self,
        name: str,
        *,
        task_type: str = "segmentation-bitmap",
        task_attributes: Mapping[str, Any] | None = None,
        description: str = "",
        public: bool = False,
        category: str = "other",
        organization: str | None = None,
        **fields: Any,
    ) -> dict:
        """Create a dataset for the key's user, or for `organization`; `fields` go in as given."""
        owner = "/user"
        if organization is not None:
            owner = f"/organizations/{_segment(organization, 'organization')}"
        body = {
            "name": name,
            "description": description,
            "task_type": task_type,
            "task_attributes": task_attributes or DEFAULT_TASK_ATTRIBUTES,
            "category": category,
            "public": public,
            **fields,
        }
        return self._request("POST", f"{owner}/datasets/", body=body)

    def update_dataset(self, dataset: str, **fields: Any) -> dict:
        """Change the given fields of a dataset."""
        return self._request("PATCH", _dataset_path(dataset, ""), body=fields)

    def delete_dataset(self, dataset: str) -> None:
        """Delete a dataset with its samples, labels and releases."""
        self._request("DELETE", _dataset_path(dataset, ""))

    # -- collaborators (no trailing slash after the username, as the SDK sends it) ----------

    def add_collaborator(self, dataset: str, username: str, role: str = "labeler") -> dict:
        """Give a user a role on a dataset."""
        body = {"user": username, "role": role}
        return self._request("POST", _dataset_path(dataset, "collaborators", ""), body=body)

    def get_collaborator(self, dataset: str, username: str) -> dict:
        """Return a user's collaboration on a dataset."""
        return self._request("GET", self._collaborator_path(dataset, username))

    def update_collaborator(self, dataset: str, username: str, role: str) -> dict:
        """Change a collaborator's role."""
        path = self._collaborator_path(dataset, username)
        return self._request("PATCH", path, body={"role": role})

    def delete_collaborator(self, dataset: str, username: str) -> None:
        """Remove a collaborator from a dataset."""
        self._request("DELETE", self._collaborator_path(dataset, username))

    @staticmethod
    def _collaborator_path(dataset: str, username: str) -> str:
        return _dataset_path(dataset, "collaborators", _segment(username, "username"))

    # -- samples ----------------------------------------------------------------------------

    def iter_samples(
        self,
        dataset: str,
        *,
        name_contains: str | None = None,
        label_status: str | Iterable[str] | None = None,
        labelset: str | None = None,
        per_page: int = 100,
    ) -> Iterator[dict]:
        """Yield a dataset's samples, optionally filtered, fetching one page at a time."""
        if label_status is not None and not isinstance(label_status, str):
            label_status = ",".join(label_status)
        query = {
            "name__contains": name_contains,
            "label_status": label_status,
            "labelset": labelset,
        }
        filters = {key: value for key, value in query.items() if value is not None}
        return self._paged(_dataset_path(dataset, "samples", ""), filters, per_page)

    def find_sample(self, dataset: str, name: str) -> dict | None:
        """Return the sample named exactly `name`, or None."""
        matches = self.iter_samples(dataset, name_contains=name)
        return next((sample for sample in matches if sample.get("name") == name), None)

    def get_sample(self, uuid: str, labelset: str | None = None) -> dict:
        """Return a sample, with a summary of its label in `labelset` when given."""
        params = {"labelset": labelset} if labelset is not None else None
        return self._request("GET", f"/samples/{_segment(uuid, 'uuid')}/", params=params)

    def create_sample(
        self,
        dataset: str,
        name: str,
        attributes: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        priority: float = 0,
    ) -> dict:
        """Create a sample; raise AlreadyExistsError when the dataset has one with this name."""
        body = {"name": name, "attributes": attributes, "priority": priority}
        if metadata is not None:
            body["metadata"] = metadata
        path = _dataset_path(dataset, "samples", "")
        return self._request("POST", path, body=body, compress=self.compress)

    def create_samples_bulk(self, dataset: str, samples: Iterable[Mapping[str, Any]]) -> list[dict]:
        """Create many samples in one call; existing names come back unchanged."""
        path = _dataset_path(dataset, "samples_bulk", "")
        return self._request("POST", path, body=list(samples), compress=self.compress)

    def update_sample(self, uuid: str, **fields: Any) -> dict:
        """Change the given fields of a sample."""
        path = f"/samples/{_segment(uuid, 'uuid')}/"
        return self._request("PATCH", path, body=fields, compress=self.compress)

    def delete_sample(self, uuid: str) -> None:
        """Delete a sample and its labels."""
        self._request("DELETE", f"/samples/{_segment(uuid, 'uuid')}/")

    def create_or_get_sample(
        self,
        dataset: str,
        name: str,
        attributes: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[dict, bool]:
        """Create a sample, or return the existing one of that name; the flag is True if new."""
        try:
            return self.create_sample(dataset, name, attributes, metadata=metadata), True
        except AlreadyExistsError:
            existing = self.find_sample(dataset, name)
            if existing is None:
                raise
            return existing, False

    # -- labels -----------------------------------------------------------------------------

    def get_label(self, sample_uuid: str, labelset: str) -> dict:
        """Return a sample's label in a labelset; NotFoundError when it has none."""
        return self._request("GET", _label_path(sample_uuid, labelset))

    def get_label_or_none(self, sample_uuid: str, labelset: str) -> dict | None:
        """Return a sample's label in a labelset, or None when it has none."""
        try:
            return self.get_label(sample_uuid, labelset)
        except NotFoundError:
            return None

    def put_label(
        self,
        sample_uuid: str,
        labelset: str,
        attributes: Mapping[str, Any],
        *,
        label_status: str = "PRELABELED",
        score: float | None = None,
    ) -> dict:
        """Create or replace a sample's label in a labelset."""
        body: dict[str, Any] = {"label_status": label_status, "attributes": attributes}
        if score is not None:
            body["score"] = score
        path = _label_path(sample_uuid, labelset)
        return self._request("PUT", path, body=body, compress=self.compress)

    def update_label(
        self,
        sample_uuid: str,
        labelset: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        label_status: str | None = None,
        score: float | None = None,
    ) -> dict:
        """Change only the given parts of an existing label."""
        given = {"attributes": attributes, "label_status": label_status, "score": score}
        body = {key: value for key, value in given.items() if value is not None}
        path = _label_path(sample_uuid, labelset)
        return self._request("PATCH", path, body=body, compress=self.compress)

    def delete_label(self, sample_uuid: str, labelset: str) -> None:
        """Delete a sample's label in a labelset."""
        self._request("DELETE", _label_path(sample_uuid, labelset))

    # -- labelsets --------------------------------------------------------------------------

    def list_labelsets(self, dataset: str) -> list[dict]:
        """Return a dataset's labelsets."""
        return self._request("GET", _dataset_path(dataset, "labelsets", ""))

    def create_labelset(self, dataset: str, name: str, description: str = "") -> dict:
        """Add a labelset to a dataset."""
        # The SDK sends `attributes` as the string "{}", and the live API expects exactly that.
        body = {"name": name, "description": description, "attributes": "{}"}
        return self._request("POST", _dataset_path(dataset, "labelsets", ""), body=body)

    # -- releases ---------------------------------------------------------------------------

    def list_releases(self, dataset: str) -> list[dict]:
        """Return a dataset's releases (the API does not page them)."""
        return self._request("GET", _dataset_path(dataset, "releases", ""))

    def get_release(self, dataset: str, name: str) -> dict:
        """Return one release; poll it until `status` is SUCCEEDED or FAILED."""
        return self._request("GET", self._release_path(dataset, name))

    def create_release(self, dataset: str, name: str, description: str = "") -> dict:
        """Start a release (it begins PENDING); raise AlreadyExistsError on a taken name."""
        body = {"name": name, "description": description}
        return self._request("POST", _dataset_path(dataset, "releases", ""), body=body)

    def delete_release(self, dataset: str, name: str) -> None:
        """Delete a release."""
        self._request("DELETE", self._release_path(dataset, name))

    def create_or_get_release(
        self, dataset: str, name: str, description: str = ""
    ) -> tuple[dict, bool]:
        """Create a release, or return the existing one of that name; the flag is True if new."""
        try:
            return self.create_release(dataset, name, description), True
        except AlreadyExistsError:
            return self.get_release(dataset, name), False

    @staticmethod
    def _release_path(dataset: str, name: str) -> str:
        return _dataset_path(dataset, "releases", _segment(name, "release name"), "")

    # -- assets -----------------------------------------------------------------------------

    def upload_asset(self, data: bytes, filename: str = "label.png") -> dict:
        """Upload a file (e.g. a segmentation bitmap PNG); the answer's `url` is where it lives."""
        asset = self._request("POST", "/assets/", body={"filename": filename})
        self._upload(asset["presignedPostFields"], filename, data)
        return asset

    # -- transport --------------------------------------------------------------------------

    def _paged(self, path: str, params: Mapping[str, str], per_page: int) -> Iterator[dict]:
        # Lists are bare arrays: stop at a short page, or at the 404 "Invalid page." past the end.
        if per_page < 1:
            raise ValueError(f"per_page must be >= 1, got {per_page}")
        page = 1
        while True:
            query = {**params, "per_page": per_page, "page": page}
            try:
                items = self._request("GET", path, params=query)
            except NotFoundError as error:
                if _is_invalid_page(error):
                    return
                raise
            yield from items
            if len(items) < per_page:
                return
            page += 1

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        compress: bool = False,
    ) -> Any:
        headers = {
            "Authorization": f"APIKey {self._api_key}",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if compress:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
        url = self.base_url + path
        return self._with_retries(
            lambda: self._exchange(method, url, path, params=params, data=data, headers=headers)
        )

    def _upload(self, presigned: Mapping[str, Any], filename: str, data: bytes) -> None:
        # A presigned S3 POST: its signed form fields authorise it, so the API key stays home.
        url = presigned["url"]
        files = {"file": (filename, data)}
        headers = {"User-Agent": self.user_agent}
        self._with_retries(
            lambda: self._exchange(
                "POST",
                url,
                urlsplit(url).path,
                data=presigned["fields"],
                files=files,
                headers=headers,
            )
        )

    def _with_retries(self, send: Callable[[], Any]) -> Any:
        """Run `send`, retrying retryable failures up to `max_retries` times with backoff."""
        attempt = 0
        while True:
            try:
                return send()
            except SegmentsError as error:
                if not error.retryable or attempt >= self.max_retries:
                    raise
                delay = backoff_delay(attempt, retry_after=getattr(error, "retry_after", None))
                log.warning("retrying Segments.ai call in %.2fs: %s", delay, error)
                sleep(delay)
                attempt += 1

    def _exchange(self, method: str, url: str, path: str, **options: Any) -> Any:
        """Send one HTTP request and return its parsed JSON, or raise the matching error."""
        try:
            response = self._session.request(
                method,
                url,
                timeout=self.timeout,
                # A redirected POST silently becomes a GET; surface redirects as errors instead.
                allow_redirects=False,
                **options,
            )
        except requests.RequestException as exc:
            raise error_for_exception(exc, method=method, path=path) from exc
        return _parse_response(response, method=method, path=path)


def _parse_response(response: requests.Response, *, method: str, path: str) -> Any:
    status = response.status_code
    if not 200 <= status < 300:
        raise error_for_response(
            status,
            parse_body(response.text),
            method=method,
            path=path,
            headers=response.headers,
        )
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        message = "the API answered with a body that is not JSON"
        raise ApiError(
            message, status=status, body=parse_body(response.text), method=method, path=path
        ) from None


def _label_path(sample_uuid: str, labelset: str) -> str:
    return f"/labels/{_segment(sample_uuid, 'sample uuid')}/{_segment(labelset, 'labelset')}/"


def _pooled_session() -> requests.Session:
    """Return a session with a connection pool big enough for threaded callers and no retries."""
    session = requests.Session()
    # Retries are ours (max_retries, or the Celery task's): urllib3's would multiply them silently.
    adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
