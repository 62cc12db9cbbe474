"""Token counts, prices and the per-request budget verdict, offline.

- `encodings`: tokenizers. OpenAI's BPE encodings (o200k_base, cl100k_base) ship in the
  wheel under `registry/tokenizers/` and count through tiktoken; models whose tokenizer is
  not public (Claude 3 and later, Gemini, …) count with a documented proxy encoding.
- `prices`: list prices and context windows from genai-prices' bundled catalog.
- `catalog`: `Catalog` puts `_models.yaml` over that catalog, counts, and estimates;
  `budget_verdict` checks an estimate against a policy's budget.

Importing this package imports neither tiktoken nor genai-prices: each loads on first
use, once per process, so commands that never count tokens never pay for them.
"""

from __future__ import annotations

from registry.tokens import encodings, prices
from registry.tokens.catalog import Catalog, Estimate, ModelInfo, Verdict, budget_verdict

__all__ = ["Catalog", "Estimate", "ModelInfo", "Verdict", "budget_verdict", "warm_up"]


def warm_up() -> None:
    """Load the price catalog and both encodings now, not inside a first request."""
    prices.snapshot()
    for name in encodings.SPECS:
        encodings.encoding(name)
