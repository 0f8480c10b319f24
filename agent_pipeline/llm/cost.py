"""Token usage, its price, and the daily budget check.

Prices are USD per million tokens (platform.claude.com/docs/en/about-claude/pricing). The table can be
overridden or extended without a release through `KTRDR_PRICES`, a JSON object such as
`{"claude-sonnet-5-5": {"input": 2, "output": 10, "cache_read": 0.1, "cache_write": 2.5}}`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent_pipeline.errors import BudgetExhaustedError, ConfigurationError

if TYPE_CHECKING:
    from agent_pipeline.store.operations import OperationsStore

logger = logging.getLogger(__name__)

# USD per million tokens: input, output, cache read (hit), cache write (5-minute TTL).
PRICES: dict[str, dict[str, float]] = {
    "claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_read": 0.20, "cache_write": 5.0},
    "claude-opus-5": {"input": 5.0, "output": 25.0, "cache_read": 0.50, "cache_write": 6.25},
    "claude-opus-4": {"input": 5.0, "output": 25.0, "cache_read": 0.50, "cache_write": 6.25},
    "claude-sonnet-5-5": {"input": 2.0, "output": 10.0, "cache_read": 0.10, "cache_write": 2.5},
    "claude-sonnet-5": {"input": 2.0, "output": 10.0, "cache_read": 0.20, "cache_write": 2.5},
    "claude-sonnet-4": {"input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75},
    # Haiku 5.5's price for prompts up to 100k tokens; a design or assessment prompt is far below that.
    "claude-haiku-5-5": {"input": 0.10, "output": 0.50, "cache_read": 0.01, "cache_write": 0.125},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_read": 0.10, "cache_write": 1.25},
    "claude-fable-5-1": {"input": 10.0, "output": 50.0, "cache_read": 0.25, "cache_write": 12.5},
    "claude-fable-5": {"input": 10.0, "output": 50.0, "cache_read": 1.0, "cache_write": 12.5},
}
# An unknown model is priced like the dearest known one, so the budget check never under-counts.
_FALLBACK = max(PRICES.values(), key=lambda p: p["output"])
PRICES_ENV = "KTRDR_PRICES"


@dataclass(frozen=True)
class Usage:
    """Tokens one or more LLM calls used and what they cost; `a + b` sums a conversation's turns."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        if not self.model or self.model == other.model:
            model = other.model or self.model
        else:
            model = f"{self.model}+{other.model}" if other.model else self.model
        return Usage(
            model=model,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def priced(
        cls,
        model: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> Usage:
        """A usage record with its cost filled in from the price table."""
        usage = cls(model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        return cls(**{**usage.to_dict(), "cost_usd": estimate_cost(model, usage)})


def prices_for(model: str) -> dict[str, float]:
    """The price row of a model id: exact, else the longest known prefix (dated ids), else the fallback."""
    table = {**PRICES, **_env_prices()}
    if model in table:
        return table[model]
    prefixes = [key for key in table if model.startswith(key)]
    if prefixes:
        return table[max(prefixes, key=len)]
    logger.warning("no price known for model; using the dearest known price", extra={"model": model})
    return _FALLBACK


def estimate_cost(model: str, usage: Usage) -> float:
    """USD cost of `usage` on `model`, rounded to 1e-8."""
    price = prices_for(model)
    total = (
        usage.input_tokens * price["input"]
        + usage.output_tokens * price["output"]
        + usage.cache_read_tokens * price["cache_read"]
        + usage.cache_write_tokens * price["cache_write"]
    )
    return round(total / 1_000_000, 8)


def spent_today(store: OperationsStore) -> float:
    """USD spent on LLM calls since midnight UTC (the trigger's budget check, the API, the CLI, the dashboard)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return store.spend_since(midnight)


def check_budget(spent_today_usd: float, budget_usd: float) -> None:
    """Refuse another LLM call once today's spend has reached the budget (a budget of 0 allows none).

    Raises:
        BudgetExhaustedError: `daily LLM budget exhausted: $5.02 of $5.00 spent today`.
    """
    if spent_today_usd >= budget_usd:
        raise BudgetExhaustedError(
            f"daily LLM budget exhausted: ${spent_today_usd:.2f} of ${budget_usd:.2f} spent today"
        )


def _env_prices() -> dict[str, dict[str, float]]:
    raw = os.environ.get(PRICES_ENV)
    if not raw:
        return {}
    try:
        table = json.loads(raw)
        return {
            str(model): {key: float(row[key]) for key in ("input", "output", "cache_read", "cache_write")}
            for model, row in table.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigurationError(
            f"invalid setting {PRICES_ENV}: must be a JSON object of "
            '{"<model>": {"input", "output", "cache_read", "cache_write"}} prices in USD per million tokens'
        ) from None
