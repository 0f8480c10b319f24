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


# --- True words (issue 23): the text describes the cycle that ran: its folds, its classes and chance, its gates


def four_folds(**figures: float) -> dict:
    """A walk-forward backtest over four folds, as the backtest phase records it."""
    folds = [{"fold": k, "total_return": 0.01} for k in range(1, 5)]
    return {**GOOD_BACKTEST, **figures, "folds": folds}


def words(outcome) -> str:
    return " | ".join([*outcome.strengths, *outcome.weaknesses, *outcome.suggestions])


TWO_CLASS_STRATEGY = STRATEGY.model_copy(update={"labels": STRATEGY.labels.model_copy(update={"hold": False})})
# The demo's two-class model of issue 23: worse than a coin and than always saying "up"
COIN = {
    "accuracy": 0.493, "baseline_accuracy": 0.563, "balanced_accuracy": 0.494, "log_loss": 0.829,
    "prior_log_loss": 0.692, "n_classes": 2, "chance": 0.5, "skill_pvalue": 0.62,
}  # fmt: skip
PASSED = {"passed": True, "reason": "passed", "bypassed": False}


def test_a_two_class_cycle_without_skill_is_judged_against_chance_of_50_percent_never_33() -> None:
    outcome = OfflineAssessor().assess(strategy=TWO_CLASS_STRATEGY, training_result=COIN, backtest_result=four_folds())
    assert "No skill over 4 walk-forward folds: balanced accuracy 49.4% vs chance 50% for 2 classes, p = 0.62" in (
        outcome.weaknesses
    )
    assert "33" not in words(outcome) and "three classes" not in words(outcome)


def test_a_two_class_row_older_than_its_chance_takes_its_classes_from_the_labels() -> None:
    # Given a result recorded before n_classes and skill_pvalue existed, on a strategy whose labels have no HOLD
    old = {"accuracy": 0.52, "balanced_accuracy": 0.52}
    outcome = OfflineAssessor().assess(strategy=TWO_CLASS_STRATEGY, training_result=old, backtest_result={})
    # Then 52% is no skill: it is within a few points of a coin, although it is far above 1/3
    assert any(w.startswith("No skill") and "chance 50% for 2 classes" in w for w in outcome.weaknesses)


def test_a_three_class_cycle_with_a_small_p_value_shows_skill_against_chance_of_a_third() -> None:
    skilled = {"accuracy": 0.47, "balanced_accuracy": 0.41, "n_classes": 3, "chance": 1 / 3, "skill_pvalue": 0.004}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result=skilled, backtest_result=four_folds())
    assert (
        "Out-of-sample skill over 4 walk-forward folds: balanced accuracy 41% vs chance 33.3% for 3 classes, "
        "p = 0.004" in outcome.strengths
    )


def test_the_p_value_decides_skill_not_the_distance_from_chance() -> None:
    far_but_noisy = {"balanced_accuracy": 0.60, "n_classes": 2, "chance": 0.5, "skill_pvalue": 0.2}
    outcome = OfflineAssessor().assess(strategy=TWO_CLASS_STRATEGY, training_result=far_but_noisy, backtest_result={})
    assert any(w.startswith("No skill") and "p = 0.2" in w for w in outcome.weaknesses)


def test_the_generic_text_names_the_folds_the_cycle_ran_never_a_single_held_out_period() -> None:
    outcome = assess({}, {"folds": four_folds()["folds"]})
    text = words(outcome)
    assert "over 4 walk-forward folds" in text and "All of its 4 out-of-sample folds" in text
    assert "single held-out period" not in text


def test_a_bypassed_gate_is_named_with_what_it_would_have_said_and_caps_the_verdict() -> None:
    # Given strong figures from a cycle run with --bypass-gates whose backtest gate would have stopped it
    bypassed = {"passed": False, "reason": "win_rate_too_low (0% < 45%)", "bypassed": True}
    gates = {"training_gate": PASSED, "backtest_gate": bypassed}
    found = four_folds(deflated_sharpe=0.99, trials=3)
    outcome = OfflineAssessor().assess(
        strategy=STRATEGY, training_result=GOOD_TRAINING, backtest_result=found, gates=gates
    )
    # Then the gate is the first weakness, the verdict is not promising, and nothing says the gates passed
    assert outcome.weaknesses[0] == (
        "The backtest gate was bypassed: it would have failed (win_rate_too_low (0% < 45%)), so this cycle is not a"
        " discovery"
    )
    assert outcome.verdict != "promising"
    assert "Passed the training and backtest gates" not in words(outcome)


def test_gates_that_passed_are_said_to_have_passed() -> None:
    gates = {"training_gate": PASSED, "backtest_gate": PASSED}
    outcome = OfflineAssessor().assess(strategy=STRATEGY, training_result={}, backtest_result={}, gates=gates)
    assert "Passed the training and backtest gates" in outcome.strengths


def test_the_whipsaw_advice_quotes_the_cycles_own_lookahead_not_the_generators_window() -> None:
    # Given a strategy whose labels look 7 bars ahead, trading 40 trades over 800 bars half the time (10 bars each)
    labels = STRATEGY.labels.model_copy(update={"lookahead": 7})
    strategy = STRATEGY.model_copy(update={"labels": labels})
    losing = {**BAD_BACKTEST, "num_trades": 40, "exposure": 0.5, "n_bars": 800}
    (advice,) = [s for s in assess_with(strategy, losing).suggestions if "confidence_threshold" in s]
    assert "up to the 7 bars the labels look ahead" in advice and "10-20" not in advice
    # Trades shorter than the look-ahead are quoted with their own length
    short = {**losing, "num_trades": 200}
    (advice,) = [s for s in assess_with(strategy, short).suggestions if "confidence_threshold" in s]
    assert advice.endswith("its trades last 2.0 bars on average")


def assess_with(strategy, backtest: dict):
    return OfflineAssessor().assess(strategy=strategy, training_result={}, backtest_result=backtest)
