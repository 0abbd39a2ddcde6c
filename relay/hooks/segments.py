"""Segments.ai's own webhooks (source type "segments"), delivered through Svix.

Segments.ai signs each message with the endpoint's `whsec_` secret in the Standard Webhooks scheme,
under the `svix-id`, `svix-timestamp` and `svix-signature` header names. The body is
`{"event_type", "created_at", "api_version", "dataset": "owner/name", "object": {...}, "text"}`.

`release.created` starts tracking that release (`object.name` in `dataset`): the relay polls it
until it has SUCCEEDED or FAILED and reports it like a release it created itself. Every other event
type (sample.created, label.updated, ...) is acknowledged and ignored, with the reason.
"""

from __future__ import annotations

import re

from config.releases import RELEASE_NAME_PATTERN, RELEASE_NAME_RULE
from config.sources import DATASET_PATTERN, Source
from relay.errors import PayloadError
from relay.hooks import standard_webhooks
from relay.hooks.base import Delivery, HookContext, InboundRequest, Notice, ReleaseRef
from relay.hooks.common import get_field, parse_json

TRACKED_EVENT = "release.created"


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> Delivery:
    """Verify a Segments.ai webhook and turn it into one notice."""
    message_id = standard_webhooks.verify(request, source.secrets, now=ctx.now())
    return Delivery([notice_for(parse_json(request.body), message_id)])


def notice_for(doc: object, message_id: str) -> Notice:
    """A release to track for `release.created`; an ignored notice for anything else."""
    if not isinstance(doc, dict):
        raise PayloadError("the body must be a JSON object", fields={"body": ["not an object"]})
    event_type = get_field(doc, "", "event_type", str)
    if event_type != TRACKED_EVENT:
        return Notice(
            message_id=message_id,
            ignored=f"event type {event_type} does not start anything; "
            f"only {TRACKED_EVENT} is tracked",
            event_name=event_type,
        )
    dataset = get_field(doc, "", "dataset", str)
    if not re.match(DATASET_PATTERN, dataset):
        raise PayloadError("dataset must be 'owner/name'", fields={"dataset": ["not owner/name"]})
    release = get_field(doc, "", "object", dict)
    name = get_field(release, "object", "name", str)
    if not re.match(RELEASE_NAME_PATTERN, name):
        raise PayloadError(
            f"object.name is not a release name the relay can follow ({RELEASE_NAME_RULE})",
            fields={"object.name": ["not a usable release name"]},
        )
    return Notice(
        message_id=message_id,
        release=ReleaseRef(dataset=dataset, name=name),
        event_name=event_type,
    )
