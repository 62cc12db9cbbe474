"""`Registry`: the client for threaded code — cached features, guarded `run` and `stream`.

    reg = Registry("https://prompts.internal", token=TOKEN, snapshot="promptreg.json")
    result = reg.run("support.reply", {"ticket": text}, call=openai_call(OpenAI()))

`ClientBase` holds what the sync and async clients share (cache, circuit breakers, usage
reporter, settings); the policy itself is `registry.client.policy.Run`. This module only
performs its steps: calls a model, sleeps before a retry, reads a stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from registry.client.breaker import Breakers
from registry.client.cache import CachedVersion, FeatureCache
from registry.client.policy import (
    Call,
    EmptyAnswer,
    Opened,
    Run,
    Sleep,
    close_quietly,
)
from registry.client.result import ModelCall, Result
from registry.client.retry import Backoff
from registry.client.usage import EventIds, UsageReporter


class ClientBase:
    """Configuration and state shared by `Registry` and `AsyncRegistry`."""

    def __init__(
        self,
        url: str | None,
        token: str | None = None,
        *,
        label: str = "production",
        snapshot: str | Path | None = None,
        refresh_s: float = 5.0,
        timeout_s: float = 2.0,
        backoff: Backoff | None = None,
        deadline_s: float | None = None,
        report_usage: bool = True,
        usage_batch_size: int = 200,
        usage_flush_s: float = 1.0,
        usage_queue_size: int = 10_000,
    ) -> None:
        """Serve `label` of the registry at `url` (None: only the `snapshot` file).

        `refresh_s`: revalidate a cached feature this often (in the background);
        `timeout_s`: the registry's own timeout; `deadline_s`: the deadline of features
        whose policy sets none; `report_usage`: send usage events to `url`.
        """
        self.label = label
        self.cache = FeatureCache(
            url, token, label=label, refresh_s=refresh_s, timeout_s=timeout_s, snapshot=snapshot
        )
        self.breakers = Breakers()
        self.backoff = backoff or Backoff()
        self.deadline_s = deadline_s
        self.usage: UsageReporter | None = None
        if url and report_usage:
            self.usage = UsageReporter(
                url,
                token,
                batch_size=usage_batch_size,
                flush_s=usage_flush_s,
                max_queue=usage_queue_size,
            )
        self._ids = EventIds()

    def _run(
        self,
        entry: CachedVersion,
        variables: Mapping[str, Any] | None,
        stream: bool,
        key: str | None = None,
    ) -> Run:
        return Run(
            entry.pick(key),
            variables or {},
            stream,
            self.breakers,
            self.backoff,
            self.usage.submit if self.usage is not None else None,
            self._ids,
            self.deadline_s,
        )

    def stats(self) -> dict[str, Any]:
        """Counters for logs and metrics: registry fetches and errors, usage, circuits."""
        out: dict[str, Any] = dict(self.cache.counts)
        if self.usage is not None:
            out.update({f"usage_{k}": v for k, v in self.usage.counts.items()})
            out["usage_pending"] = len(self.usage.queue)
        out["circuit_opens"] = self.breakers.opens()
        out["circuits"] = self.breakers.states()
        return out

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send queued usage events now (before a serverless freeze, say); False on timeout."""
        return self.usage.flush(timeout_s) if self.usage is not None else True

    def save_snapshot(self, path: str | Path) -> int:
        """Write every cached feature to a snapshot file (as `promptreg export` does)."""
        return self.cache.save_snapshot(path)

    def close(self) -> None:
        """Flush usage events and stop the background threads."""
        if self.usage is not None:
            self.usage.close()
        self.cache.close()


class Stream:
    """The chunks of a guarded stream; `result` is set once it ended (or was closed)."""

    def __init__(self, run: Run, chunks: Iterator[str]) -> None:
        self._run = run
        self._chunks = chunks

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        return next(self._chunks)

    @property
    def result(self) -> Result | None:
        """The run's result: None until the stream has ended."""
        return self._run.final

    def close(self) -> None:
        """Stop reading: the provider stream is closed and the partial run reported."""
        close_quietly(self._chunks)


class Registry(ClientBase):
    """Prompts and policies from a promptreg server, enforced around your model calls.

    Thread-safe: one instance per process, shared by every thread. A plain function cannot
    be interrupted, so each attempt's limit is the `timeout` passed to `call` (the
    adapters hand it to the SDK); `AsyncRegistry` also enforces it itself.
    """

    def resolve(self, feature: str) -> CachedVersion:
        """The cached version of `feature` (fetched on first use)."""
        return self.cache.get(feature)

    def run(
        self,
        feature: str,
        variables: Mapping[str, Any] | None = None,
        *,
        call: ModelCall,
        key: str | None = None,
    ) -> Result:
        """Render, check the budget, call the chain; the answer or the degraded message.

        `key` (a user or session id) keeps a caller on one arm of a rollout.
        """
        run = self._run(self.cache.get(feature), variables, False, key)
        if not run.rejected:
            self._drive(run, call)
        return run.result()

    def stream(
        self,
        feature: str,
        variables: Mapping[str, Any] | None = None,
        *,
        call: ModelCall,
        key: str | None = None,
    ) -> Stream:
        """Like `run`, streaming: fallback only before the first chunk (SPEC §8 "Streams")."""
        run = self._run(self.cache.get(feature), variables, True, key)
        return Stream(run, self._chunks(run, call))

    def _chunks(self, run: Run, call: ModelCall) -> Iterator[str]:
        if not run.rejected:
            self._drive(run, call)
        opened = run.opened()
        if opened is None:
            yield run.result().text  # rejected or degraded: the message, once
            return
        rest = opened.rest
        try:
            yield run.chunk(opened.first) or ""  # a non-empty str: the first text chunk
            for item in rest:
                text = run.chunk(item)
                if text is not None:
                    yield text
                run.check_deadline()
        except GeneratorExit:  # the reader stopped early: report what it got
            close_quietly(rest)
            run.finish_stream()
            raise
        except Exception as exc:
            close_quietly(rest)
            raise run.interrupted(exc) from exc
        run.finish_stream()

    def _drive(self, run: Run, call: ModelCall) -> None:
        steps = run.steps()
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    value = _invoke(run, call, step)
                except Exception as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(value)
        except StopIteration:
            pass

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _invoke(run: Run, call: ModelCall, step: Call) -> Any:
    """One model call; for a stream, read up to its first text chunk."""
    out = call(step.model, run.wire, run.params, run.max_output_tokens, run.stream, step.timeout)
    if not run.stream:
        return out
    items = iter(out)
    try:
        for item in items:
            if isinstance(item, str) and item:
                return Opened(item, items)
    except BaseException:
        close_quietly(items)
        raise
    close_quietly(items)
    raise EmptyAnswer("the stream ended before any text")
