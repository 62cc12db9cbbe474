"""The model catalog, token counts and cost estimates, and the per-request budget verdict.

A `Catalog` is the library catalog (`prices`: genai-prices' list prices and context
windows) with a registry's `_models.yaml` on top, or, rebuilt from a stored version, exactly
the entries that version recorded. Counting goes through `encodings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.definitions.catalog import ModelEntry
from registry.definitions.policy import Policy
from registry.errors import CatalogError
from registry.tokens import encodings, prices


@dataclass(frozen=True)
class ModelInfo:
    """What promptreg needs to know about one model."""

    model: str
    input_usd_per_token: float | None
    output_usd_per_token: float | None
    context_window: int | None
    max_output_tokens: int | None
    # The model (or encoding) whose tokenizer counts for this one: the model's own name
    # unless `_models.yaml` says otherwise. Stored versions hold model names here, so the
    # encoding is resolved at count time (`encodings.encoding_for`).
    tokenizer: str
    source: str  # "catalog", "_models.yaml", "catalog+_models.yaml", or "snapshot"

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


_UNLISTED = prices.Listed("", "", None, None, None)


class Catalog:
    """The library's model catalog with `_models.yaml` on top, or a version's own entries."""

    def __init__(
        self, overrides: Mapping[str, ModelEntry] | None = None, *, library: bool = True
    ) -> None:
        self.overrides = dict(overrides or {})
        self.library = library  # False: only `overrides` exist (a version's pinned entries)
        self._info: dict[str, ModelInfo | None] = {}

    @classmethod
    def from_snapshot(cls, models: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A catalog of exactly the entries a version recorded (prices do not drift).

        The library catalog is not consulted: a version records every model of its chain,
        and serving it (the API, the client library) then never loads the price catalog.
        """

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
            },
            library=False,
        )

    def lookup(self, model: str) -> ModelInfo | None:
        """The model's entry, or None when neither the catalog nor `_models.yaml` knows it."""
        if model not in self._info:
            self._info[model] = self._lookup(model)
        return self._info[model]

    def _lookup(self, model: str) -> ModelInfo | None:
        listed = prices.listed(model) if self.library else None
        entry = self.overrides.get(model)
        if listed is None and entry is None:
            return None
        entry = entry or ModelEntry()
        if not self.library:
            source = "snapshot"
        elif listed is None:
            source = "_models.yaml"
        else:
            source = "catalog+_models.yaml" if model in self.overrides else "catalog"
        base = listed or _UNLISTED
        return ModelInfo(
            model=model,
            input_usd_per_token=_first(
                _per_token(entry.input_usd_per_mtok), base.input_usd_per_token
            ),
            output_usd_per_token=_first(
                _per_token(entry.output_usd_per_mtok), base.output_usd_per_token
            ),
            context_window=_first(entry.context_window, base.context_window),
            max_output_tokens=entry.max_output_tokens,
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
        """Input tokens of `messages` on `model`: its own tokenizer, or the documented proxy."""
        info = self.require(model)
        payload = json.dumps([dict(m) for m in messages], sort_keys=True)
        return encodings.count(encodings.encoding_for(info.tokenizer), payload)

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
