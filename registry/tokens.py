"""Token counts, prices and the per-request budget verdict.

Tokenizers and the price/context catalog come from `litellm`, which ships both inside
its wheel (tiktoken's encodings, Anthropic's tokenizer, its model price map) and so
works offline once told not to fetch the map. `_models.yaml` adds private models and
overrides entries. litellm costs seconds to import, so it is imported on first use:
commands that never count tokens never pay for it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from registry.definitions.catalog import ModelEntry
from registry.definitions.policy import Policy
from registry.errors import CatalogError

_lock = threading.Lock()
_module: ModuleType | None = None


def _litellm() -> ModuleType:
    """Import litellm once, offline: its bundled price map, no telemetry, quiet logs."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
                os.environ.setdefault("LITELLM_LOG", "ERROR")
                import litellm

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                logging.getLogger("LiteLLM").setLevel(logging.ERROR)
                _module = litellm
    return _module


def warm_up() -> None:
    """Import the catalog and load the common tokenizer now, not inside a first request."""
    _count("gpt-4o", json.dumps([{"content": "warm up", "role": "user"}]))


@dataclass(frozen=True)
class ModelInfo:
    """What promptreg needs to know about one model."""

    model: str
    input_usd_per_token: float | None
    output_usd_per_token: float | None
    context_window: int | None
    max_output_tokens: int | None
    tokenizer: str  # the catalog model whose tokenizer counts for this one
    source: str  # "catalog", "_models.yaml", or "catalog+_models.yaml"

    def as_dict(self) -> dict[str, Any]:
        """The fields that determine behaviour (hashed into versions)."""
        return {
            "model": self.model,
            "input_usd_per_token": self.input_usd_per_token,
            "output_usd_per_token": self.output_usd_per_token,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "tokenizer": self.tokenizer,
        }


def _per_token(per_mtok: float | None) -> float | None:
    return None if per_mtok is None else per_mtok / 1_000_000


class Catalog:
    """The library's model catalog with a registry's `_models.yaml` on top."""

    def __init__(self, overrides: Mapping[str, ModelEntry] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self._info: dict[str, ModelInfo | None] = {}

    @classmethod
    def from_snapshot(cls, models: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A catalog pinned to the entries a version recorded (prices do not drift)."""

        def per_mtok(value: Any) -> float | None:
            return None if value is None else float(value) * 1_000_000

        return cls(
            {
                name: ModelEntry(
                    input_usd_per_mtok=per_mtok(info.get("input_usd_per_token")),
                    output_usd_per_mtok=per_mtok(info.get("output_usd_per_token")),
                    context_window=info.get("context_window"),
                    max_output_tokens=info.get("max_output_tokens"),
                    tokenizer=info.get("tokenizer"),
                )
                for name, info in models.items()
            }
        )

    def lookup(self, model: str) -> ModelInfo | None:
        """The model's entry, or None when neither the catalog nor `_models.yaml` knows it."""
        if model not in self._info:
            self._info[model] = self._lookup(model)
        return self._info[model]

    def _lookup(self, model: str) -> ModelInfo | None:
        base: dict[str, Any] | None = _litellm().model_cost.get(model)
        entry = self.overrides.get(model)
        if base is None and entry is None:
            return None
        base = base or {}
        entry = entry or ModelEntry()
        source = "+".join(
            s
            for s, present in (("catalog", bool(base)), ("_models.yaml", model in self.overrides))
            if present
        )
        pick = _first
        return ModelInfo(
            model=model,
            input_usd_per_token=pick(
                _per_token(entry.input_usd_per_mtok), base.get("input_cost_per_token")
            ),
            output_usd_per_token=pick(
                _per_token(entry.output_usd_per_mtok), base.get("output_cost_per_token")
            ),
            context_window=pick(entry.context_window, base.get("max_input_tokens")),
            max_output_tokens=pick(entry.max_output_tokens, base.get("max_output_tokens")),
            tokenizer=entry.tokenizer or model,
            source=source,
        )

    def require(self, model: str) -> ModelInfo:
        """Like lookup, but an unknown model is a CatalogError."""
        info = self.lookup(model)
        if info is None:
            raise CatalogError(
                f"unknown model {model!r}: not in the catalog; declare it in policies/_models.yaml"
            )
        return info

    def count(self, model: str, messages: Sequence[Mapping[str, Any]]) -> int:
        """Input tokens of `messages` on `model`, by the model's own tokenizer."""
        info = self.require(model)
        payload = json.dumps([dict(m) for m in messages], sort_keys=True)
        return _count(info.tokenizer, payload)

    def estimate(self, policy: Policy, messages: Sequence[Mapping[str, Any]]) -> list[Estimate]:
        """Token and cost estimates on every model of the chain, in order."""
        out = []
        for ref in policy.models:
            info = self.require(ref.model)
            tokens = self.count(ref.model, messages)
            out.append(Estimate.of(info, tokens, policy.max_output_tokens))
        return out


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


@lru_cache(maxsize=4096)
def _count(tokenizer: str, payload: str) -> int:
    messages = json.loads(payload)
    try:
        return int(_litellm().token_counter(model=tokenizer, messages=messages))
    except Exception as exc:  # litellm raises a variety of errors for odd models
        raise CatalogError(f"cannot count tokens for model {tokenizer!r}: {exc}") from None


@dataclass(frozen=True)
class Estimate:
    """Estimated size and cost of one request on one model."""

    model: str
    input_tokens: int
    max_output_tokens: int
    cost_usd: float | None

    @property
    def total_tokens(self) -> int:
        """Input tokens plus the output cap."""
        return self.input_tokens + self.max_output_tokens

    @classmethod
    def of(cls, info: ModelInfo, input_tokens: int, max_output: int) -> Estimate:
        """The estimate of a request of `input_tokens` capped at `max_output`."""
        cost = None
        if info.input_usd_per_token is not None and info.output_usd_per_token is not None:
            cost = input_tokens * info.input_usd_per_token + max_output * info.output_usd_per_token
        return cls(info.model, input_tokens, max_output, cost)


@dataclass(frozen=True)
class Verdict:
    """Whether a request fits its policy's budget, and why not."""

    allowed: bool
    reason: str


def budget_verdict(policy: Policy, estimate: Estimate) -> Verdict:
    """Check the first model's estimate against `budget.max_request_tokens` / `_usd`."""
    budget = policy.budget
    total = estimate.total_tokens
    if total > budget.max_request_tokens:
        return Verdict(
            False,
            f"estimated request of {total} tokens ({estimate.input_tokens} input + "
            f"{estimate.max_output_tokens} max output) exceeds budget.max_request_tokens "
            f"of {budget.max_request_tokens}",
        )
    limit_usd, cost = budget.max_request_usd, estimate.cost_usd
    if limit_usd is not None and cost is not None and cost > limit_usd:
        return Verdict(
            False,
            f"estimated cost ${cost:.6f} on {estimate.model} exceeds "
            f"budget.max_request_usd of ${limit_usd:g}",
        )
    return Verdict(
        True,
        f"{total} of {budget.max_request_tokens} tokens"
        + (f", ${estimate.cost_usd:.6f}" if estimate.cost_usd is not None else ""),
    )
