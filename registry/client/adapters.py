"""Provider adapters: a `call` for the OpenAI SDK (and Azure OpenAI), and one for LiteLLM.

A `call` is `(model, messages, params, max_output_tokens, stream, timeout)` (SPEC §8). The
adapters pass `max_output_tokens` as the SDK's output limit and `timeout` per request,
turn the SDK's own retries off (retries, backoff and fallback are the client library's
job), and stream with usage where the provider supports it: text chunks, then a `Usage`.
A stream that ends without a finish reason was cut, and raises `IncompleteStream`
instead of passing for a complete answer.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from registry.client.result import ModelCall, Reply, Usage, usage_from
from registry.extras import require

# An output limit in a policy's `params` gives way to its `max_output_tokens`.
OUTPUT_LIMITS = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens"})


class IncompleteStream(Exception):
    """The provider's stream ended without a finish reason: the answer was cut."""


def openai_call(
    client: Any, *, output_param: str = "max_completion_tokens", stream_usage: bool = True
) -> ModelCall:
    """A `call` over `client.chat.completions` of an `openai.OpenAI` / `AzureOpenAI` client —
    or an async one (`AsyncOpenAI`), for `AsyncRegistry`.

    `output_param`: `max_completion_tokens` (OpenAI's current name), or `max_tokens` for
    OpenAI-compatible servers that only know the old one. `stream_usage=False` for servers
    that refuse `stream_options`.
    """
    import openai

    quiet = client.with_options(max_retries=0)
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream_usage else {}

    def arguments(
        model: str, messages: Any, params: dict[str, Any], limit: int, stream: bool, timeout: float
    ) -> dict[str, Any]:
        args = {k: v for k, v in params.items() if k not in OUTPUT_LIMITS}  # the policy's wins
        args.update(model=model, messages=messages)
        args[output_param] = limit
        args["timeout"] = timeout
        if stream:
            args.update(stream=True, **extra)
        return args

    if isinstance(client, openai.AsyncOpenAI):

        async def acall(
            model: str,
            messages: list[dict[str, str]],
            params: dict[str, Any],
            max_output_tokens: int,
            stream: bool,
            timeout: float,
        ) -> Any:
            args = arguments(model, messages, params, max_output_tokens, stream, timeout)
            response = await quiet.chat.completions.create(**args)
            return _achunks(response) if stream else _reply(response)

        return acall

    return _chat_call(quiet.chat.completions.create, arguments)


def litellm_call(**kwargs: Any) -> ModelCall:
    """A `call` over `litellm.completion(model=..., **kwargs)` (e.g. `api_base`, `api_key`).

    Needs promptreg[litellm]; litellm is imported here, once, with its bundled price map
    (it would otherwise fetch one at import) and without telemetry.
    """
    require("litellm", "litellm_call()")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)

    def arguments(
        model: str, messages: Any, params: dict[str, Any], limit: int, stream: bool, timeout: float
    ) -> dict[str, Any]:
        args = {**kwargs, **{k: v for k, v in params.items() if k not in OUTPUT_LIMITS}}
        args.update(model=model, messages=messages)
        args.update(max_tokens=limit, timeout=timeout, num_retries=0, max_retries=0)
        if stream:
            args.update(stream=True, stream_options={"include_usage": True})
        return args

    return _chat_call(litellm.completion, arguments)


def _chat_call(create: Callable[..., Any], arguments: Callable[..., dict[str, Any]]) -> ModelCall:
    """A `call` that sends `create(**arguments(<the call's arguments>))`, a chat completion
    request, and reads its answer or its stream."""

    def call(
        model: str,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        max_output_tokens: int,
        stream: bool,
        timeout: float,
    ) -> Any:
        response = create(**arguments(model, messages, params, max_output_tokens, stream, timeout))
        return _chunks(response) if stream else _reply(response)

    return call


def _reply(response: Any) -> Reply:
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    text = getattr(message, "content", None) or ""
    return Reply(text, usage_from(getattr(response, "usage", None)))


def _read(chunk: Any) -> tuple[str, bool, Usage | None]:
    """One chat.completion.chunk: its text, whether a choice finished, its usage."""
    text, finished = "", False
    for choice in getattr(chunk, "choices", None) or []:
        content = getattr(getattr(choice, "delta", None), "content", None)
        if content:
            text += content
        finished = finished or bool(getattr(choice, "finish_reason", None))
    return text, finished, usage_from(getattr(chunk, "usage", None))


def _chunks(response: Iterable[Any]) -> Iterator[str | Usage]:
    usage: Usage | None = None
    finished = False
    try:
        for chunk in response:
            text, done, found = _read(chunk)
            finished, usage = finished or done, found or usage
            if text:
                yield text
    finally:
        close = getattr(response, "close", None)
        if callable(close):
            close()
    if not finished:
        raise IncompleteStream("the provider's stream ended without a finish reason")
    if usage is not None:
        yield usage


async def _achunks(response: Any) -> AsyncIterator[str | Usage]:
    usage: Usage | None = None
    finished = False
    try:
        async for chunk in response:
            text, done, found = _read(chunk)
            finished, usage = finished or done, found or usage
            if text:
                yield text
    finally:
        close = getattr(response, "close", None)
        if callable(close):
            closing = close()
            if inspect.isawaitable(closing):
                await closing
    if not finished:
        raise IncompleteStream("the provider's stream ended without a finish reason")
    if usage is not None:
        yield usage
