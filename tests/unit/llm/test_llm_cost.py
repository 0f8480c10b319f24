from __future__ import annotations

import pytest

from agent_pipeline.errors import BudgetExhaustedError, ConfigurationError
from agent_pipeline.llm.cost import Usage, check_budget, estimate_cost, prices_for


def test_estimate_cost_uses_the_model_price_per_million_tokens() -> None:
    usage = Usage("claude-sonnet-5-5", input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=1_000_000)
    assert estimate_cost("claude-sonnet-5-5", usage) == pytest.approx(2.0 + 1.0 + 0.10)


def test_dated_model_ids_are_priced_by_their_prefix() -> None:
    assert prices_for("claude-haiku-4-5-20251001") == prices_for("claude-haiku-4-5")


def test_unknown_models_are_priced_like_the_dearest_so_budgets_never_under_count() -> None:
    assert prices_for("some-future-model")["output"] == max(p["output"] for p in _all_prices())


def test_prices_can_be_overridden_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_PRICES", '{"my-model": {"input": 1, "output": 2, "cache_read": 0, "cache_write": 0}}')
    assert estimate_cost("my-model", Usage("my-model", input_tokens=1_000_000, output_tokens=1_000_000)) == 3.0


def test_malformed_price_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_PRICES", "not json")
    with pytest.raises(ConfigurationError, match="KTRDR_PRICES"):
        prices_for("claude-sonnet-5-5")


def test_usages_add_up_over_turns() -> None:
    a = Usage.priced("claude-sonnet-5-5", input_tokens=1000, output_tokens=100)
    b = Usage.priced("claude-sonnet-5-5", input_tokens=500, output_tokens=50, cache_read_tokens=10)
    total = a + b
    assert (total.input_tokens, total.output_tokens, total.cache_read_tokens) == (1500, 150, 10)
    assert total.cost_usd == pytest.approx(a.cost_usd + b.cost_usd)
    assert total.model == "claude-sonnet-5-5"
    assert total.to_dict()["cost_usd"] == total.cost_usd


def test_check_budget_raises_with_the_spend_in_the_message() -> None:
    with pytest.raises(BudgetExhaustedError) as caught:
        check_budget(5.02, 5.0)
    assert str(caught.value) == "daily LLM budget exhausted: $5.02 of $5.00 spent today"
    assert caught.value.reason == "budget_exhausted"


def test_check_budget_passes_below_the_budget() -> None:
    check_budget(4.99, 5.0)


def _all_prices() -> list[dict[str, float]]:
    from agent_pipeline.llm.cost import PRICES

    return list(PRICES.values())
