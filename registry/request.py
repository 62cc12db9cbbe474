"""A feature's model request, prepared: messages, chain, limits, estimates, budget verdict.

The same preparation serves `promptreg render`, the API's render route and the client
library, so all three agree on the numbers a budget decision is made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.definitions.content import FeatureDefinition
from registry.render import Message
from registry.tokens import Catalog, Estimate, Verdict, budget_verdict


@dataclass(frozen=True)
class PreparedRequest:
    """Everything needed to call (or refuse to call) the model chain."""

    feature: FeatureDefinition
    messages: list[Message]
    estimates: list[Estimate]  # one per model of the chain, in order
    verdict: Verdict

    @property
    def first(self) -> Estimate:
        """The estimate on the first model, which the budget is checked against."""
        return self.estimates[0]

    def as_dict(self, *, version: int | None = None) -> dict[str, Any]:
        """The wire form shared by the API and `render --json`."""
        policy = self.feature.policy
        first = self.first
        return {
            "feature": self.feature.name,
            "version": version,
            "content_hash": self.feature.content_hash,
            "messages": [m.as_dict() for m in self.messages],
            "models": [ref.model_dump() for ref in policy.models],
            "params": policy.params,
            "max_output_tokens": policy.max_output_tokens,
            "stream": policy.stream,
            "deadline_s": policy.deadline_s,
            "tokens": {
                "input": first.input_tokens,
                "max_output": first.max_output_tokens,
                "total": first.total_tokens,
                "model": first.model,
                "per_model": [
                    {"model": e.model, "input": e.input_tokens, "cost_usd": e.cost_usd}
                    for e in self.estimates
                ],
            },
            "cost_usd_estimate": first.cost_usd,
            "budget": {
                "allowed": self.verdict.allowed,
                "reason": self.verdict.reason,
                "max_request_tokens": policy.budget.max_request_tokens,
                "max_request_usd": policy.budget.max_request_usd,
            },
            "degraded_message": policy.degraded_message,
        }


def prepare(
    feature: FeatureDefinition, catalog: Catalog, variables: Mapping[str, Any]
) -> PreparedRequest:
    """Render `feature` with `variables`, count tokens on every model, check the budget."""
    messages = feature.compiled().render(variables)
    wire = [m.as_dict() for m in messages]
    estimates = catalog.estimate(feature.policy, wire)
    return PreparedRequest(
        feature, messages, estimates, budget_verdict(feature.policy, estimates[0])
    )
