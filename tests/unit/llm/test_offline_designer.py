from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_pipeline.config import Settings
from agent_pipeline.engine.data import available_pairs
from agent_pipeline.engine.strategy import NAME_PATTERN, load_strategy, parse_strategy
from agent_pipeline.errors import ConfigurationError, DesignError
from agent_pipeline.llm import DataSeries, PastCycle, ResearchMemory, get_designer, save_design
from agent_pipeline.llm.designers.offline import OfflineDesigner

CATALOGUE = [
    DataSeries("EURUSD", "1h", "2023-01-02", "2023-12-29", 6000),
    DataSeries("SP500", "1d", "2000-01-03", "2024-01-02", 6000),
    DataSeries("NASDAQ", "1d", "2000-01-03", "2024-01-02", 6000),
]
PAIRS = {s.pair for s in CATALOGUE}
FAILING = {
    "symbol": "EURUSD",
    "timeframe": "1h",
    "indicators": [{"type": "rsi", "period": 14}, {"type": "cci", "period": 14}],
    "labels": {"zigzag_threshold": 0.01, "lookahead": 20},
}


def design(seed: int = 7, memory: ResearchMemory | None = None, **kw: str):
    return OfflineDesigner(seed).design(memory=memory or ResearchMemory(), catalogue=CATALOGUE, **kw)


def failing_memory(n: int = 6) -> ResearchMemory:
    message = "Training gate failed: accuracy_below_threshold (35% < 45%)"
    cycles = [
        PastCycle(f"op_{i}", datetime(2026, 1, 1, tzinfo=UTC), "failed", f"weak_{i}", FAILING, message)
        for i in range(n)
    ]
    return ResearchMemory(tuple(cycles))


def test_200_seeds_give_200_valid_distinct_strategies() -> None:
    outcomes = [design(seed) for seed in range(200)]
    for outcome in outcomes:
        assert parse_strategy(outcome.document, available=PAIRS) == outcome.strategy
        assert NAME_PATTERN.match(outcome.strategy.name)
        assert outcome.strategy.name.startswith("offline_")
    assert len({o.strategy.name for o in outcomes}) == 200
    assert len({repr(sorted(o.document.items())) for o in outcomes}) == 200


def test_same_seed_and_memory_give_the_same_strategy() -> None:
    assert design(3).document == design(3).document
    assert design(3, failing_memory()).document == design(3, failing_memory()).document


def test_outcome_says_it_is_the_offline_designer_and_keeps_epochs_modest() -> None:
    outcome = design()
    assert outcome.designer == "offline" and outcome.usage is None
    assert "offline designer" in outcome.notes and "ANTHROPIC_API_KEY" in outcome.notes
    assert 20 <= outcome.strategy.training.epochs <= 60


def test_requested_symbol_and_timeframe_are_used() -> None:
    for seed in range(20):
        strategy = design(seed, symbol="SP500", timeframe="1d").strategy
        assert (strategy.symbol, strategy.timeframe) == ("SP500", "1d")


def test_a_request_without_data_is_a_design_error_listing_what_exists() -> None:
    with pytest.raises(DesignError, match=r"no market data for BTC 1h \(available: EURUSD 1h"):
        design(symbol="BTC", timeframe="1h")


def test_memory_of_accuracy_failures_moves_labels_and_indicator_mix_away() -> None:
    # Given six cycles with the same labels and indicators that all failed the accuracy gate
    memory = failing_memory()
    # When designing for the same data with and without that memory
    before = [design(seed, symbol="EURUSD", timeframe="1h") for seed in range(40)]
    after = [design(seed, memory, symbol="EURUSD", timeframe="1h") for seed in range(40)]
    # Then the proposals change, and none sits in the failed label neighbourhood or reuses the failed mix
    assert [o.document for o in before] != [o.document for o in after]
    failed_mix = {"rsi", "cci"}

    def distance(outcome) -> float:
        return abs(math.log(outcome.strategy.labels.zigzag_threshold / 0.01))

    for outcome in after:
        labels = outcome.strategy.labels
        near = distance(outcome) < math.log(1.5) and abs(labels.lookahead - 20) <= max(3, labels.lookahead // 3)
        assert not near
        assert {i.type for i in outcome.strategy.indicators} != failed_mix
    assert statistics.mean(map(distance, after)) > statistics.mean(map(distance, before))
    assert "accuracy_below_threshold x6" in after[0].notes


def test_good_past_strategies_are_mutated() -> None:
    parent = design(11).document
    memory = ResearchMemory(
        (
            PastCycle(
                "op_1",
                datetime(2026, 1, 1, tzinfo=UTC),
                "completed",
                parent["name"],
                parent,
                backtest_result={"sharpe_ratio": 1.5},
            ),
        )
    )
    outcomes = [design(seed, memory) for seed in range(30)]
    mutated = [o for o in outcomes if f"mutated {parent['name']}" in o.notes]
    assert len(mutated) >= 15  # exploitation with probability 1 - EPSILON
    assert all(o.document != parent for o in outcomes)


def test_design_takes_well_under_a_second() -> None:
    started = time.perf_counter()
    design(5, failing_memory(50))
    assert time.perf_counter() - started < 1.0


def test_get_designer_picks_offline_without_a_key_and_refuses_anthropic_without_one() -> None:
    settings = Settings()
    assert get_designer(settings).name == "offline"
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        get_designer(settings, "anthropic")
    with pytest.raises(ConfigurationError, match="unknown designer"):
        get_designer(settings, "gpt")


def test_save_design_writes_a_loadable_yaml_with_a_utc_stamp(tmp_path: Path) -> None:
    outcome = design()
    path = save_design(outcome, tmp_path, now=datetime(2026, 11, 27, 6, 15, tzinfo=UTC))
    assert path.name == f"{outcome.strategy.name}_20261127_061500.yaml"
    assert load_strategy(path) == outcome.strategy


def test_proposed_labels_keep_every_class_at_10_percent_of_training_rows_on_the_bundled_data() -> None:
    # Given the bundled series and the designer's label draws for each of them
    from collections import Counter

    from agent_pipeline.engine.data import load_bars
    from agent_pipeline.engine.dataset import build_dataset

    bundled = [s for s in CATALOGUE if (s.symbol, s.timeframe) in available_pairs()]
    assert {s.pair for s in bundled} == PAIRS
    for series in bundled:
        bars = load_bars(series.symbol, series.timeframe)
        for seed in range(4):
            # When the designer proposes a strategy for that series
            strategy = design(seed, symbol=series.symbol, timeframe=series.timeframe).strategy
            y_train = build_dataset(strategy, bars).y_train
            # Then SELL, HOLD and BUY each hold at least 10% of the training rows
            counts = Counter(y_train.tolist())
            shares = [counts.get(label, 0) / len(y_train) for label in (0, 1, 2)]
            assert min(shares) >= 0.10, (strategy.name, strategy.labels, shares)


def test_fresh_strategies_act_on_their_swing_calls_with_a_low_confidence_threshold() -> None:
    # Given fresh proposals (empty memory) for many seeds
    from agent_pipeline.llm.designers.offline import CONFIDENCE, LABEL_K, bar_volatility

    for seed in range(50):
        strategy = design(seed).strategy
        # Then the backtest acts on BUY/SELL calls just above the three-class floor of 1/3
        assert 1 / 3 < CONFIDENCE[0] <= strategy.backtest.confidence_threshold <= CONFIDENCE[1] < 0.5
        # And the ZigZag threshold sits in the HOLD-plurality band k * volatility * sqrt(lookahead)
        scale = bar_volatility(strategy.symbol, strategy.timeframe) * math.sqrt(strategy.labels.lookahead)
        k = strategy.labels.zigzag_threshold / scale
        assert LABEL_K[0] * 0.99 <= k <= LABEL_K[1] * 1.01, (strategy.name, k)


def test_after_backtest_gate_failures_the_threshold_gets_more_selective_but_still_trades() -> None:
    message = "Backtest gate failed: win_rate_too_low (25% < 45%)"
    memory = ResearchMemory(
        tuple(
            PastCycle(f"op_{i}", datetime(2026, 1, 1, tzinfo=UTC), "failed", f"weak_{i}", FAILING, message)
            for i in range(4)
        )
    )
    from agent_pipeline.llm.designers.offline import CONFIDENCE

    middle = (CONFIDENCE[0] + CONFIDENCE[1]) / 2
    for seed in range(20):
        threshold = design(seed, memory).strategy.backtest.confidence_threshold
        assert middle <= threshold <= CONFIDENCE[1] < 0.5
