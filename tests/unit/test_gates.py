"""The gates' decisions, wording, ordering, boundaries and environment overrides."""

from __future__ import annotations

import math

import pytest

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.gates import (
    BacktestThresholds,
    TrainingThresholds,
    check_backtest_gate,
    check_training_gate,
    format_percent,
)

GOOD_TRAINING = {"accuracy": 0.65, "final_loss": 0.35, "initial_loss": 0.85}
GOOD_BACKTEST = {"win_rate": 0.55, "max_drawdown": 0.10, "sharpe_ratio": 1.2}


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "TRAINING_GATE_MIN_ACCURACY",
        "TRAINING_GATE_MAX_LOSS",
        "TRAINING_GATE_MIN_LOSS_DECREASE",
        "BACKTEST_GATE_MIN_WIN_RATE",
        "BACKTEST_GATE_MAX_DRAWDOWN",
        "BACKTEST_GATE_MIN_SHARPE",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.mark.parametrize(
    ("fraction", "text"),
    [
        (0.35, "35%"),
        (0.449, "44.9%"),
        (0.45, "45%"),
        (0.0, "0%"),
        (1.0, "100%"),
        (0.4449, "44.5%"),
        (0.05263, "5.3%"),
        (-0.1, "-10%"),
        (-0.0001, "0%"),
        (0.2, "20%"),
    ],
)
def test_format_percent_uses_at_most_one_decimal_without_trailing_zero(fraction, text):
    assert format_percent(fraction) == text


# --- training gate -----------------------------------------------------------------------------------


def test_training_gate_passes_good_results():
    assert check_training_gate(GOOD_TRAINING) == (True, "passed")


def test_training_gate_reports_low_accuracy_with_both_values():
    metrics = {"accuracy": 0.35, "final_loss": 0.9, "initial_loss": 0.95}
    assert check_training_gate(metrics) == (False, "accuracy_below_threshold (35% < 45%)")


def test_training_gate_shows_one_decimal_for_fractional_accuracy():
    metrics = {**GOOD_TRAINING, "accuracy": 0.449}
    assert check_training_gate(metrics) == (False, "accuracy_below_threshold (44.9% < 45%)")


def test_training_gate_reports_high_loss_with_two_decimals():
    metrics = {"accuracy": 0.5, "final_loss": 0.9, "initial_loss": 2.0}
    assert check_training_gate(metrics) == (False, "loss_too_high (0.90 > 0.80)")


def test_training_gate_reports_insufficient_loss_decrease():
    metrics = {"accuracy": 0.5, "final_loss": 0.76, "initial_loss": 0.8}
    assert check_training_gate(metrics) == (False, "insufficient_loss_decrease (5% < 20%)")


def test_training_gate_reports_a_loss_increase_as_negative_decrease():
    metrics = {"accuracy": 0.5, "final_loss": 0.6, "initial_loss": 0.5}
    assert check_training_gate(metrics) == (False, "insufficient_loss_decrease (-20% < 20%)")


def test_training_gate_checks_accuracy_before_loss_and_decrease():
    # Every check fails; accuracy is first.
    metrics = {"accuracy": 0.1, "final_loss": 5.0, "initial_loss": 4.0}
    assert check_training_gate(metrics)[1].startswith("accuracy_below_threshold")


def test_training_gate_checks_loss_before_decrease():
    metrics = {"accuracy": 0.9, "final_loss": 5.0, "initial_loss": 4.0}
    assert check_training_gate(metrics)[1].startswith("loss_too_high")


def test_training_gate_accepts_values_exactly_at_the_thresholds():
    # (1.0 - 0.8) / 1.0 is 0.19999999999999996 in binary floats; it must still meet a 20% gate.
    metrics = {"accuracy": 0.45, "final_loss": 0.8, "initial_loss": 1.0}
    assert check_training_gate(metrics) == (True, "passed")


def test_training_gate_rejects_values_just_past_the_thresholds():
    assert not check_training_gate({**GOOD_TRAINING, "accuracy": 0.4499})[0]
    assert not check_training_gate({"accuracy": 0.5, "final_loss": 0.8001, "initial_loss": 2})[0]
    assert not check_training_gate({"accuracy": 0.5, "final_loss": 0.8, "initial_loss": 0.9999})[0]


@pytest.mark.parametrize("name", ["accuracy", "final_loss", "initial_loss"])
def test_training_gate_fails_on_a_missing_metric(name):
    metrics = {k: v for k, v in GOOD_TRAINING.items() if k != name}
    assert check_training_gate(metrics) == (False, f"missing_metric ({name})")


@pytest.mark.parametrize("name", ["accuracy", "final_loss", "initial_loss"])
def test_training_gate_fails_on_a_none_metric(name):
    assert check_training_gate({**GOOD_TRAINING, name: None}) == (False, f"missing_metric ({name})")


@pytest.mark.parametrize("name", ["accuracy", "final_loss", "initial_loss"])
def test_training_gate_fails_on_a_nan_metric(name):
    expected = (False, f"invalid_metric ({name} is NaN)")
    assert check_training_gate({**GOOD_TRAINING, name: math.nan}) == expected


def test_training_gate_fails_on_a_non_numeric_metric():
    assert check_training_gate({**GOOD_TRAINING, "accuracy": "high"}) == (
        False,
        "invalid_metric (accuracy='high')",
    )


def test_training_gate_fails_on_a_boolean_metric():
    assert check_training_gate({**GOOD_TRAINING, "accuracy": True})[0] is False


def test_training_gate_fails_on_a_zero_initial_loss():
    passed, reason = check_training_gate({"accuracy": 0.5, "final_loss": 0.1, "initial_loss": 0.0})
    assert passed is False
    assert reason.startswith("invalid_metric (initial_loss")


def test_training_gate_fails_on_an_infinite_loss():
    metrics = {"accuracy": 0.5, "final_loss": math.inf, "initial_loss": 1.0}
    assert check_training_gate(metrics) == (False, "loss_too_high (inf > 0.80)")


def test_training_gate_accepts_numeric_strings_and_numpy_numbers():
    import numpy as np

    metrics = {"accuracy": np.float32(0.65), "final_loss": "0.35", "initial_loss": np.float64(0.85)}
    assert check_training_gate(metrics) == (True, "passed")


def test_training_gate_uses_explicit_thresholds():
    limits = TrainingThresholds(min_accuracy=0.7, max_loss=0.8, min_loss_decrease=0.2)
    assert check_training_gate(GOOD_TRAINING, limits) == (False, "accuracy_below_threshold (65% < 70%)")


def test_training_gate_reads_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRAINING_GATE_MIN_ACCURACY", "0.7")
    monkeypatch.setenv("TRAINING_GATE_MAX_LOSS", "0.3")
    monkeypatch.setenv("TRAINING_GATE_MIN_LOSS_DECREASE", "0.65")
    reset_settings()
    assert check_training_gate(GOOD_TRAINING) == (False, "accuracy_below_threshold (65% < 70%)")
    assert check_training_gate({**GOOD_TRAINING, "accuracy": 0.8}) == (False, "loss_too_high (0.35 > 0.30)")
    metrics = {"accuracy": 0.8, "final_loss": 0.3, "initial_loss": 0.8}
    assert check_training_gate(metrics) == (False, "insufficient_loss_decrease (62.5% < 65%)")


def test_training_thresholds_from_settings_copy_each_setting(monkeypatch):
    monkeypatch.setenv("TRAINING_GATE_MIN_ACCURACY", "0.5")
    monkeypatch.setenv("TRAINING_GATE_MAX_LOSS", "0.7")
    monkeypatch.setenv("TRAINING_GATE_MIN_LOSS_DECREASE", "0.1")
    reset_settings()
    assert TrainingThresholds.from_settings(get_settings()) == TrainingThresholds(0.5, 0.7, 0.1)


def test_training_thresholds_default_to_the_documented_values():
    assert TrainingThresholds.from_settings(get_settings()) == TrainingThresholds(0.45, 0.8, 0.2)


# --- backtest gate -----------------------------------------------------------------------------------


def test_backtest_gate_passes_good_results():
    assert check_backtest_gate(GOOD_BACKTEST) == (True, "passed")


def test_backtest_gate_reports_low_win_rate():
    assert check_backtest_gate({**GOOD_BACKTEST, "win_rate": 0.4}) == (False, "win_rate_too_low (40% < 45%)")


def test_backtest_gate_reports_high_drawdown_as_percentages():
    assert check_backtest_gate({**GOOD_BACKTEST, "max_drawdown": 0.55}) == (
        False,
        "drawdown_too_high (55% > 40%)",
    )


def test_backtest_gate_reports_low_sharpe_with_two_decimals():
    assert check_backtest_gate({**GOOD_BACKTEST, "sharpe_ratio": -0.8}) == (
        False,
        "sharpe_too_low (-0.80 < -0.50)",
    )


def test_backtest_gate_checks_win_rate_then_drawdown_then_sharpe():
    bad = {"win_rate": 0.1, "max_drawdown": 0.9, "sharpe_ratio": -3.0}
    assert check_backtest_gate(bad)[1].startswith("win_rate_too_low")
    assert check_backtest_gate({**bad, "win_rate": 0.5})[1].startswith("drawdown_too_high")
    assert check_backtest_gate({**bad, "win_rate": 0.5, "max_drawdown": 0.1})[1].startswith("sharpe_too_low")


def test_backtest_gate_accepts_values_exactly_at_the_thresholds():
    metrics = {"win_rate": 0.45, "max_drawdown": 0.4, "sharpe_ratio": -0.5}
    assert check_backtest_gate(metrics) == (True, "passed")


def test_backtest_gate_rejects_values_just_past_the_thresholds():
    assert not check_backtest_gate({**GOOD_BACKTEST, "win_rate": 0.4499})[0]
    assert not check_backtest_gate({**GOOD_BACKTEST, "max_drawdown": 0.4001})[0]
    assert not check_backtest_gate({**GOOD_BACKTEST, "sharpe_ratio": -0.5001})[0]


@pytest.mark.parametrize("name", ["win_rate", "max_drawdown", "sharpe_ratio"])
def test_backtest_gate_fails_on_a_missing_metric(name):
    metrics = {k: v for k, v in GOOD_BACKTEST.items() if k != name}
    assert check_backtest_gate(metrics) == (False, f"missing_metric ({name})")


@pytest.mark.parametrize("name", ["win_rate", "max_drawdown", "sharpe_ratio"])
def test_backtest_gate_fails_on_a_nan_metric(name):
    expected = (False, f"invalid_metric ({name} is NaN)")
    assert check_backtest_gate({**GOOD_BACKTEST, name: math.nan}) == expected


def test_backtest_gate_uses_explicit_thresholds():
    limits = BacktestThresholds(min_win_rate=0.6, max_drawdown=0.4, min_sharpe=-0.5)
    assert check_backtest_gate(GOOD_BACKTEST, limits) == (False, "win_rate_too_low (55% < 60%)")


def test_backtest_gate_reads_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKTEST_GATE_MIN_WIN_RATE", "0.6")
    monkeypatch.setenv("BACKTEST_GATE_MAX_DRAWDOWN", "0.05")
    monkeypatch.setenv("BACKTEST_GATE_MIN_SHARPE", "1.5")
    reset_settings()
    assert check_backtest_gate(GOOD_BACKTEST) == (False, "win_rate_too_low (55% < 60%)")
    assert check_backtest_gate({**GOOD_BACKTEST, "win_rate": 0.7}) == (False, "drawdown_too_high (10% > 5%)")
    metrics = {**GOOD_BACKTEST, "win_rate": 0.7, "max_drawdown": 0.01}
    assert check_backtest_gate(metrics) == (False, "sharpe_too_low (1.20 < 1.50)")


def test_backtest_thresholds_default_to_the_documented_values():
    assert BacktestThresholds.from_settings(get_settings()) == BacktestThresholds(0.45, 0.4, -0.5)


# --- Walk-forward checks, after the spec's and only when their metric is present -------------------------


def test_training_gate_reports_no_skill_against_chance_after_the_spec_checks():
    coin = {**GOOD_TRAINING, "balanced_accuracy": 0.504, "chance": 0.5, "skill_pvalue": 0.41}
    assert check_training_gate(coin) == (False, "no_skill (balanced accuracy 50.4% vs chance 50.0%, p = 0.41)")
    three = {**GOOD_TRAINING, "balanced_accuracy": 0.352, "chance": 1 / 3, "skill_pvalue": 0.2}
    assert check_training_gate(three) == (False, "no_skill (balanced accuracy 35.2% vs chance 33.3%, p = 0.2)")
    # the spec's checks still come first, with their messages unchanged
    failing = {**coin, "accuracy": 0.35}
    assert check_training_gate(failing) == (False, "accuracy_below_threshold (35% < 45%)")


def test_training_gate_passes_skill_at_the_threshold_and_ignores_an_absent_test():
    skilled = {**GOOD_TRAINING, "balanced_accuracy": 0.56, "chance": 0.5}
    assert check_training_gate({**skilled, "skill_pvalue": 0.05}) == (True, "passed")
    assert check_training_gate({**skilled, "skill_pvalue": 0.0005}) == (True, "passed")
    assert check_training_gate({**skilled, "skill_pvalue": 0.0501})[0] is False
    # the spec's mappings carry no walk-forward test: only its three checks apply
    assert check_training_gate({**GOOD_TRAINING, "balanced_accuracy": 0.2}) == (True, "passed")


def test_a_skill_test_without_its_figures_is_a_missing_metric():
    assert check_training_gate({**GOOD_TRAINING, "skill_pvalue": 0.5}) == (False, "missing_metric (balanced_accuracy)")


def test_backtest_gate_reports_too_few_trades_after_the_spec_checks():
    assert check_backtest_gate({**GOOD_BACKTEST, "num_trades": 1}) == (False, "too_few_trades (1 < 10)")
    assert check_backtest_gate({**GOOD_BACKTEST, "num_trades": 10}) == (True, "passed")
    failing = {**GOOD_BACKTEST, "num_trades": 1, "sharpe_ratio": -0.9}
    assert check_backtest_gate(failing) == (False, "sharpe_too_low (-0.90 < -0.50)")


def test_new_thresholds_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRAINING_GATE_MAX_P", "0.01")
    monkeypatch.setenv("BACKTEST_GATE_MIN_TRADES", "50")
    reset_settings()
    assert check_training_gate({**GOOD_TRAINING, "balanced_accuracy": 0.53, "chance": 0.5, "skill_pvalue": 0.02}) == (
        False,
        "no_skill (balanced accuracy 53.0% vs chance 50.0%, p = 0.02)",
    )
    assert check_backtest_gate({**GOOD_BACKTEST, "num_trades": 42}) == (False, "too_few_trades (42 < 50)")


def test_backtest_closeness_is_one_when_passing_and_falls_with_each_shortfall() -> None:
    from agent_pipeline.gates import BacktestThresholds, backtest_closeness

    limits = BacktestThresholds(min_win_rate=0.45, max_drawdown=0.4, min_sharpe=-0.5, min_trades=10)
    passing = {"win_rate": 0.5, "max_drawdown": 0.2, "sharpe_ratio": 1.0, "num_trades": 40}
    assert backtest_closeness(passing, limits) == 1.0
    assert backtest_closeness({**passing, "win_rate": 0.36}, limits) == pytest.approx(0.8)
    assert backtest_closeness({**passing, "max_drawdown": 0.8}, limits) == pytest.approx(0.5)
    assert backtest_closeness({**passing, "num_trades": 5}, limits) == pytest.approx(0.5)
    assert backtest_closeness({**passing, "sharpe_ratio": -1.0}, limits) == pytest.approx(0.5)
    assert backtest_closeness({**passing, "win_rate": 0.36, "num_trades": 5}, limits) == pytest.approx(0.4)
    assert backtest_closeness({**passing, "sharpe_ratio": float("nan")}, limits) == 0.0
    assert backtest_closeness({k: v for k, v in passing.items() if k != "win_rate"}, limits) == 0.0


def test_the_retired_balanced_accuracy_threshold_warns_once_and_names_its_replacement(monkeypatch, caplog):
    monkeypatch.setenv("TRAINING_GATE_MIN_BALANCED_ACCURACY", "0.4")
    reset_settings()
    with caplog.at_level("WARNING", logger="agent_pipeline.config"):
        get_settings()
        get_settings()
    lines = [r.getMessage() for r in caplog.records if "TRAINING_GATE_MIN_BALANCED_ACCURACY" in r.getMessage()]
    assert len(lines) == 1
    assert "TRAINING_GATE_MAX_P" in lines[0]
    assert not hasattr(get_settings(), "training_gate_min_balanced_accuracy")
