"""SageMaker asynchronous inference results (source type "sagemaker"), delivered through SNS.

The endpoint's `AsyncInferenceNotificationConfig` publishes to an SNS topic (SuccessTopic,
ErrorTopic) subscribed to this source; `relay.hooks.sns` checks the envelope, and its `Message` is
the JSON result notice read here:
- "Completed": a prediction for the sample at `requestParameters.inputLocation` (`s3://bucket/key`,
  the key as stored), whose output the worker reads from `responseParameters.outputLocation`; or,
  when the notice carries the `responseBody` (`IncludeInferenceResponseIn`), converted right here.
- "Failed": a failed prediction with the `failureReason`.
Notices are deduplicated on `inferenceId`, which SNS keeps across retries (`sagemaker:<id>`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import Any

from config.sources import Source
from relay.convert import ConversionError, convert_output
from relay.errors import PayloadError
from relay.hooks import sns
from relay.hooks.base import HookContext, HookResult, InboundRequest, Notice, Prediction, SampleRef

COMPLETED = "Completed"
FAILED = "Failed"
DEFAULT_EVENT_NAME = "InferenceResult"


def receive(source: Source, request: InboundRequest, ctx: HookContext) -> HookResult:
    """Answer one SNS delivery: confirm a subscription, or read an inference result notice."""
    return sns.receive_sns(request, source, ctx, notices_from_message)


def notices_from_message(message: str, sns_message_id: str) -> list[Notice]:
    """Turn an SNS Message (a SageMaker result notice as a JSON string) into one notice.

    SNS's MessageId is not used: the inferenceId names the result however it was delivered.
    """
    try:
        doc = json.loads(message)
    except json.JSONDecodeError:
        raise _problem("", "is not JSON") from None
    return [result_notice(doc)]


def result_notice(doc: Any) -> Notice:
    """Turn a parsed SageMaker async inference notice into a prediction notice."""
    if not isinstance(doc, dict):
        raise _problem("", "must be a JSON object")
    inference_id = _text(doc, "inferenceId")
    status = _text(doc, "invocationStatus")
    request_parameters = _mapping(doc, "requestParameters")
    input_location = _text(request_parameters, "inputLocation", "requestParameters")
    bucket, key = parse_s3_uri(input_location, "requestParameters.inputLocation")
    prediction = Prediction(
        sample=SampleRef(bucket=bucket, key=key),
        model=_optional_text(request_parameters, "endpointName", "requestParameters"),
    )
    if status == COMPLETED:
        prediction = with_result(prediction, doc)
    elif status == FAILED:
        reason = _optional_text(doc, "failureReason") or "no reason given"
        prediction = replace(prediction, failed=f"sagemaker inference failed: {reason}")
    else:
        raise _problem("invocationStatus", f"must be {COMPLETED} or {FAILED}, not {status!r}")
    event_name = _optional_text(doc, "eventName") or DEFAULT_EVENT_NAME
    message_id = f"sagemaker:{inference_id}"
    return Notice(message_id=message_id, prediction=prediction, event_name=event_name)


def with_result(prediction: Prediction, doc: dict[str, Any]) -> Prediction:
    """Add a completed inference's output: converted inline, or its S3 location for the worker."""
    if doc.get("responseBody") is not None:
        return with_inline_output(prediction, response_body(doc["responseBody"]))
    response_parameters = _mapping(doc, "responseParameters")
    output_location = _text(response_parameters, "outputLocation", "responseParameters")
    parse_s3_uri(output_location, "responseParameters.outputLocation")
    return replace(prediction, output_location=output_location)


def with_inline_output(prediction: Prediction, body: bytes) -> Prediction:
    """Convert an inline model output; one that does not convert makes the prediction failed."""
    try:
        output = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return replace(prediction, failed="sagemaker output is not JSON")
    try:
        converted = convert_output(output)
    except ConversionError as exc:
        return replace(prediction, failed=f"sagemaker output could not be imported: {exc}")
    return replace(
        prediction,
        objects=converted.objects,
        score=converted.score,
        model_version=converted.model_version,
        image_width=converted.image_width,
        image_height=converted.image_height,
    )


def response_body(value: Any) -> bytes:
    """Decode `responseBody`: `{"content": <base64>, "encoding": "BASE64"}` or plain text."""
    if isinstance(value, str):
        return value.encode()
    if not isinstance(value, dict):
        raise _problem("responseBody", "must be an object or a string")
    content = _text(value, "content", "responseBody")
    encoding = _optional_text(value, "encoding", "responseBody")
    if encoding is None:
        return content.encode()
    if encoding.upper() != "BASE64":
        raise _problem("responseBody.encoding", f"must be BASE64, not {encoding!r}")
    try:
        return base64.b64decode(content, validate=True)
    except binascii.Error:
        raise _problem("responseBody.content", "is not base64") from None


def parse_s3_uri(uri: str, field: str) -> tuple[str, str]:
    """Split `s3://bucket/key` into bucket and key, the key as written (not URL-decoded)."""
    # Not urlsplit: it would cut a key at '?' or '#', which are legal in S3 keys.
    bucket, slash, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not slash or not bucket or not key:
        raise _problem(field, f"must be an s3://bucket/key URI, not {uri!r}")
    return bucket, key


def _problem(field: str, problem: str) -> PayloadError:
    where = f"Message.{field}" if field else "Message"
    return PayloadError(f"SNS {where} {problem}", fields={where: [problem]})


def _mapping(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise _problem(name, "is missing" if value is None else "must be an object")
    return value


def _text(doc: dict[str, Any], name: str, path: str = "") -> str:
    value = _optional_text(doc, name, path)
    if value is None:
        raise _problem(f"{path}.{name}" if path else name, "is missing")
    return value


def _optional_text(doc: dict[str, Any], name: str, path: str = "") -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise _problem(f"{path}.{name}" if path else name, "must be a string")
    return value or None
