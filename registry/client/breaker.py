"""Circuit breakers, one per model: stop calling a model that keeps failing, probe it later.

A breaker counts the results of the last `min_requests` calls of its model (a count-based
sliding window). When the window is full and its failure rate reaches
`failure_rate_pct`, the breaker opens: calls skip the model and go straight to the next
one of the chain. After `cooldown_s` it is half-open: exactly one call is let through as
a probe; its success closes the breaker with a fresh window, its failure opens it again
for another cooldown. A probe that never reports (its caller gave up) frees the slot
after one more cooldown.

Models are shared between features, so breakers are keyed by model name; each decision
uses the circuit settings of the feature asking (SPEC §1.2 `circuit_breaker`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from registry.definitions.policy import CircuitBreaker

log = logging.getLogger("promptreg.client")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class Breaker:
    """The circuit of one model."""

    def __init__(self, model: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.clock = clock
        self.state = CLOSED
        self.opened_at = 0.0
        self.probe_at: float | None = None  # when the half-open probe was let through
        self.opens = 0
        self._window: deque[bool] = deque(maxlen=1)  # True = failure
        self._lock = threading.Lock()

    def allow(self, settings: CircuitBreaker) -> bool:
        """May the model be called now? (In half-open, True once: the caller is the probe.)"""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = self.clock()
            if self.state == OPEN and now - self.opened_at >= settings.cooldown_s:
                self.state = HALF_OPEN
                self.probe_at = None
            if self.state == HALF_OPEN:
                stale = self.probe_at is not None and now - self.probe_at >= settings.cooldown_s
                if self.probe_at is None or stale:
                    self.probe_at = now
                    return True
            return self.state == CLOSED

    def is_open(self) -> bool:
        """True while calls must skip the model (open, or half-open with a probe out)."""
        return self.state != CLOSED

    def record(self, ok: bool, settings: CircuitBreaker) -> None:
        """Count one call's result; open or close the circuit accordingly."""
        with self._lock:
            if self.state == HALF_OPEN:
                if ok:
                    self.state = CLOSED
                    self._window = deque(maxlen=settings.min_requests)
                    log.info("circuit of %s closed: the probe call succeeded", self.model)
                else:
                    self._open("the probe call failed")
                return
            if self.state == OPEN:  # a call let through before the circuit opened
                return
            window = self._window
            if window.maxlen != settings.min_requests:
                window = self._window = deque(window, maxlen=settings.min_requests)
            window.append(not ok)
            if ok or len(window) < settings.min_requests:
                return
            failures = sum(window)
            if failures * 100 >= settings.failure_rate_pct * len(window):
                self._open(f"{failures} of the last {len(window)} calls failed")

    def _open(self, why: str) -> None:
        self.state = OPEN
        self.opened_at = self.clock()
        self.probe_at = None
        self.opens += 1
        self._window.clear()
        log.warning("circuit of %s opened: %s", self.model, why)


class Breakers:
    """The breakers of one client, created on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._by_model: dict[str, Breaker] = {}
        self._lock = threading.Lock()

    def __getitem__(self, model: str) -> Breaker:
        breaker = self._by_model.get(model)
        if breaker is None:
            with self._lock:
                breaker = self._by_model.setdefault(model, Breaker(model, self.clock))
        return breaker

    def states(self) -> dict[str, str]:
        """Model -> circuit state, for stats and logs."""
        return {model: b.state for model, b in self._by_model.items()}

    def opens(self) -> int:
        """How many times any circuit opened."""
        return sum(b.opens for b in self._by_model.values())
