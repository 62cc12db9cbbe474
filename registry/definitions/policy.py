"""Policy files: the strict schema, feature names, and the `_defaults.yaml` merge.

A policy is the guardrail contract of one feature (SPEC §1.2). Unknown keys are
errors; required fields are checked after the defaults of every enclosing folder are
deep-merged under it (closer folders win; lists are replaced, not concatenated).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.definitions.yamlpos import Loc, Located

FEATURE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
POLICY_SUFFIXES = (".yaml", ".yml")
DEFAULTS_FILE = "_defaults.yaml"
MODELS_FILE = "_models.yaml"


class Strict(BaseModel):
    """Base for file schemas: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class ModelRef(Strict):
    """One model of the fallback chain."""

    model: str = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=0, ge=0, le=10)


class Budget(Strict):
    """Per-request and daily limits."""

    max_request_tokens: int = Field(gt=0)
    max_request_usd: float | None = Field(default=None, gt=0)
    daily_usd: float | None = Field(default=None, gt=0)
    drift_alarm_pct: float | None = Field(default=None, gt=0)


class CircuitBreaker(Strict):
    """When to stop calling a failing model, and for how long."""

    failure_rate_pct: float = Field(default=50.0, gt=0, le=100)
    min_requests: int = Field(default=10, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smh])$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(text: str) -> float:
    """`2s`, `10m`, `1.5h` in seconds (ValueError for anything else)."""
    match = DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m or 1h")
    return float(match.group(1)) * _SECONDS[match.group(2)]


class RolloutGuards(Strict):
    """When a candidate does worse than the stable version: any guard breaking aborts."""

    error_rate_pp: float | None = Field(default=2.0, gt=0, le=100)
    p95_latency_ratio: float | None = Field(default=1.3, gt=0)
    cost_ratio: float | None = Field(default=1.2, gt=0)
    drift_pct: float | None = Field(default=None, gt=0)


class RolloutPlan(Strict):
    """How a new version reaches the label's users: a slice at a time, guarded (SPEC §10)."""

    steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], min_length=1)
    interval: str = "10m"
    min_requests: int = Field(default=200, ge=1)
    guards: RolloutGuards = Field(default_factory=RolloutGuards)

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 1 <= step <= 100 for step in steps):
            raise ValueError("every step is a percent from 1 to 100")
        if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"steps must increase, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100 (all requests), got {steps[-1]}")
        return steps

    @field_validator("interval")
    @classmethod
    def _interval_is_a_duration(cls, interval: str) -> str:
        duration_s(interval)
        return interval

    @property
    def interval_s(self) -> float:
        """The interval in seconds."""
        return duration_s(self.interval)


class Policy(Strict):
    """The effective policy of a feature, after defaults are merged."""

    prompt: str | None = None
    description: str | None = None
    owner: str | None = None
    models: list[ModelRef] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    max_output_tokens: int = Field(gt=0)
    stream: bool = False
    deadline_s: float | None = Field(default=None, gt=0)
    budget: Budget
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    degraded_message: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    kind: Literal["chat"] = "chat"
    rollout: RolloutPlan | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        """Accept `- gpt-4o` as shorthand for `- model: gpt-4o`."""
        if isinstance(value, list):
            return [{"model": v} if isinstance(v, str) else v for v in value]
        return value


def feature_name(policy_rel: str) -> str | None:
    """The feature name of a policy path relative to the policies folder, or None."""
    for suffix in POLICY_SUFFIXES:
        if policy_rel.endswith(suffix):
            return policy_rel[: -len(suffix)].replace("/", ".")
    return None


def is_policy_file(policy_rel: str) -> bool:
    """True for a YAML file that defines a feature (not `_`-prefixed)."""
    base = policy_rel.rsplit("/", 1)[-1]
    return base.endswith(POLICY_SUFFIXES) and not base.startswith("_")


def defaults_chain(policy_rel: str) -> list[str]:
    """`_defaults.yaml` paths (relative to policies/) that apply, outermost first."""
    parts = policy_rel.split("/")[:-1]
    return ["/".join([*parts[:i], DEFAULTS_FILE]) for i in range(len(parts) + 1)]


Origins = dict[Loc, tuple[str, int | None]]


def deep_merge(layers: list[Located]) -> tuple[dict[str, Any], Origins]:
    """Merge mappings (later wins, dicts merged key by key), remembering each key's origin."""
    merged: dict[str, Any] = {}
    origins: Origins = {}

    def merge_into(
        target: dict[str, Any], source: dict[str, Any], loc: Loc, layer: Located
    ) -> None:
        for key, value in source.items():
            child = (*loc, key)
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge_into(target[key], value, child, layer)
            else:
                target[key] = _copy(value)
                for old in [k for k in origins if k[: len(child)] == child]:
                    del origins[old]
                for sub, line in layer.lines.items():
                    if sub[: len(child)] == child:
                        origins[sub] = (layer.file, line)
            origins[child] = (layer.file, layer.lines.get(child))

    for layer in layers:
        if isinstance(layer.data, dict):
            merge_into(merged, layer.data, (), layer)
    return merged, origins


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def origin_of(
    origins: Origins, loc: Loc, fallback: tuple[str, int | None]
) -> tuple[str, int | None]:
    """Where the value at `loc` (or its nearest ancestor) was written."""
    for end in range(len(loc), 0, -1):
        hit = origins.get(tuple(loc[:end]))
        if hit is not None:
            return hit
    return fallback
