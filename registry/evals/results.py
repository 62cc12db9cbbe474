"""What an evaluation found: each case run, each side's pass rate, each feature's verdict.

A feature passes when its pass rate on the working tree is at least its threshold (equal
passes) and, with `--base`, not lower than the base's (any drop fails). Rates compare
exactly, as fractions of counts; a skipped case is not a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

HEAD = "working tree"
SKIPPED = "skipped"  # the case's variables do not fit this side's prompt: not run


@dataclass
class CaseResult:
    """One case (one repeat of it) on one side."""

    name: str
    repeat: int
    passed: bool
    outcome: str  # the client's outcome (ok, fallback, rejected, degraded, timeout), or skipped
    answer: str | None
    failures: list[str]
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    cached: bool = False  # answered from the cache: no request was made
    requests: int = 0  # requests sent to the provider, the judge's included
    judge_cost_usd: float | None = None


@dataclass
class SideResult:
    """A feature's cases on one side: the working tree or the base ref."""

    ref: str
    state: str = "ok"  # ok, missing (no such feature at REF), invalid (broken at REF)
    content_hash: str | None = None
    cases: list[CaseResult] = field(default_factory=list)
    note: str | None = None

    @property
    def runs(self) -> list[CaseResult]:
        """The cases that ran (not skipped)."""
        return [c for c in self.cases if c.outcome != SKIPPED]

    @property
    def passed(self) -> int:
        """How many runs passed."""
        return sum(c.passed for c in self.runs)

    @property
    def total(self) -> int:
        """How many runs count towards the pass rate."""
        return len(self.runs)

    @property
    def rate(self) -> Fraction | None:
        """The exact pass rate (None when nothing ran)."""
        return Fraction(self.passed, self.total) if self.total else None

    @property
    def pass_rate(self) -> float | None:
        """The pass rate as a fraction 0–1 (None when nothing ran)."""
        rate = self.rate
        return None if rate is None else float(rate)


@dataclass
class FeatureResult:
    """A feature's evaluation: its side(s) and its verdict against threshold and base."""

    feature: str
    path: str
    threshold: float
    head: SideResult
    base: SideResult | None = None  # set with --base

    @property
    def reasons(self) -> list[str]:
        """Why this feature fails the run (empty: it passes)."""
        out = []
        rate, base = self.head.rate, self.base.rate if self.base is not None else None
        if rate is None or rate < Fraction(str(self.threshold)):
            out.append(f"under its threshold of {percent(self.threshold)}")
        if rate is not None and base is not None and rate < base:
            out.append(f"pass rate dropped from {percent(float(base))}")
        return out

    @property
    def ok(self) -> bool:
        """True when the feature meets its threshold and did not get worse."""
        return not self.reasons


def percent(value: float | None) -> str:
    """`90%`, `83.3%`; `n/a` for None."""
    if value is None:
        return "n/a"
    shown_ = f"{value * 100:.1f}".removesuffix(".0")
    return f"{shown_}%"
