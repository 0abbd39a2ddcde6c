"""When to try a failed call again: a pure decision over the error and the attempt count."""

from __future__ import annotations

from relay.segments import backoff_delay


def retry_delay(error: Exception, attempts: int, *, max_attempts: int, cap: float) -> float | None:
    """Seconds to wait before the next attempt, or None when the error is final."""
    if not getattr(error, "retryable", False) or attempts >= max_attempts:
        return None
    return backoff_delay(attempts, cap=cap, retry_after=getattr(error, "retry_after", None))
