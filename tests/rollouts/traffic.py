"""Usage as clients make it: events posted to /v1/usage (at once, or as background traffic)
with a behaviour per version, and a scripted model `call` for the client library whose
answer depends on the version whose prompt it was given."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx

from .scenario import FEATURE


@dataclass(frozen=True)
class Arm:
    """How one version behaves in posted usage."""

    errors_pct: float = 0.0
    latency_ms: float = 200.0
    cost_usd: float = 0.001

    def events(self, version: int, count: int, feature: str = FEATURE) -> list[dict[str, Any]]:
        """`count` usage events of `version`: every n-th one an error, the rest answered."""
        errors = round(count * self.errors_pct / 100)
        every = count / errors if errors else 0
        out = []
        for i in range(count):
            failed = errors > 0 and int(i % every) == 0
            # A little spread in cost, none in latency: one histogram bucket per arm.
            cost = self.cost_usd * (1 + 0.1 * ((i % 5) - 2) / 2)
            out.append(
                {
                    "id": uuid.uuid4().hex,
                    "feature": feature,
                    "version": version,
                    "model": "gpt-4o",
                    "input_tokens": 100,
                    "output_tokens": 0 if failed else 50,
                    "estimated_input_tokens": 100,
                    "latency_ms": self.latency_ms,
                    "outcome": "degraded" if failed else "ok",
                    **({} if failed else {"cost_usd": cost}),
                }
            )
        return out


HEALTHY = Arm()


def post_usage(http: httpx.Client, base: str, events: list[dict[str, Any]]) -> None:
    """POST the events to /v1/usage (in batches of 500) and check every one was taken."""
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        answer = http.post(f"{base}/v1/usage", json={"events": batch})
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == len(batch), answer.text


@dataclass
class Traffic:
    """Usage posted in the background, a batch per arm every `every_s`, until stopped."""

    http: httpx.Client
    base: str
    arms: dict[int, Arm]  # version -> behaviour
    per_batch: int = 10
    every_s: float = 0.05
    posted: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    failure: BaseException | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for version, arm in self.arms.items():
                    post_usage(self.http, self.base, arm.events(version, self.per_batch))
                    self.posted += self.per_batch
                self._stop.wait(self.every_s)  # the pace of the traffic, not a wait for a result
        except BaseException as exc:  # reported by __exit__
            self.failure = exc

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.failure is not None:
            raise AssertionError(f"posting usage failed: {self.failure!r}")


# -- a scripted model call ------------------------------------------------------------------

Behaviour = Callable[[], Any]  # what the call does for one version: return or raise


def answer(output_tokens: int = 50) -> Behaviour:
    """Answer with usage (input tokens as estimated, `output_tokens` out)."""

    def behave() -> Any:
        return SimpleNamespace(
            text="Thanks, we are on it.",
            usage={"input_tokens": 20, "output_tokens": output_tokens},
        )

    return behave


def failing() -> Behaviour:
    """Fail the call, as a provider outage would."""

    def behave() -> Any:
        raise RuntimeError("the model refused")

    return behave


class ScriptedCall:
    """A `call` whose behaviour depends on the version whose prompt it was given; it counts
    the calls per version marker."""

    def __init__(self, by_marker: dict[str, Behaviour]) -> None:
        self.by_marker = by_marker
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        max_output_tokens: int,
        stream: bool,
        timeout: float,
    ) -> Any:
        system = next(m["content"] for m in messages if m["role"] == "system")
        for marker, behave in self.by_marker.items():
            if f"({marker})" in system:
                with self._lock:
                    self.counts[marker] += 1
                return behave()
        raise AssertionError(f"no behaviour for the prompt {system!r}")
