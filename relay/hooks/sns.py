"""Amazon SNS over HTTPS: envelope parsing, signature checks and subscription handshakes.

Shared by every family AWS delivers through an SNS topic: S3 event notifications (`relay.hooks.s3`)
and SageMaker asynchronous inference results. This module decides whether an envelope can be
trusted and answers SNS's control messages; the inner `Message` string is the caller's to parse.

Trust rules, with `source.verify` on (the default):
- the signature (SignatureVersion "1" = SHA1withRSA, "2" = SHA256withRSA) must check out against
  the certificate at `SigningCertURL`, which is fetched only from `https://sns.<region>.amazonaws.com`
  (or `.amazonaws.com.cn`) and cached per URL;
- `Timestamp` must be at most `MAX_MESSAGE_AGE` seconds old and at most `MAX_CLOCK_SKEW` seconds in
  the future;
- `TopicArn` must be in `source.topic_arns`. An empty list accepts every topic: anyone with an AWS
  account could then subscribe this endpoint to their own topic, which is why the relay warns about
  it at startup.

With `source.verify` off (local emulators such as LocalStack or moto, which cannot sign like AWS),
the envelope's shape is still validated but the signature, certificate, timestamp and topic checks
are skipped, and a SubscribeURL on any http(s) host is fetched to confirm a subscription.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from config.sources import Source
from relay.errors import PayloadError, SignatureError, UpstreamError
from relay.hooks.base import (
    Delivery,
    Handshake,
    HookContext,
    HookResult,
    InboundRequest,
    Notice,
)
from relay.hooks.common import parse_json

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
MESSAGE_TYPES = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

TYPE_HEADER = "x-amz-sns-message-type"
MESSAGE_ID_HEADER = "x-amz-sns-message-id"

# SNS's longest delivery policy retries for 3600 s in total, so a genuine delivery (first try or
# retry) is never older than this; anything older is a replay. Dedupe on MessageId covers the rest.
MAX_MESSAGE_AGE = 3600
# How far in the future a Timestamp may be, to allow for clock skew between AWS and this host.
MAX_CLOCK_SKEW = 300

# The fields AWS signs, in the order it signs them (Subject only when the message has one).
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_SIGNED_FIELDS = {
    NOTIFICATION: _NOTIFICATION_FIELDS,
    SUBSCRIPTION_CONFIRMATION: _CONFIRMATION_FIELDS,
    UNSUBSCRIBE_CONFIRMATION: _CONFIRMATION_FIELDS,
}
_OPTIONAL_FIELDS = ("Subject", "UnsubscribeURL", "SignatureVersion", "Signature", "SigningCertURL")
_SIGNATURE_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}

# Only SNS's own regional endpoints: no userinfo, no port, no look-alike suffix.
_SNS_HOST = r"sns\.[a-z]{2}(?:-[a-z]+)+-\d+\.amazonaws\.com(?:\.cn)?"
_SNS_HOST_PATTERN = re.compile(_SNS_HOST)
_CERT_URL_PATTERN = re.compile(rf"https://{_SNS_HOST}/[A-Za-z0-9._/-]*\.pem")
# urlsplit silently drops tabs and newlines; refuse URLs holding any whitespace or control byte.
_PLAIN_URL_PATTERN = re.compile(r"[!-~]+")


def is_sns_envelope(doc: Any) -> bool:
    """Tell an SNS JSON envelope from a bare message (raw message delivery, or not SNS at all)."""
    return isinstance(doc, dict) and doc.get("Type") in MESSAGE_TYPES


def parse_envelope(body: bytes, request: InboundRequest) -> dict[str, str]:
    """Parse an SNS HTTPS delivery body (sent as text/plain) and validate its shape."""
    return check_envelope(parse_json(body), request)


def check_envelope(doc: Any, request: InboundRequest) -> dict[str, str]:
    """Validate a parsed SNS envelope's fields for its Type; PayloadError names every bad field."""
    if not isinstance(doc, dict):
        raise PayloadError(
            "an SNS message must be a JSON object", fields={"body": ["not an object"]}
        )
    kind = doc.get("Type")
    if kind not in MESSAGE_TYPES:
        problem = "missing" if kind is None else f"must be one of {', '.join(MESSAGE_TYPES)}"
        raise PayloadError(f"SNS Type {problem}", fields={"Type": [problem]})
    header = request.header(TYPE_HEADER)
    if header and header != kind:
        problem = f"says {header!r} but the body's Type is {kind!r}"
        raise PayloadError(f"{TYPE_HEADER} {problem}", fields={TYPE_HEADER: [problem]})
    problems = _field_problems(doc, required=set(_SIGNED_FIELDS[kind]) - {"Subject"})
    if problems:
        raise PayloadError(f"invalid SNS {kind}: {', '.join(problems)}", fields=problems)
    parse_timestamp(doc["Timestamp"])
    return doc


def _field_problems(doc: dict[str, Any], required: set[str]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name in sorted(required | set(_OPTIONAL_FIELDS)):
        value = doc.get(name)
        if value is None and name in required:
            problems[name] = ["missing"]
        elif value is not None and not isinstance(value, str):
            problems[name] = ["must be a string"]
    return problems


def parse_timestamp(text: str) -> float:
    """Turn an SNS Timestamp ("2012-05-02T00:54:06.655Z") into epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        problem = "must be an ISO 8601 time with a zone, like 2012-05-02T00:54:06.655Z"
        raise PayloadError(f"SNS Timestamp {problem}", fields={"Timestamp": [problem]})
    return moment.timestamp()


def verify(envelope: dict[str, str], source: Source, ctx: HookContext) -> None:
    """Raise SignatureError unless AWS signed this message recently, for an allowed topic."""
    if not source.verify:
        return
    algorithm = signature_algorithm(envelope.get("SignatureVersion"))
    check_topic(envelope["TopicArn"], source.topic_arns)
    check_timestamp(parse_timestamp(envelope["Timestamp"]), ctx.now())
    signature = _decode_signature(envelope.get("Signature"))
    certificate = signing_certificate(envelope.get("SigningCertURL"), ctx)
    check_signature(certificate, signature, string_to_sign(envelope), algorithm)


def signature_algorithm(version: str | None) -> hashes.HashAlgorithm:
    """Map SignatureVersion to its hash: "1" is SHA1withRSA, "2" is SHA256withRSA."""
    if version not in _SIGNATURE_HASHES:
        raise SignatureError(f"unsupported SNS SignatureVersion {version!r}; expected '1' or '2'")
    return _SIGNATURE_HASHES[version]()


def check_topic(topic_arn: str, allowed: tuple[str, ...]) -> None:
    """Raise SignatureError if an allowlist is configured and the topic is not on it."""
    if allowed and topic_arn not in allowed:
        raise SignatureError(f"SNS topic {topic_arn} is not in this source's topic_arns")


def check_timestamp(sent_at: float, now: float) -> None:
    """Raise SignatureError for a message too old (a replay) or too far in the future."""
    age = now - sent_at
    if age > MAX_MESSAGE_AGE:
        raise SignatureError(
            f"the SNS message is {age:.0f} s old; over {MAX_MESSAGE_AGE} s is refused"
        )
    if -age > MAX_CLOCK_SKEW:
        raise SignatureError(
            f"the SNS message is {-age:.0f} s in the future; over {MAX_CLOCK_SKEW} s is refused"
        )


def _decode_signature(signature: str | None) -> bytes:
    if not signature:
        raise SignatureError("the SNS message carries no Signature")
    try:
        return base64.b64decode(signature, validate=True)
    except binascii.Error:
        raise SignatureError("the SNS Signature is not base64") from None


def string_to_sign(envelope: dict[str, str]) -> bytes:
    """Build the canonical text AWS signs: "Name\\nvalue\\n" for each signed field present."""
    names = _SIGNED_FIELDS[envelope["Type"]]
    text = "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope)
    # AWS never signs a lone surrogate; encode it anyway so the signature check refuses it.
    return text.encode("utf-8", "surrogatepass")


def is_cert_url_allowed(url: Any) -> bool:
    """Tell whether a SigningCertURL is a .pem on an SNS regional endpoint over https."""
    return isinstance(url, str) and _CERT_URL_PATTERN.fullmatch(url) is not None


def signing_certificate(url: Any, ctx: HookContext) -> x509.Certificate:
    """Return the certificate at an SNS SigningCertURL, fetched once per URL and cached."""
    if not is_cert_url_allowed(url):
        raise SignatureError(f"SigningCertURL {url!r} is not an SNS certificate URL")
    cached = ctx.cache.get(url)
    if cached is not None:
        return cached
    try:
        pem = ctx.http_get(url)
    except Exception as exc:
        raise UpstreamError(
            f"could not fetch the SNS signing certificate {url}: {type(exc).__name__}"
        ) from exc
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise UpstreamError(f"{url} did not return a PEM certificate") from None
    ctx.cache[url] = certificate
    return certificate


def check_signature(
    certificate: x509.Certificate,
    signature: bytes,
    message: bytes,
    algorithm: hashes.HashAlgorithm,
) -> None:
    """Raise SignatureError unless `signature` is the certificate's RSA PKCS#1 v1.5 signature."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureError("the SNS signing certificate does not hold an RSA key")
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SignatureError("the SNS signature does not match the message") from None


def is_confirm_url_allowed(url: str, topic_arn: str) -> bool:
    """Tell whether a SubscribeURL is SNS's own ConfirmSubscription call for this topic."""
    if not _PLAIN_URL_PATTERN.fullmatch(url):
        return False
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return (
        parts.scheme == "https"
        and _SNS_HOST_PATTERN.fullmatch(parts.netloc) is not None
        and parts.path == "/"
        and not parts.fragment
        and query.get("Action") == ["ConfirmSubscription"]
        and query.get("TopicArn") == [topic_arn]
    )


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return bool(_PLAIN_URL_PATTERN.fullmatch(url)) and parts.scheme in ("http", "https")


def handle_control(envelope: dict[str, str], source: Source, ctx: HookContext) -> Handshake | None:
    """Answer a (verified) subscription or unsubscribe confirmation; None for a Notification."""
    kind, topic = envelope["Type"], envelope["TopicArn"]
    if kind == UNSUBSCRIBE_CONFIRMATION:
        # Unsubscribing was someone's decision in AWS; re-subscribing here would undo it.
        note = f"SNS unsubscribed this endpoint from {topic}; not re-subscribing"
        return Handshake(status=200, body={"unsubscribed": topic}, note=note)
    if kind != SUBSCRIPTION_CONFIRMATION:
        return None
    url = envelope["SubscribeURL"]
    allowed = is_confirm_url_allowed(url, topic) if source.verify else _is_http_url(url)
    if not allowed:
        problem = f"not an SNS ConfirmSubscription URL for {topic}"
        raise PayloadError(f"SubscribeURL is {problem}", fields={"SubscribeURL": [problem]})
    try:
        ctx.http_get(url)
    except Exception as exc:
        # The URL carries the subscription token: name the failure, never the URL.
        raise UpstreamError(
            f"could not confirm the SNS subscription to {topic}: {type(exc).__name__}"
        ) from exc
    note = f"confirmed the SNS subscription to {topic}"
    return Handshake(status=200, body={"confirmed": topic}, note=note)


def receive_envelope(
    envelope: dict[str, str],
    source: Source,
    ctx: HookContext,
    on_message: Callable[[str, str], list[Notice]],
) -> HookResult:
    """Verify a checked envelope, answer control messages, and turn a Notification into notices."""
    verify(envelope, source, ctx)
    handshake = handle_control(envelope, source, ctx)
    if handshake is not None:
        return handshake
    return Delivery(on_message(envelope["Message"], envelope["MessageId"]))


def receive_sns(
    request: InboundRequest,
    source: Source,
    ctx: HookContext,
    on_message: Callable[[str, str], list[Notice]],
) -> HookResult:
    """Handle one SNS HTTPS delivery; `on_message(message_text, message_id)` parses the payload."""
    return receive_envelope(parse_envelope(request.body, request), source, ctx, on_message)
