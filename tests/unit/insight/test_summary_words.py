"""A cycle's summary rows tell the cycle that ran: its folds, its classes and chance for them, its gates (issue 23)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent_pipeline.insight.summary import report_rows
from agent_pipeline.store.models import Operation, OperationStatus, OperationType

FOLDS = [{"fold": k, "start": f"201{k}-01-01", "end": f"201{k}-12-31"} for k in range(1, 5)]
# The two-class SP500 cycle of issue 23: balanced accuracy 48.9%, majority class 56.3%, prior log loss 0.692
TWO_CLASS = {
    "accuracy": 0.493, "baseline_accuracy": 0.563, "balanced_accuracy": 0.489, "macro_f1": 0.47, "log_loss": 0.829,
    "prior_log_loss": 0.692, "n_classes": 2, "chance": 0.5, "skill_pvalue": 0.41,
}  # fmt: skip
THREE_CLASS = {**TWO_CLASS, "balanced_accuracy": 0.41, "n_classes": 3, "chance": 1 / 3, "skill_pvalue": 0.003}
PASSED = {"passed": True, "reason": "passed", "bypassed": False}


def cycle(meta: dict[str, Any], summary: dict[str, Any] | None = None, *, failed: bool = False) -> Operation:
    now = datetime.now(UTC)
    status = OperationStatus.FAILED if failed else OperationStatus.COMPLETED
    return Operation("op", OperationType.AGENT_RESEARCH, status, None, now, now, now, now, {}, meta, summary)


def rows(meta: dict[str, Any], summary: dict[str, Any] | None = None, *, failed: bool = False) -> dict[str, str]:
    return dict(report_rows(cycle(meta, summary, failed=failed)))


def test_a_two_class_cycle_is_shown_against_chance_of_50_percent_with_its_p_value_and_prior() -> None:
    training = rows({"training_result": TWO_CLASS, "backtest_result": {"folds": FOLDS}})["Training"]
    assert "balanced accuracy 48.9% (chance 50.0% for 2 classes, p = 0.41)" in training
    assert "(majority class 56.3%) over 4 walk-forward folds" in training
    assert "log loss 0.829 vs the prior's 0.692" in training
    assert "33.3%" not in training


def test_a_three_class_cycle_is_shown_against_chance_of_a_third() -> None:
    training = rows({"training_result": THREE_CLASS, "evaluation": {"folds": 3, "lockbox_fraction": 0.2}})["Training"]
    assert "balanced accuracy 41.0% (chance 33.3% for 3 classes, p = 0.003)" in training
    assert "over 3 walk-forward folds" in training


def test_an_older_two_class_row_takes_its_classes_from_the_strategy_labels(tmp_path: Path) -> None:
    # Given a row recorded before n_classes existed, whose strategy file has labels without HOLD and 5 folds
    path = tmp_path / "s.yaml"
    document = {
        "name": "two", "symbol": "SP500", "timeframe": "1d", "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 20, 40]}}},
        "labels": {"hold": False}, "evaluation": {"folds": 5},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(document))
    old = {k: v for k, v in TWO_CLASS.items() if k not in ("n_classes", "chance", "skill_pvalue")}
    meta = {"training_result": old, "strategy_path": str(path), "evaluation": {"folds": 4}}
    training = rows(meta)["Training"]
    # Then chance is a coin's, and the folds are the strategy's own (it overrides the cycle's setting)
    assert "balanced accuracy 48.9% (chance 50.0% for 2 classes)" in training
    assert "over 5 walk-forward folds" in training


def test_a_row_whose_classes_cannot_be_known_claims_no_chance() -> None:
    old = {k: v for k, v in TWO_CLASS.items() if k not in ("n_classes", "chance", "skill_pvalue")}
    training = rows({"training_result": old, "strategy_path": "/nowhere/s.yaml"})["Training"]
    assert "chance" not in training and "balanced accuracy 48.9%," in training


def test_a_bypassed_cycle_never_says_passed_and_is_never_a_discovery() -> None:
    # Given a cycle run with --bypass-gates whose gates would have stopped it, recorded as a discovery by old code
    meta = {
        "training_result": TWO_CLASS,
        "training_gate": {"passed": False, "reason": "loss_too_high (0.83 > 0.80)", "bypassed": True},
        "backtest_gate": {"passed": False, "reason": "win_rate_too_low (0% < 45%)", "bypassed": True},
        "backtest_result": {"deflated_sharpe": 1.0, "folds": FOLDS},
    }
    shown = rows(meta, {"discovery": True, "lockbox": {}})
    assert shown["Training gate"] == "bypassed: loss_too_high (0.83 > 0.80)"
    assert shown["Backtest gate"] == "bypassed: win_rate_too_low (0% < 45%)"
    assert shown["Discovery"] == "no (gates bypassed: the training and the backtest gates would have stopped it)"
    assert not any(value.startswith("passed") for value in shown.values())


def test_the_discovery_row_says_why_not() -> None:
    stopped = {"passed": False, "reason": "win_rate_too_low (38.2% < 45%)", "bypassed": False}
    by_gate = rows({"training_gate": PASSED, "backtest_gate": stopped, "backtest_result": {"deflated_sharpe": 1.0}})
    assert by_gate["Discovery"] == "no (the backtest gate stopped it)"
    gates = {"training_gate": PASSED, "backtest_gate": PASSED}
    weak = rows({**gates, "backtest_result": {"deflated_sharpe": 0.6}}, {"discovery": False, "lockbox": {}})
    assert weak["Discovery"] == "no (deflated Sharpe 0.60 below 0.95)"
    found = rows({**gates, "backtest_result": {"deflated_sharpe": 0.97}}, {"discovery": True, "lockbox": {}})
    assert (
        found["Discovery"]
        == "yes (both gates passed, deflated Sharpe over the series' current trials at least 0.95; 0.97 when it ran)"
    )
    # A flag raised over the first trials and withdrawn over all of them (store/discoveries.py) says so
    summary = {"discovery": False, "discovery_at_run": True, "lockbox": {}}
    withdrawn = rows({**gates, "backtest_result": {"deflated_sharpe": 0.96}}, summary)
    assert withdrawn["Discovery"] == (
        "no (flagged when it ran, then withdrawn: deflated Sharpe over the series' current trials below 0.95)"
    )
