"""The answer cache of `promptreg eval`: a re-run, and the unchanged base side, cost nothing.

It wraps the model `call` the client library makes, so the guarded call (budget, chain,
retries) is unchanged; an answer found in the cache is returned without a request. The key
is a sha256 of the model, the messages, the params and the output cap — and, from the
second `--repeat` on, the repeat's number, so repeats are separate samples that re-runs
find again. Only answers are kept, never failures: a model that failed is asked again.

One JSON file per answer under `<cache_dir>/evals/`, written atomically; a file that does
not parse is a miss. Two threads asking the same question wait for one request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.client.result import ModelCall, Reply, Usage, usage_from


@dataclass
class Trace:
    """What the calls of one guarded run did: requests sent, answers found in the cache."""

    requests: int = 0
    hits: int = 0
    # a cached answer reports the latency it was first measured with, not the lookup's
    latency_adjust_s: float = 0.0


@dataclass(frozen=True)
class Answer:
    """One cached answer."""

    text: str
    usage: Usage | None
    latency_s: float


class AnswerCache:
    """Answers by request, in a folder (None: nothing kept); `read=False` asks again."""

    def __init__(self, folder: Path | None, *, read: bool = True) -> None:
        self.folder = folder
        self.read = read
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def key(
        model: str,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        max_output_tokens: int,
        sample: int = 0,
    ) -> str:
        """The cache key of one request (sample 0 is the first answer to it)."""
        parts: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "params": params,
            "max_output_tokens": max_output_tokens,
        }
        if sample:
            parts["sample"] = sample
        canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Answer | None:
        """The cached answer, or None."""
        if self.folder is None or not self.read:
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            usage = data.get("usage")
            return Answer(
                str(data["text"]),
                None if usage is None else Usage(int(usage["input"]), int(usage["output"])),
                float(data.get("latency_s", 0.0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, model: str, answer: Answer) -> None:
        """Keep an answer (atomically: a reader never sees half a file)."""
        if self.folder is None:
            return
        path = self._path(key)
        usage = answer.usage
        document = {
            "model": model,
            "text": answer.text,
            "usage": None
            if usage is None
            else {"input": usage.input_tokens, "output": usage.output_tokens},
            "latency_s": answer.latency_s,
            "cached_at": time.time(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a cache that cannot be written only costs requests

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def wrap(self, call: ModelCall, trace: Trace, *, sample: int = 0) -> ModelCall:
        """`call` behind the cache, counting into `trace` (non-streamed calls only)."""

        def cached(
            model: str,
            messages: list[dict[str, str]],
            params: dict[str, Any],
            max_output_tokens: int,
            stream: bool,
            timeout: float,
        ) -> Reply:
            key = self.key(model, messages, params, max_output_tokens, sample)
            waited = time.monotonic()  # waiting for the same request in another thread too
            with self._lock(key):
                hit = self.get(key)
                if hit is not None:
                    trace.hits += 1
                    trace.latency_adjust_s += hit.latency_s - (time.monotonic() - waited)
                    return Reply(hit.text, hit.usage)
                trace.requests += 1
                started = time.monotonic()
                reply = _as_reply(call(model, messages, params, max_output_tokens, stream, timeout))
                took = time.monotonic() - started
                if reply.text:  # an empty answer is a failure of the model: not kept
                    self.put(key, model, Answer(reply.text, reply.usage, took))
                return reply

        return cached


def _as_reply(value: Any) -> Reply:
    """A `call`'s non-streamed answer (a str, or an object with `.text`) as a Reply."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(value)
    text = getattr(value, "text", None)
    if not isinstance(text, str):
        raise TypeError(f"call returned {type(value).__name__}; expected str or .text")
    return Reply(text, usage_from(getattr(value, "usage", None)))
