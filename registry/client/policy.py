"""The policy enforced around a model call: budget, chain, timeouts, retries, circuit, deadline.

A `Run` is one request. It renders and counts when it is created, and checks the budget
on the first model's estimate, as the server does (`registry.tokens.budget_verdict`).
`Run.steps()` is a generator that makes every decision and yields what to do next —
`Call` a model with a timeout, or `Sleep` before a retry — while a driver performs it:
`Registry` with plain calls and `time.sleep`, `AsyncRegistry` with awaits. Both share
this one engine; only the waiting differs.

Per model of the chain, in order: skip it while its circuit is open (`breaker`); try
it, retrying what `retry.retryable` allows up to `max_retries` times and waiting as
`retry.Backoff` and the provider's `Retry-After` say — tenacity's retry state machine
(`Retrying.iter`), stepped from here. A wait the deadline cannot hold moves on to the
next model instead; no attempt starts once `deadline_s` has passed, and each attempt's
timeout is the model's `timeout_s` cut to what is left. When the chain is exhausted the
result is the policy's degraded message — never the exception.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import DoAttempt, DoSleep, RetryCallState, Retrying, retry_if_exception

from registry.client.breaker import Breaker, Breakers
from registry.client.cache import CachedVersion
from registry.client.result import (
    DEGRADED,
    ERROR,
    FALLBACK,
    OK,
    REJECTED,
    TIMEOUT,
    Attempt,
    Reply,
    Result,
    Usage,
    usage_from,
)
from registry.client.retry import Backoff, describe, kind_of, retry_after, retryable
from registry.client.usage import EventIds, UsageEvent
from registry.definitions.policy import ModelRef
from registry.errors import StreamInterrupted
from registry.tokens import Estimate, budget_verdict

log = logging.getLogger("promptreg.client")
MIN_ATTEMPT_S = 0.01  # an attempt needs at least this much of the deadline left
SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Call:
    """Step: call `model` once (attempt `attempt` of it) within `timeout` seconds."""

    model: str
    timeout: float
    attempt: int


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait before the next attempt."""

    seconds: float


@dataclass(slots=True)
class Opened:
    """A stream that produced its first text chunk; the rest is still to be read."""

    first: str
    rest: Any  # the call's iterator (sync or async), positioned after `first`


class EmptyAnswer(Exception):
    """The model answered with no text at all (counts as a failure of that model)."""


class DeadlineExceeded(Exception):
    """The feature's `deadline_s` passed while a stream was still being read."""


Report = Callable[[UsageEvent], None]


@dataclass
class Run:
    """One guarded request of one feature version: its state and every decision."""

    entry: CachedVersion
    variables: Mapping[str, Any]
    stream: bool
    breakers: Breakers
    backoff: Backoff
    report: Report | None = None
    new_id: Callable[[], str] = field(default_factory=EventIds)
    default_deadline_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    attempts: list[Attempt] = field(default_factory=list)
    answer: tuple[int, str, Any] | None = None  # (chain index, model, Reply or Opened)
    final: Result | None = None
    cut_by_deadline: bool = False  # the deadline, not the models, ended the chain
    _parts: list[str] = field(default_factory=list)
    _usage: Usage | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()
        entry, policy = self.entry, self.entry.policy
        self.messages = entry.compiled.render(self.variables)
        first = policy.models[0].model
        self.estimate = Estimate.of(
            entry.models[first], entry.count(first, self.messages), policy.max_output_tokens
        )
        self.verdict = budget_verdict(policy, self.estimate)
        self.wire = [m.as_dict() for m in self.messages]
        deadline_s = policy.deadline_s or self.default_deadline_s
        self.deadline = None if deadline_s is None else self.started + deadline_s

    # -- what the driver reads -----------------------------------------------------------
    @property
    def rejected(self) -> bool:
        """True when the request is over budget: no model is called."""
        return not self.verdict.allowed

    @property
    def params(self) -> dict[str, Any]:
        """The policy's model parameters (a copy per call)."""
        return dict(self.entry.policy.params)

    @property
    def max_output_tokens(self) -> int:
        """The output cap passed to every call."""
        return self.entry.policy.max_output_tokens

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - self.clock()

    def expired(self) -> bool:
        """True when no new attempt may start."""
        left = self.remaining()
        return left is not None and left < MIN_ATTEMPT_S

    def opened(self) -> Opened | None:
        """The stream that answered (after `steps()`), if any."""
        return self.answer[2] if self.answer is not None else None

    # -- the decisions -------------------------------------------------------------------
    def steps(self) -> Generator[Call | Sleep, Any, None]:
        """Walk the chain; the driver sends each call's value or throws its exception."""
        policy = self.entry.policy
        circuit = policy.circuit_breaker
        for index, ref in enumerate(policy.models):
            if self.expired():
                self.cut_by_deadline = True
                return
            breaker = self.breakers[ref.model]
            if not breaker.allow(circuit):
                self._note(ref.model, 0, SKIPPED, "circuit open", 0.0)
                continue
            retrying = self._retrying(ref, breaker)
            state = RetryCallState(retrying, None, (), {})
            while True:
                try:
                    action = retrying.iter(state)
                except Exception:  # out of retries, or not worth retrying: next model
                    break
                if isinstance(action, DoSleep):
                    state.prepare_for_next_attempt()
                    yield Sleep(float(action))
                elif isinstance(action, DoAttempt):
                    started = self.clock()
                    try:
                        value = yield Call(ref.model, self._timeout(ref), state.attempt_number)
                        if not self.stream:
                            value = _reply(value)
                    except Exception as exc:
                        breaker.record(False, circuit)
                        took = self.clock() - started
                        self._note(
                            ref.model, state.attempt_number, kind_of(exc), describe(exc), took
                        )
                        state.set_exception((type(exc), exc, exc.__traceback__))
                    else:
                        breaker.record(True, circuit)
                        self._note(
                            ref.model, state.attempt_number, OK, None, self.clock() - started
                        )
                        state.set_result(value)
                else:
                    self.answer = (index, ref.model, action)
                    return

    def _retrying(self, ref: ModelRef, breaker: Breaker) -> Retrying:
        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > ref.max_retries or breaker.is_open():
                return True
            wait = state.upcoming_sleep
            if math.isinf(wait):  # a Retry-After too long to honour
                return True
            left = self.remaining()
            if left is not None and wait + MIN_ATTEMPT_S >= left:
                self.cut_by_deadline = True
                return True
            return False

        def wait(state: RetryCallState) -> float:
            backoff: float = self.backoff.strategy(state)
            outcome = state.outcome
            after = retry_after(outcome.exception()) if outcome is not None else None
            if after is None:
                return backoff
            return math.inf if after > self.backoff.max_retry_after_s else max(after, backoff)

        retrying = Retrying(stop=stop, wait=wait, retry=retry_if_exception(retryable), reraise=True)
        retrying.begin()  # its statistics, which `iter` updates
        return retrying

    def _timeout(self, ref: ModelRef) -> float:
        left = self.remaining()
        return ref.timeout_s if left is None else max(min(ref.timeout_s, left), MIN_ATTEMPT_S)

    def chunk_timeout(self) -> float:
        """How long the next stream chunk may take (the answering model's timeout_s, cut)."""
        assert self.answer is not None
        ref = self.entry.policy.models[self.answer[0]]
        return self._timeout(ref)

    def _note(self, model: str, number: int, outcome: str, error: str | None, took: float) -> None:
        self.attempts.append(Attempt(model, number, outcome, error, took))

    # -- streams -------------------------------------------------------------------------
    def chunk(self, item: Any) -> str | None:
        """Text to yield for one streamed item (None for a trailing usage object)."""
        if isinstance(item, str):
            if item:
                self._parts.append(item)
                return item
            return None
        self._usage = usage_from(item) or self._usage
        return None

    def check_deadline(self) -> None:
        """Raise DeadlineExceeded when the deadline passed during a stream."""
        if self.deadline is not None and self.clock() >= self.deadline:
            raise DeadlineExceeded(f"deadline of {self.deadline - self.started:g} s passed")

    def finish_stream(self) -> Result:
        """The result of a stream that ran to its end (or that its reader closed)."""
        assert self.answer is not None
        index, model, _ = self.answer
        return self._answered(index, model, "".join(self._parts), self._usage)

    def interrupted(self, exc: BaseException) -> StreamInterrupted:
        """The error to raise for a stream cut after its first chunk; reports `error`."""
        assert self.answer is not None
        _, model, _ = self.answer
        text = "".join(self._parts)
        why = f"the stream from {model} broke after {len(text)} characters: {describe(exc)}"
        usage = self._usage or self._estimated(model, text)
        result = self._finish(ERROR, text, model, usage, why)
        return StreamInterrupted(f"{self.entry.name}: {why}", result=result)

    # -- results -------------------------------------------------------------------------
    def result(self) -> Result:
        """The final result after `steps()` (or without them, when rejected)."""
        if self.final is not None:
            return self.final
        policy = self.entry.policy
        if self.rejected:
            return self._finish(REJECTED, policy.degraded_message, None, None, self.verdict.reason)
        if self.answer is None:
            return self._exhausted()
        index, model, reply = self.answer
        if isinstance(reply, Opened):
            return self.finish_stream()
        return self._answered(index, model, reply.text, reply.usage)

    def _answered(self, index: int, model: str, text: str, usage: Usage | None) -> Result:
        outcome = OK if index == 0 else FALLBACK
        return self._finish(outcome, text, model, usage or self._estimated(model, text), None)

    def _exhausted(self) -> Result:
        tried = [a for a in self.attempts if a.outcome != OK]
        last: dict[str, str] = {a.model: a.error or a.outcome for a in tried}
        summary = "; ".join(f"{m}: {e}" for m, e in last.items()) or "no model was tried"
        if self.cut_by_deadline or self.expired():
            outcome = TIMEOUT
            deadline = self.deadline - self.started if self.deadline is not None else 0.0
            reason = f"deadline of {deadline:g} s passed ({summary})"
        else:
            outcome, reason = DEGRADED, f"every model failed ({summary})"
        log.info("%s v%s degraded: %s", self.entry.name, self.entry.version, reason)
        return self._finish(outcome, self.entry.policy.degraded_message, None, None, reason)

    def _estimated(self, model: str, text: str) -> Usage:
        entry = self.entry
        return Usage(entry.count(model, self.messages), entry.count_text(model, text), True)

    def _finish(
        self, outcome: str, text: str, model: str | None, usage: Usage | None, reason: str | None
    ) -> Result:
        entry = self.entry
        latency = self.clock() - self.started
        result = Result(
            feature=entry.name,
            version=entry.version,
            content_hash=entry.content_hash,
            text=text,
            model=model,
            outcome=outcome,
            usage=usage or Usage(0, 0),
            latency_s=latency,
            attempts=tuple(self.attempts),
            reason=reason,
        )
        self.final = result
        if self.report is not None:
            self.report(self._event(result))
        return result

    def _event(self, result: Result) -> UsageEvent:
        entry, usage = self.entry, result.usage
        model = result.model or (self.attempts[-1].model if self.attempts else self.estimate.model)
        cost = None
        if result.model is not None:
            cost = Estimate.of(
                entry.models[model], usage.input_tokens, usage.output_tokens
            ).cost_usd
        estimated = self.estimate.input_tokens
        if result.model is not None and result.model != self.estimate.model:
            estimated = entry.count(model, self.messages)
        return UsageEvent(
            id=self.new_id(),
            feature=entry.name,
            version=entry.version,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            latency_ms=round(result.latency_s * 1000, 1),
            outcome=result.outcome,
            estimated_input_tokens=estimated,
            cost_usd=cost,
            at=time.time(),
        )


def _reply(value: Any) -> Reply:
    """A non-streamed answer as a Reply: a str, or an object with `.text` (and `.usage`)."""
    text: object = value
    usage = None
    if not isinstance(value, str):
        text, usage = getattr(value, "text", None), usage_from(getattr(value, "usage", None))
    if not isinstance(text, str):
        raise TypeError(f"call returned {type(value).__name__}; expected str or .text")
    if not text:
        raise EmptyAnswer("the model returned an empty answer")
    return Reply(text, usage)


def close_quietly(source: Iterator[Any] | Any) -> None:
    """Close a provider stream we stop reading (its connection goes back or away)."""
    close = getattr(source, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # closing a broken stream may fail too
            close()
