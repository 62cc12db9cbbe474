"""What a guarded call gives back: the result, its usage and attempts, and the loud failures.

A model failing is never an exception to the caller: it becomes a degraded `Result`. Two
things are: the registry being unreachable before anything was ever cached
(`RegistryUnavailable`), and a stream that breaks after its first chunk was shown to the
user (`StreamInterrupted`), because no later text can honestly continue it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry.outcomes import DEGRADED, ERROR, FALLBACK, OK, OUTCOMES, REJECTED, TIMEOUT

__all__ = ["DEGRADED", "ERROR", "FALLBACK", "OK", "OUTCOMES", "REJECTED", "TIMEOUT"]

# The model call (SPEC §8): (model, messages, params, max_output_tokens, stream, timeout) ->
# a str or a Reply-like object; with stream=True an iterable of str chunks, optionally
# ending with a usage object. AsyncRegistry also takes an async function returning those.
ModelCall = Callable[[str, list[dict[str, str]], dict[str, Any], int, bool, float], Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one model call; `estimated` when the provider did not report them."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What a `call` may return instead of a bare string: the text and the provider's usage."""

    text: str
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one model: `ok`, `error`, `timeout`, or `skipped` (its circuit was open)."""

    model: str
    number: int
    outcome: str
    error: str | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class Result:
    """The answer of a guarded run, or the policy's degraded message when there is none."""

    feature: str
    version: int
    content_hash: str
    text: str
    model: str | None  # the model that answered (None when degraded or rejected)
    outcome: str  # one of OUTCOMES
    usage: Usage
    latency_s: float
    attempts: tuple[Attempt, ...]
    reason: str | None = None  # why it is degraded or rejected

    @property
    def degraded(self) -> bool:
        """True when `text` is the policy's degraded message, not a model's answer."""
        return self.outcome in (DEGRADED, REJECTED, TIMEOUT)

    @property
    def latency_ms(self) -> float:
        """Latency of the whole run (render, calls, waits) in milliseconds."""
        return self.latency_s * 1000.0


def usage_from(value: object) -> Usage | None:
    """A provider's usage object or mapping as `Usage` (`input_tokens`/`output_tokens`, or
    OpenAI's `prompt_tokens`/`completion_tokens`); None when it carries no token counts."""
    if value is None or isinstance(value, Usage):
        return value

    def tokens(*names: str) -> int | None:
        for name in names:
            raw = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
        return None

    read_in = tokens("input_tokens", "prompt_tokens")
    read_out = tokens("output_tokens", "completion_tokens")
    if read_in is None and read_out is None:
        return None
    return Usage(read_in or 0, read_out or 0)
