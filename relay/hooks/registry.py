"""Which module receives each source type."""

from __future__ import annotations

from collections.abc import Callable

from config.sources import Source
from relay.hooks import azure, gcs, minio, predictions, replicate, s3, sagemaker, segments
from relay.hooks.base import HookContext, HookResult, InboundRequest

Receiver = Callable[[Source, InboundRequest, HookContext], HookResult]

RECEIVERS: dict[str, Receiver] = {
    "s3": s3.receive,
    "minio": minio.receive,
    "gcs": gcs.receive,
    "azure": azure.receive,
    "predictions": predictions.receive,
    "replicate": replicate.receive,
    "sagemaker": sagemaker.receive,
    "segments": segments.receive,
}


def receiver_for(source_type: str) -> Receiver:
    """The receive function for a source type."""
    return RECEIVERS[source_type]
