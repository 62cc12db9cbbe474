"""Usage reporting off the request path: a bounded queue, a worker thread, batched POSTs.

`UsageReporter.submit` is all a run pays: one append to a bounded deque, which wakes no
thread (a `queue.Queue` would wake the worker, and switch the request's thread out, on
every event). A full queue drops the event and counts it rather than blocking the
application. A daemon thread sends batches to `POST /v1/usage` every `flush_s` seconds,
or as soon as `batch_size` events wait; a failed batch is retried a few times with
backoff — each event carries a client-generated id, so the server never counts a
retried event twice (SPEC §8). What is queued when the process exits normally is
flushed by an `atexit` hook (and by `close()`), within `close_timeout_s`.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("promptreg.client")


@dataclass(slots=True)
class UsageEvent:
    """One run, as `POST /v1/usage` takes it."""

    id: str
    feature: str
    version: int
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    outcome: str
    estimated_input_tokens: int
    cost_usd: float | None = None
    at: float = 0.0  # epoch seconds when the run ended (0: when the server receives it)

    def as_dict(self) -> dict[str, Any]:
        """The wire form (no `cost_usd` key when the price is unknown; `at` in ISO 8601)."""
        out: dict[str, Any] = {
            "id": self.id,
            "feature": self.feature,
            "version": self.version,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "estimated_input_tokens": self.estimated_input_tokens,
        }
        if self.cost_usd is not None:
            out["cost_usd"] = self.cost_usd
        if self.at:
            out["at"] = datetime.fromtimestamp(self.at, UTC).isoformat()
        return out


class EventIds:
    """Unique event ids: a random per-process prefix and a counter (no uuid per event)."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(8)
        self._next = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self._next)}"


class UsageReporter:
    """Sends usage events to a promptreg server in the background."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        batch_size: int = 200,
        flush_s: float = 1.0,
        max_queue: int = 10_000,
        timeout_s: float = 5.0,
        retries: int = 3,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.retries = retries
        self.close_timeout_s = close_timeout_s
        # A deque, not a queue.Queue: appending wakes no thread, so the request path never
        # pays for a context switch. The worker wakes every flush_s, or when a batch is full.
        self.queue: deque[UsageEvent] = deque()
        self.counts = {"dropped": 0, "sent": 0, "accepted": 0, "rejected": 0, "failed": 0}
        self._in_flight = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._closed = False

    def submit(self, event: UsageEvent) -> None:
        """Queue one event; never blocks (a full queue, or a closed reporter, drops it)."""
        worker = self._worker
        if worker is None or not worker.is_alive():  # first use, or a forked child
            self._start()
        pending = self.queue
        if len(pending) >= self.max_queue or self._closed:
            self._dropped()
            return
        pending.append(event)
        if len(pending) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _dropped(self) -> None:
        with self._lock:
            self.counts["dropped"] += 1
            dropped = self.counts["dropped"]
        if dropped == 1 or dropped % 1000 == 0:
            log.warning("usage queue full or closed: %d event(s) dropped so far", dropped)

    def _start(self) -> None:
        with self._lock:
            if self._closed or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(target=self._work, name="promptreg-usage", daemon=True)
            self._worker.start()
            atexit.register(self.close)

    def _work(self) -> None:
        import httpx  # in the worker thread: importing it is not the application's cost

        with httpx.Client(headers=self.headers, timeout=self.timeout_s) as http:
            while not self._stop.is_set():
                self._wake.wait(self.flush_s)
                self._wake.clear()
                self._drain(http)
            self._drain(http)  # what is left at close

    def _drain(self, http: httpx.Client) -> None:
        pending = self.queue
        while pending:
            batch: list[UsageEvent] = []
            with self._lock:
                self._in_flight += 1
            try:
                while pending and len(batch) < self.batch_size:
                    batch.append(pending.popleft())
                self._send(http, batch)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _send(self, http: httpx.Client, batch: list[UsageEvent]) -> None:
        import httpx

        body = {"events": [event.as_dict() for event in batch]}
        delay = 0.2
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                response = http.post(f"{self.url}/v1/usage", json=body)
            except httpx.HTTPError as exc:
                problem = repr(exc)
            else:
                if response.status_code < 300:
                    self._accepted(batch, response)
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the server refuses this batch; sending it again will not help
            if attempt < self.retries:
                # closing: retry quickly, so that close() ends within close_timeout_s
                time.sleep(min(delay, 0.1) if self._stop.is_set() else delay)
                delay *= 2
        with self._lock:
            self.counts["failed"] += len(batch)
        log.warning("usage: %d event(s) could not be reported: %s", len(batch), problem)

    def _accepted(self, batch: list[UsageEvent], response: httpx.Response) -> None:
        try:
            answer = response.json()
            accepted = int(answer.get("accepted", len(batch)))
            rejected = list(answer.get("rejected") or [])
        except (ValueError, TypeError, AttributeError):
            accepted, rejected = len(batch), []
        with self._lock:
            self.counts["sent"] += len(batch)
            self.counts["accepted"] += accepted
            self.counts["rejected"] += len(rejected)
        if rejected:
            log.warning(
                "usage: the server rejected %d event(s), e.g. %s", len(rejected), rejected[0]
            )

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send what is queued now; True once it was handed over, False after `timeout_s`."""
        self._wake.set()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if not self.queue and not self._in_flight:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Send what is queued (within `close_timeout_s`) and stop the worker. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        atexit.unregister(self.close)
        self._stop.set()
        self._wake.set()
        if worker is not None:
            worker.join(timeout=self.close_timeout_s)
            if worker.is_alive():
                log.warning("usage: gave up flushing after %.1f s", self.close_timeout_s)
