"""List prices and context windows from Pydantic's genai-prices catalog, offline.

genai-prices ships its whole catalog inside its wheel (`genai_prices.data`), and promptreg
reads only that bundled snapshot. The package can refresh prices over the network, but only
when told to (`genai_prices.UpdatePrices().start()`), which promptreg never does: what a
version records is what the installed, pinned package says, so upgrading it is the
deliberate act that changes prices.

Names resolve the way genai-prices resolves litellm's model names: a bare name (`gpt-4o`,
`claude-haiku-4-5`, a dated snapshot such as `claude-haiku-4-5-20251001`) finds its
provider by the name; `provider/model` (`azure/gpt-4o`, `anthropic/claude-sonnet-4-5`,
`openrouter/openai/gpt-4o`) looks in that provider.

The price recorded is today's list price: a change the catalog schedules for a date applies
from that date, while time-of-day discounts (DeepSeek's off-peak hours) are left out, so a
sync at night records what one at noon does. A tiered price (Claude Sonnet 4.5 above 200k
input tokens) records its base tier. genai-prices has no maximum output per model, so
`max_output_tokens` comes only from `_models.yaml`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo as ListedModel
    from genai_prices.types import ModelPrice

_lock = threading.Lock()
_snapshot: DataSnapshot | None = None


@dataclass(frozen=True)
class Listed:
    """One model as the catalog lists it."""

    model_id: str
    provider: str
    input_usd_per_token: float | None
    output_usd_per_token: float | None
    context_window: int | None


def snapshot() -> DataSnapshot:
    """The catalog bundled with genai-prices, loaded once per process."""
    global _snapshot
    if _snapshot is None:
        with _lock:
            if _snapshot is None:
                from genai_prices.data_snapshot import get_snapshot

                _snapshot = get_snapshot()
    return _snapshot


@lru_cache(maxsize=1024)
def listed(model: str) -> Listed | None:
    """The catalog's entry for `model`, or None when genai-prices does not know it."""
    try:
        provider, info = snapshot().find_provider_model(model, None, "litellm", None)
    except LookupError:
        return None
    if not _names(model, info.id):
        return None  # the catalog matched a prefix: `claude-haiku-4-5-fake` is a typo, not a model
    price = _price_today(info, datetime.now(UTC).date())
    return Listed(
        model_id=info.id,
        provider=provider.id,
        input_usd_per_token=_per_token(price.input_mtok),
        output_usd_per_token=_per_token(price.output_mtok),
        context_window=info.context_window,
    )


# What may follow a catalog id in a model name: a snapshot date or an alias of the newest.
_SUFFIX = re.compile(r"^[-@:](\d{8}|\d{4}-\d{2}-\d{2}|\d{3,4}|latest|preview)$")


def _names(model: str, model_id: str) -> bool:
    """True when `model` names catalog entry `model_id` itself (provider prefix, case and a
    snapshot suffix aside) rather than only starting like it."""
    name = model.rsplit("/", 1)[-1].lower()
    return name == model_id or (
        name.startswith(model_id) and bool(_SUFFIX.match(name[len(model_id) :]))
    )


def _price_today(info: ListedModel, today: date) -> ModelPrice:
    from genai_prices.types import ModelPrice, StartDateConstraint

    if isinstance(info.prices, ModelPrice):
        return info.prices
    # genai-prices tries conditional prices last to first and falls back to the first.
    for conditional in reversed(info.prices):
        constraint = conditional.constraint
        if constraint is None or (
            isinstance(constraint, StartDateConstraint) and constraint.start_date <= today
        ):
            return conditional.prices
    return info.prices[0].prices


def _per_token(per_mtok: Any) -> float | None:
    from genai_prices.types import TieredPrices

    if isinstance(per_mtok, TieredPrices):
        per_mtok = per_mtok.base
    if per_mtok is None:
        return None
    return float(Decimal(per_mtok) / 1_000_000)
