"""Any metrics mapping gives each gate `(passed, reason)` with a reason from a known family."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_pipeline.gates import BacktestThresholds, TrainingThresholds, check_backtest_gate, check_training_gate

# Every reason a gate may give, by its leading word; the text in parentheses shows value against threshold.
TRAINING_FAMILIES = {
    "passed", "accuracy_below_threshold", "loss_too_high", "insufficient_loss_decrease", "no_skill",
    "missing_metric", "invalid_metric",
}  # fmt: skip
BACKTEST_FAMILIES = {
    "passed", "win_rate_too_low", "drawdown_too_high", "sharpe_too_low", "too_few_trades",
    "missing_metric", "invalid_metric",
}  # fmt: skip
TRAINING_KEYS = ("accuracy", "final_loss", "initial_loss", "balanced_accuracy", "chance", "skill_pvalue")
BACKTEST_KEYS = ("win_rate", "max_drawdown", "sharpe_ratio", "num_trades")
# A reason is `family` alone (passed) or `family (detail)` on one line.
REASON = re.compile(r"^(?P<family>[a-z_]+)( \(.+\))?$")

NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6)
VALUE = NUMBER | st.none() | st.booleans() | st.text(max_size=8) | st.lists(st.integers(), max_size=2)
PLAUSIBLE = st.floats(-2.0, 3.0)  # mostly real-looking figures, so every check is reached


def _metrics(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    known = st.fixed_dictionaries({}, optional={key: PLAUSIBLE | VALUE for key in keys})
    extra = st.dictionaries(st.text(max_size=10), VALUE, max_size=3)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


def _family(outcome: tuple[bool, str], families: set[str]) -> str:
    passed, reason = outcome
    assert isinstance(passed, bool) and isinstance(reason, str)
    match = REASON.match(reason)
    assert match, reason
    assert match["family"] in families, reason
    assert passed == (reason == "passed")
    return match["family"]


@settings(max_examples=400, deadline=None)
@given(_metrics(TRAINING_KEYS))
def test_the_training_gate_answers_any_mapping_with_a_known_reason(metrics: dict[str, Any]) -> None:
    _family(check_training_gate(metrics, TrainingThresholds()), TRAINING_FAMILIES)


@settings(max_examples=400, deadline=None)
@given(_metrics(BACKTEST_KEYS))
def test_the_backtest_gate_answers_any_mapping_with_a_known_reason(metrics: dict[str, Any]) -> None:
    _family(check_backtest_gate(metrics, BacktestThresholds()), BACKTEST_FAMILIES)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({key: PLAUSIBLE for key in TRAINING_KEYS}),
    st.builds(
        TrainingThresholds,
        min_accuracy=st.floats(0, 1),
        max_loss=st.floats(0.01, 5),
        min_loss_decrease=st.floats(-1, 1),
        max_p=st.floats(0.001, 1),
    ),
)
def test_any_thresholds_keep_the_reasons_known(metrics: dict[str, Any], limits: TrainingThresholds) -> None:
    _family(check_training_gate(metrics, limits), TRAINING_FAMILIES)


def test_each_family_is_reachable() -> None:
    # The families list is not wishful: every one of them comes out of the gates.
    training = {
        _family(check_training_gate(m, TrainingThresholds()), TRAINING_FAMILIES)
        for m in (
            {"accuracy": 0.9, "final_loss": 0.2, "initial_loss": 1.0},
            {"accuracy": 0.1, "final_loss": 0.2, "initial_loss": 1.0},
            {"accuracy": 0.9, "final_loss": 0.95, "initial_loss": 1.0},
            {"accuracy": 0.9, "final_loss": 0.7, "initial_loss": 0.75},
            {
                "accuracy": 0.9,
                "final_loss": 0.2,
                "initial_loss": 1.0,
                "balanced_accuracy": 0.5,
                "chance": 0.5,
                "skill_pvalue": 0.4,
            },
            {"final_loss": 0.2},
            {"accuracy": "high"},
        )
    }
    assert training == TRAINING_FAMILIES
    backtest = {
        _family(check_backtest_gate(m, BacktestThresholds()), BACKTEST_FAMILIES)
        for m in (
            {"win_rate": 0.6, "max_drawdown": 0.1, "sharpe_ratio": 1.0, "num_trades": 30},
            {"win_rate": 0.1, "max_drawdown": 0.1, "sharpe_ratio": 1.0},
            {"win_rate": 0.6, "max_drawdown": 0.9, "sharpe_ratio": 1.0},
            {"win_rate": 0.6, "max_drawdown": 0.1, "sharpe_ratio": -3.0},
            {"win_rate": 0.6, "max_drawdown": 0.1, "sharpe_ratio": 1.0, "num_trades": 1},
            {"max_drawdown": 0.1},
            {"win_rate": float("nan")},
        )
    }
    assert backtest == BACKTEST_FAMILIES
