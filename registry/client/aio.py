"""`AsyncRegistry`: the same client for asyncio code, on the same engine.

    reg = AsyncRegistry("https://prompts.internal", token=TOKEN)
    result = await reg.run("support.reply", {"ticket": text}, call=openai_call(AsyncOpenAI()))
    async for chunk in reg.stream("support.reply", variables, call=call): ...

Decisions are `registry.client.policy.Run`'s, exactly as in `Registry`; here they are
awaited. `call` may be an `async def` (returning text, a reply, or an async iterator of
chunks) or a plain function, which then runs in a worker thread. Unlike the sync client,
every attempt's timeout — and each chunk's — is enforced here with `asyncio.timeout`,
whatever the call does with its `timeout` argument. The cache's fetches and the usage
reporter are the shared threads; the first fetch of a feature runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

from registry.client.cache import CachedVersion
from registry.client.policy import Call, EmptyAnswer, Opened, Run, Sleep
from registry.client.registry import ClientBase
from registry.client.result import ModelCall, Result

_END = object()


class ModelTimeout(TimeoutError):
    """An attempt (or a stream's next chunk) took longer than its timeout."""


class AsyncRegistry(ClientBase):
    """`Registry` for asyncio applications: same behaviour, awaited."""

    async def resolve(self, feature: str) -> CachedVersion:
        """The cached version of `feature` (fetched on first use, off the event loop)."""
        entry = self.cache.get_nowait(feature)
        return entry if entry is not None else await asyncio.to_thread(self.cache.load, feature)

    async def run(
        self,
        feature: str,
        variables: Mapping[str, Any] | None = None,
        *,
        call: ModelCall,
        key: str | None = None,
    ) -> Result:
        """Render, check the budget, call the chain; the answer or the degraded message."""
        run = self._run(await self.resolve(feature), variables, False, key)
        if not run.rejected:
            await self._drive(run, call)
        return run.result()

    def stream(
        self,
        feature: str,
        variables: Mapping[str, Any] | None = None,
        *,
        call: ModelCall,
        key: str | None = None,
    ) -> AsyncStream:
        """Like `run`, streaming: `async for chunk in reg.stream(...)`."""
        return AsyncStream(self, feature, variables, call, key)

    async def _drive(self, run: Run, call: ModelCall) -> None:
        steps = run.steps()
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    value = await _invoke(run, call, step)
                except Exception as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(value)
        except StopIteration:
            pass

    async def aclose(self) -> None:
        """Flush usage events and stop the background threads (without blocking the loop)."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> AsyncRegistry:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncStream:
    """The chunks of a guarded stream; `result` is set once it ended (or was closed)."""

    def __init__(
        self,
        client: AsyncRegistry,
        feature: str,
        variables: Mapping[str, Any] | None,
        call: ModelCall,
        key: str | None = None,
    ) -> None:
        self._run: Run | None = None
        self._chunks = self._generate(client, feature, variables, call, key)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> str:
        return await self._chunks.__anext__()

    @property
    def result(self) -> Result | None:
        """The run's result: None until the stream has ended."""
        return self._run.final if self._run is not None else None

    async def aclose(self) -> None:
        """Stop reading: the provider stream is closed and the partial run reported."""
        await self._chunks.aclose()

    async def _generate(
        self,
        client: AsyncRegistry,
        feature: str,
        variables: Mapping[str, Any] | None,
        call: ModelCall,
        key: str | None,
    ) -> AsyncGenerator[str, None]:
        run = self._run = client._run(await client.resolve(feature), variables, True, key)
        if not run.rejected:
            await client._drive(run, call)
        opened = run.opened()
        if opened is None:
            yield run.result().text  # rejected or degraded: the message, once
            return
        rest = opened.rest
        try:
            yield run.chunk(opened.first) or ""  # a non-empty str: the first text chunk
            while True:
                try:
                    async with asyncio.timeout(run.chunk_timeout()):
                        item = await anext(rest)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise ModelTimeout(f"no chunk within {run.chunk_timeout():.2f} s") from exc
                text = run.chunk(item)
                if text is not None:
                    yield text
                run.check_deadline()
        except GeneratorExit:  # the reader stopped early: report what it got
            await _aclose(rest)
            run.finish_stream()
            raise
        except Exception as exc:
            await _aclose(rest)
            raise run.interrupted(exc) from exc
        run.finish_stream()


async def _invoke(run: Run, call: ModelCall, step: Call) -> Any:
    """One model call within its timeout; for a stream, read up to its first text chunk."""
    try:
        async with asyncio.timeout(step.timeout):
            out = await _start(run, call, step)
            return await _open(out) if run.stream else out
    except TimeoutError as exc:
        raise ModelTimeout(f"no answer from {step.model} within {step.timeout:.2f} s") from exc


async def _start(run: Run, call: ModelCall, step: Call) -> Any:
    args = (step.model, run.wire, run.params, run.max_output_tokens, run.stream, step.timeout)
    if not _is_async(call):
        return await asyncio.to_thread(call, *args)
    out = call(*args)
    return await out if inspect.isawaitable(out) else out


def _is_async(call: Any) -> bool:
    return (
        inspect.iscoroutinefunction(call)
        or inspect.isasyncgenfunction(call)
        or inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004
    )


async def _open(out: Any) -> Opened:
    items: AsyncIterator[Any] = out.__aiter__() if hasattr(out, "__aiter__") else _Threaded(out)
    try:
        while True:
            try:
                item = await anext(items)
            except StopAsyncIteration:
                break
            if isinstance(item, str) and item:
                return Opened(item, items)
    except BaseException:
        await _aclose(items)
        raise
    await _aclose(items)
    raise EmptyAnswer("the stream ended before any text")


class _Threaded:
    """A plain iterator read in a worker thread, one item at a time."""

    def __init__(self, items: Any) -> None:
        self.items: Iterator[Any] = iter(items)

    def __aiter__(self) -> _Threaded:
        return self

    async def __anext__(self) -> Any:
        item = await asyncio.to_thread(next, self.items, _END)
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        close = getattr(self.items, "close", None)
        if callable(close):
            await asyncio.to_thread(close)


async def _aclose(source: Any) -> None:
    """Close a stream we stop reading, whether its close is async or not."""
    for name in ("aclose", "close"):
        method = getattr(source, name, None)
        if callable(method):
            try:
                out = method()
                if inspect.isawaitable(out):
                    await out
            except Exception:  # closing a broken stream may fail too; nothing left to do
                pass
            return
