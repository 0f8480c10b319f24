from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_pipeline.config import Settings
from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.errors import ConfigurationError
from agent_pipeline.llm import get_assessor, save_assessment
from agent_pipeline.llm.assessors.offline import OfflineAssessor

STRATEGY = parse_strategy(
    {
        "name": "rsi_probe",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 20, 40]}}},
    }
)
GOOD_TRAINING = {
    "accuracy": 0.58,
    "val_accuracy": 0.59,
    "test_accuracy": 0.58,
    "final_loss": 0.6,
    "initial_loss": 1.1,
}
GOOD_BACKTEST = {
    "total_return": 0.14,
    "buy_and_hold_return": 0.03,
    "sharpe_ratio": 1.3,
    "win_rate": 0.56,
    "max_drawdown": 0.08,
    "num_trades": 42,
}
BAD_BACKTEST = {
    "total_return": -0.12,
    "buy_and_hold_return": 0.05,
    "sharpe_ratio": -0.8,
    "win_rate": 0.31,
    "max_drawdown": 0.45,
    "num_trades": 4,
}


def assess(training: dict, backtest: dict):
    return OfflineAssessor().assess(strategy=STRATEGY, training_result=training, backtest_result=backtest)


def test_strong_results_are_promising_with_their_numbers_as_strengths() -> None:
    outcome = assess(GOOD_TRAINING, GOOD_BACKTEST)
    assert outcome.verdict == "promising"
    assert any("Positive Sharpe" in s for s in outcome.strengths)
    assert any("Beat buy-and-hold" in s for s in outcome.strengths)


def test_weak_results_are_poor_and_name_each_problem() -> None:
    outcome = assess({"accuracy": 0.4, "val_accuracy": 0.52, "test_accuracy": 0.4}, BAD_BACKTEST)
    assert outcome.verdict == "poor"
    text = " ".join(outcome.weaknesses)
    assert "No edge over buy-and-hold" in text
    assert len(outcome.weaknesses) == 4  # more rules fired than a list may hold


@pytest.mark.parametrize(
    ("training", "backtest", "phrase"),
    [
        ({"val_accuracy": 0.60, "test_accuracy": 0.50}, {}, "Overfitting"),
        ({}, {"total_return": 0.01, "buy_and_hold_return": 0.02}, "No edge"),
        ({}, {"num_trades": 3}, "Too few trades"),
        ({}, {"max_drawdown": 0.3}, "High maximum drawdown"),
    ],
)
def test_each_documented_rule_reports_its_weakness(training: dict, backtest: dict, phrase: str) -> None:
    assert any(phrase in w for w in assess(training, backtest).weaknesses)


def test_accuracy_gap_within_five_points_is_not_overfitting() -> None:
    outcome = assess({"val_accuracy": 0.55, "test_accuracy": 0.52}, {})
    assert not any("Overfitting" in w for w in outcome.weaknesses)


def test_every_list_holds_two_to_four_items_even_with_no_metrics() -> None:
    for training, backtest in [({}, {}), (GOOD_TRAINING, GOOD_BACKTEST), ({"accuracy": 0.3}, BAD_BACKTEST)]:
        outcome = assess(training, backtest)
        for items in (outcome.strengths, outcome.weaknesses, outcome.suggestions):
            assert 2 <= len(items) <= 4
        assert outcome.verdict in ("promising", "mediocre", "poor")


def test_save_assessment_writes_json_atomically(tmp_path: Path) -> None:
    outcome = assess(GOOD_TRAINING, GOOD_BACKTEST)
    path = save_assessment(outcome, tmp_path / "run")
    assert path == tmp_path / "run" / "assessment.json"
    assert json.loads(path.read_text()) == outcome.to_dict()
    assert [p.name for p in path.parent.iterdir()] == ["assessment.json"]


def test_get_assessor_follows_the_designer_setting() -> None:
    assert get_assessor(Settings()).name == "offline"
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        get_assessor(Settings(), "anthropic")


def test_importing_the_llm_package_does_not_import_the_sdk() -> None:
    code = "import sys, agent_pipeline.llm as llm; llm.get_designer; print('anthropic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_one_trade_strategy_is_never_promising_however_good_its_figures():
    # The demo's old "promising" verdict: one long trade through a bull market, +59.9% against +44.7%
    one_trade = {**GOOD_BACKTEST, "total_return": 0.599, "buy_and_hold_return": 0.447, "num_trades": 1}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result=GOOD_TRAINING, backtest_result=one_trade)
    assert outcome.verdict != "promising"
    assert any("Too few trades (1 < 10)" in w for w in outcome.weaknesses)


def test_no_excess_return_over_buy_and_hold_is_never_promising():
    no_edge = {**GOOD_BACKTEST, "total_return": 0.03, "buy_and_hold_return": 0.03, "deflated_sharpe": 0.99}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result=GOOD_TRAINING, backtest_result=no_edge)
    assert outcome.verdict != "promising"


def test_the_deflated_sharpe_and_trial_count_are_weighed():
    lucky = {**GOOD_BACKTEST, "deflated_sharpe": 0.2, "trials": 40}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result=GOOD_TRAINING, backtest_result=lucky)
    assert any("Deflated Sharpe 0.20 (40 trials counted)" in w for w in outcome.weaknesses)
    found = {**GOOD_BACKTEST, "deflated_sharpe": 0.97, "trials": 40}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result=GOOD_TRAINING, backtest_result=found)
    assert outcome.verdict == "promising"
    assert any("Deflated Sharpe 0.97" in s for s in outcome.strengths)
