"""The sandbox's stand-in for object storage: presigned uploads, assets and release exports.

Like S3 these routes take no API key; faults never apply to them.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from relay.sandbox.api import no_content
from relay.sandbox.errors import REQUIRED, field_error, not_found
from relay.sandbox.resources import SUCCEEDED, release_status
from relay.sandbox.state import sandbox

storage = Blueprint("storage", __name__, url_prefix="/storage")


@storage.post("/")
def upload() -> Response:
    """Take a presigned multipart POST: the form's `key` says where, `file` is the content."""
    key, upload = request.form.get("key"), request.files.get("file")
    if not key:
        raise field_error("key", REQUIRED)
    if upload is None:
        raise field_error("file", REQUIRED)
    content_type = request.form.get("Content-Type") or upload.mimetype
    if not sandbox().store.fill_asset(key, upload.read(), content_type):
        raise field_error("key", "No upload was prepared for this key.")
    return no_content()


@storage.get("/assets/<owner>/<filename>")
def download_asset(owner: str, filename: str) -> Response:
    """The bytes of an uploaded asset."""
    asset = sandbox().store.get_asset(f"assets/{owner}/{filename}")
    if asset is None or asset["data"] is None:
        raise not_found()
    return Response(asset["data"], mimetype=asset["content_type"])


@storage.get("/releases/<uuid>.json")
def download_export(uuid: str) -> Response:
    """A succeeded release's export file."""
    release = sandbox().store.release_by_uuid(uuid)
    if release is None or release_status(release, time.time()) != SUCCEEDED:
        raise not_found()
    return Response(release["export"], mimetype="application/json")
