"""Stand-ins for AWS in tests: a throw-away SNS signing certificate, signed envelopes, fake fetches.

The relay only fetches signing certificates from `https://sns.<region>.amazonaws.com`, so tests
cannot serve one from 127.0.0.1; instead a `FakeHttpGet` answers that URL with a self-signed test
certificate and `sign_sns` signs envelopes with its key.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from relay.hooks.base import HookContext, InboundRequest
from tests.hooks.inbound import inbound

FIXTURES = Path(__file__).parents[1] / "fixtures"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z: the fixed clock of every test context

# Written out from AWS's documentation rather than imported from relay.hooks.sns, so a mistake in
# the relay's canonical string cannot hide behind the same mistake here.
_CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn"]
_SIGNED_FIELDS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [*_CONFIRMATION_FIELDS, "Type"],
    "UnsubscribeConfirmation": [*_CONFIRMATION_FIELDS, "Type"],
}


def load_fixture(name: str) -> Any:
    """Read one JSON file from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_test_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    """Create an RSA key and a self-signed PEM certificate for it, as SNS would serve."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, self_signed_pem(key)


@functools.cache
def shared_test_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    """One test key and certificate for the whole run, for tests that need no second key."""
    return make_test_cert()


def self_signed_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """Return a self-signed PEM certificate for `key`, valid from 2020 to 2050."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start.replace(year=2050))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    """Build the text AWS signs for an SNS message ("Name\\nvalue\\n" per signed field present)."""
    names = _SIGNED_FIELDS[message["Type"]]
    text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
    return text.encode("utf-8", "surrogatepass")


def sign_sns(
    message: dict[str, Any], key: rsa.RSAPrivateKey, cert_url: str, version: str = "2"
) -> dict[str, Any]:
    """Return a copy of an SNS envelope signed with `key` as SignatureVersion `version`."""
    signed = {**message, "SignatureVersion": version, "SigningCertURL": cert_url}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(signed), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(signature).decode()
    return signed


def iso_time(epoch: float) -> str:
    """Format epoch seconds the way SNS writes Timestamp: 2012-05-02T00:54:06.655Z."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class FakeHttpGet:
    """An `http_get` that answers from a dict and records every URL it was asked for."""

    def __init__(self, responses: dict[str, bytes] | None = None) -> None:
        self.responses = dict(responses or {})
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.responses:
            raise ConnectionError(f"no fake response for {url}")
        return self.responses[url]


def make_context(http_get: FakeHttpGet, now: float = NOW) -> HookContext:
    """A HookContext with a fake fetch, a fixed clock and an empty cache."""
    return HookContext(http_get=http_get, now=lambda: now)


def make_request(
    body: bytes | dict[str, Any] | list[Any],
    headers: dict[str, str] | None = None,
    args: dict[str, str] | None = None,
) -> InboundRequest:
    """An InboundRequest POSTing `body` with exactly these headers (SNS sends text/plain)."""
    return inbound(body, headers=headers, args=args, content_type=None)


def real_headers(fixture: dict[str, str]) -> dict[str, str]:
    """Drop the explanatory `_comment` entries from a headers fixture."""
    return {name: value for name, value in fixture.items() if not name.startswith("_")}
