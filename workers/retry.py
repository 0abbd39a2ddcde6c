"""When to try a failed call again: a pure decision over the error and the attempt count."""

from __future__ import annotations

from relay.segments import backoff_delay


def retry_delay(error: Exception, attempts: int, *, max_attempts: int, cap: float) -> float | None:
    """Seconds to wait before the next attempt, or None when the error is final."""
    if not getattr(error, "retryable", False):
        return None
    # Waiting for something that is on its way has its own deadline, not the attempt limit.
    if attempts >= max_attempts and not getattr(error, "waiting", False):
        return None
    return backoff_delay(attempts, cap=cap, retry_after=getattr(error, "retry_after", None))
