"""The client library: prompts and policies from promptreg, enforced around your model call.

    from openai import OpenAI
    from registry.client import Registry, openai_call

    reg = Registry("https://prompts.internal", token="...", snapshot="promptreg.json")
    result = reg.run("support.reply", {"ticket": text}, call=openai_call(OpenAI()))
    result.text, result.model, result.version, result.degraded, result.usage

Modules: `cache` (resolved versions, ETag revalidation), `snapshot` (export files),
`policy` (the guarded run: budget, chain, deadline), `retry` (what to retry, how long
to wait), `breaker` (circuits), `usage` (background reporting), `registry` / `aio` (the
sync and asyncio clients, which only perform the policy's steps), `adapters` (OpenAI
SDK, LiteLLM).
"""

from typing import TYPE_CHECKING, Any

from registry.client.adapters import IncompleteStream, litellm_call, openai_call
from registry.client.cache import CachedVersion
from registry.client.registry import Registry, Stream
from registry.client.result import OUTCOMES, Attempt, ModelCall, Reply, Result, Usage
from registry.client.retry import Backoff
from registry.client.snapshot import read_snapshot, write_snapshot
from registry.errors import ClientError, RegistryUnavailable, SnapshotError, StreamInterrupted

if TYPE_CHECKING:
    from registry.client.aio import AsyncRegistry, AsyncStream

__all__ = [
    "OUTCOMES",
    "AsyncRegistry",
    "AsyncStream",
    "Attempt",
    "Backoff",
    "CachedVersion",
    "ClientError",
    "IncompleteStream",
    "ModelCall",
    "Registry",
    "RegistryUnavailable",
    "Reply",
    "Result",
    "SnapshotError",
    "Stream",
    "StreamInterrupted",
    "Usage",
    "litellm_call",
    "openai_call",
    "read_snapshot",
    "write_snapshot",
]


def __getattr__(name: str) -> Any:
    # The asyncio client loads asyncio: threaded services should not pay for it.
    if name in ("AsyncRegistry", "AsyncStream"):
        from registry.client import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'registry.client' has no attribute {name!r}")
