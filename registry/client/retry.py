"""Which failures are worth retrying on the same model, and how long to wait first.

Retried: network errors, timeouts, and HTTP 408/409/425/429/5xx — never another 4xx,
which the same request would only get again. The wait is exponential with jitter
(tenacity's wait strategies), and never shorter than what the provider asked for in
`Retry-After-Ms` / `Retry-After` (seconds or an HTTP date) or an error's `.retry_after`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property

from tenacity.wait import wait_base, wait_exponential, wait_random

from registry.client.result import ERROR, TIMEOUT

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class Backoff:
    """How long to wait between retries of one model: exponential, capped, with jitter."""

    initial_s: float = 0.5
    max_s: float = 8.0
    jitter_s: float = 0.5
    max_retry_after_s: float = 30.0  # a longer Retry-After moves on to the next model

    @cached_property
    def strategy(self) -> wait_base:
        """The tenacity wait: initial_s * 2**n, at most max_s, plus up to jitter_s."""
        return wait_exponential(multiplier=self.initial_s, max=self.max_s) + wait_random(
            0, self.jitter_s
        )


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK error carries (`.status_code` or `.response.status_code`)."""
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def retryable(exc: BaseException) -> bool:
    """Worth trying the same model again? Not for a 4xx other than 408/409/425/429."""
    if not isinstance(exc, Exception) or isinstance(exc, TypeError):
        return False
    status = status_of(exc)
    return status is None or status >= 500 or status in RETRYABLE_STATUS


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the provider asked to wait: `.retry_after`, `Retry-After-Ms` or `Retry-After`."""
    if exc is None:
        return None
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(float(value), 0.0)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None or not hasattr(headers, "get"):
        return None
    millis = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
    raw = headers.get("retry-after") or headers.get("Retry-After")
    try:
        if millis is not None:
            return max(float(millis) / 1000.0, 0.0)
        if raw is None:
            return None
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(str(raw)).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def kind_of(exc: BaseException) -> str:
    """`timeout` for a timeout of any SDK, else `error`."""
    timed_out = isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()
    return TIMEOUT if timed_out else ERROR


def describe(exc: BaseException) -> str:
    """One short line for an attempt's error: `HTTP 503: message` or `Type: message`."""
    status = status_of(exc)
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    head = f"HTTP {status}" if status is not None else type(exc).__name__
    return f"{head}: {text}" if text else head
