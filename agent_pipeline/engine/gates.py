"""Quality gates: pure functions that decide whether a research cycle goes on.

Each gate reads a metrics mapping (a training op's `result_summary`, a backtest's summary) and returns
`(passed, reason)`. Checks run in a fixed order and the first failure wins; the reason names the failed
check and shows the value against its threshold, e.g. `accuracy_below_threshold (35% < 45%)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_pipeline.config import Settings, get_settings

PASSED = "passed"
# A strategy whose out-of-sample Deflated Sharpe Ratio reaches this is a discovery: the probability that its true
# Sharpe exceeds the best that every trial on its series would reach by luck (Bailey & López de Prado, 2014).
DISCOVERY_DSR = 0.95
# Values within this distance of a threshold count as meeting it, so that e.g. a loss decrease that prints
# as `20%` never fails a 20% gate because (1.0 - 0.8) / 1.0 == 0.19999999999999996 in binary floats.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TrainingThresholds:
    """Limits of the training gate; fractions, e.g. 0.45 for 45%."""

    min_accuracy: float = 0.45
    max_loss: float = 0.8
    min_loss_decrease: float = 0.2
    # The largest p-value of "out-of-sample balanced accuracy beats chance" that counts as skill (issue 23).
    max_p: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingThresholds:
        return cls(
            min_accuracy=settings.training_gate_min_accuracy,
            max_loss=settings.training_gate_max_loss,
            min_loss_decrease=settings.training_gate_min_loss_decrease,
            max_p=settings.training_gate_max_p,
        )


@dataclass(frozen=True)
class BacktestThresholds:
    """Limits of the backtest gate; win rate and drawdown are fractions, Sharpe is annualised."""

    min_win_rate: float = 0.45
    max_drawdown: float = 0.4
    min_sharpe: float = -0.5
    min_trades: int = 10  # fewer trades than this is an anecdote, not a record

    @classmethod
    def from_settings(cls, settings: Settings) -> BacktestThresholds:
        return cls(
            min_win_rate=settings.backtest_gate_min_win_rate,
            max_drawdown=settings.backtest_gate_max_drawdown,
            min_sharpe=settings.backtest_gate_min_sharpe,
            min_trades=settings.backtest_gate_min_trades,
        )


class _MetricProblem(Exception):
    """Raised internally when a metric is absent or not a finite-or-infinite number."""


def format_percent(fraction: float) -> str:
    """0.35 -> `35%`, 0.449 -> `44.9%`: at most one decimal, no trailing `.0`."""
    value = round(fraction * 100, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text}%"


def _read(metrics: Mapping[str, Any], name: str) -> float:
    value = metrics.get(name)
    if value is None:
        raise _MetricProblem(f"missing_metric ({name})")
    if isinstance(value, bool):
        raise _MetricProblem(f"invalid_metric ({name}={value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _MetricProblem(f"invalid_metric ({name}={value!r})") from None
    if math.isnan(number):
        raise _MetricProblem(f"invalid_metric ({name} is NaN)")
    return number


def _below(value: float, minimum: float) -> bool:
    return value < minimum - _TOLERANCE


def _above(value: float, maximum: float) -> bool:
    return value > maximum + _TOLERANCE


def _training_reason(metrics: Mapping[str, Any], limits: TrainingThresholds) -> str:
    accuracy = _read(metrics, "accuracy")
    if _below(accuracy, limits.min_accuracy):
        shown = f"{format_percent(accuracy)} < {format_percent(limits.min_accuracy)}"
        return f"accuracy_below_threshold ({shown})"
    final_loss = _read(metrics, "final_loss")
    if _above(final_loss, limits.max_loss):
        return f"loss_too_high ({final_loss:.2f} > {limits.max_loss:.2f})"
    initial_loss = _read(metrics, "initial_loss")
    if initial_loss <= 0 or math.isinf(initial_loss):
        return f"invalid_metric (initial_loss={initial_loss!r} must be a positive number)"
    decrease = (initial_loss - final_loss) / initial_loss
    if _below(decrease, limits.min_loss_decrease):
        shown = f"{format_percent(decrease)} < {format_percent(limits.min_loss_decrease)}"
        return f"insufficient_loss_decrease ({shown})"
    if metrics.get("skill_pvalue") is not None:  # walk-forward metrics; absent from the spec's mappings
        return _skill_reason(metrics, limits)
    return PASSED


def _skill_reason(metrics: Mapping[str, Any], limits: TrainingThresholds) -> str:
    """`no_skill` unless the test that balanced accuracy beats chance gives p <= max_p.

    The spec's three checks were set for three classes; with two, a coin passes all of them (50% >= 45%, a loss
    of ln 2 = 0.69 <= 0.8, and a fall from ln 3 = 1.10 to 0.69 is a 37% decrease). This check does not depend
    on the number of classes: chance is 1 / n_classes, and the p-value allows for overlapping labels.
    """
    pvalue = _read(metrics, "skill_pvalue")
    if not _above(pvalue, limits.max_p):
        return PASSED
    balanced = _read(metrics, "balanced_accuracy")
    chance = _read(metrics, "chance")
    return f"no_skill (balanced accuracy {balanced:.1%} vs chance {chance:.1%}, p = {format_p(pvalue)})"


def format_p(pvalue: float) -> str:
    """0.41 -> `0.41`, 0.0005 -> `0.0005`, 0.05 -> `0.05`: two significant figures."""
    return f"{pvalue:.2g}" if pvalue >= 1e-4 else f"{pvalue:.1e}"


def _backtest_reason(metrics: Mapping[str, Any], limits: BacktestThresholds) -> str:
    win_rate = _read(metrics, "win_rate")
    if _below(win_rate, limits.min_win_rate):
        return f"win_rate_too_low ({format_percent(win_rate)} < {format_percent(limits.min_win_rate)})"
    drawdown = _read(metrics, "max_drawdown")
    if _above(drawdown, limits.max_drawdown):
        return f"drawdown_too_high ({format_percent(drawdown)} > {format_percent(limits.max_drawdown)})"
    sharpe = _read(metrics, "sharpe_ratio")
    if _below(sharpe, limits.min_sharpe):
        return f"sharpe_too_low ({sharpe:.2f} < {limits.min_sharpe:.2f})"
    if metrics.get("num_trades") is not None:
        trades = _read(metrics, "num_trades")
        if _below(trades, limits.min_trades):
            return f"too_few_trades ({trades:.0f} < {limits.min_trades})"
    return PASSED


def check_training_gate(metrics: Mapping[str, Any], thresholds: TrainingThresholds | None = None) -> tuple[bool, str]:
    """Check accuracy, then final loss, then loss decrease, then skill against chance; the first failure wins.

    Args:
        metrics: reads `accuracy` (fraction), `final_loss` and `initial_loss`; when `skill_pvalue` is present
            (walk-forward training), also `balanced_accuracy` and `chance`.
        thresholds: the limits; by default from the settings (TRAINING_GATE_* environment variables).

    Returns:
        `(True, "passed")` or `(False, reason)`, e.g. `(False, "loss_too_high (0.90 > 0.80)")`.
    """
    limits = thresholds or TrainingThresholds.from_settings(get_settings())
    try:
        reason = _training_reason(metrics, limits)
    except _MetricProblem as problem:
        reason = str(problem)
    return reason == PASSED, reason


def check_backtest_gate(metrics: Mapping[str, Any], thresholds: BacktestThresholds | None = None) -> tuple[bool, str]:
    """Check win rate, then max drawdown, then Sharpe ratio, then the number of trades; the first failure wins.

    Args:
        metrics: reads `win_rate` (fraction), `max_drawdown` (fraction 0-1, positive) and `sharpe_ratio`;
            `num_trades` when present.
        thresholds: the limits; by default from the settings (BACKTEST_GATE_* environment variables).

    Returns:
        `(True, "passed")` or `(False, reason)`, e.g. `(False, "drawdown_too_high (55% > 40%)")`.
    """
    limits = thresholds or BacktestThresholds.from_settings(get_settings())
    try:
        reason = _backtest_reason(metrics, limits)
    except _MetricProblem as problem:
        reason = str(problem)
    return reason == PASSED, reason


def backtest_closeness(metrics: Mapping[str, Any], thresholds: BacktestThresholds | None = None) -> float:
    """How close a backtest came to passing the gate: 1.0 when it passes, towards 0 as it falls short.

    The product of one factor per check, each 1.0 where the check passes: win rate / its minimum, the drawdown
    limit / the drawdown, trades / their minimum, and for the Sharpe 1 less its shortfall (one Sharpe unit short
    is 0). A strategy held back by a win rate of 40% against 45% scores 0.89, one at 20% scores 0.44: the study
    can tell which way a near miss lies (a missing or non-finite figure counts as 0).
    """
    limits = thresholds or BacktestThresholds.from_settings(get_settings())

    def figure(key: str) -> float:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return math.nan
        return float(value)

    win_rate, drawdown, sharpe = figure("win_rate"), figure("max_drawdown"), figure("sharpe_ratio")
    trades = figure("num_trades") if metrics.get("num_trades") is not None else float(limits.min_trades)
    if any(math.isnan(x) for x in (win_rate, drawdown, sharpe, trades)):
        return 0.0
    factors = (
        win_rate / limits.min_win_rate if limits.min_win_rate > 0 else 1.0,
        limits.max_drawdown / drawdown if drawdown > 0 else 1.0,
        1.0 - (limits.min_sharpe - sharpe),
        trades / limits.min_trades if limits.min_trades > 0 else 1.0,
    )
    return math.prod(min(1.0, max(0.0, factor)) for factor in factors)


# The two gates as a cycle's metadata records them: key -> label.
GATES = (("training_gate", "Training"), ("backtest_gate", "Backtest"))


def gates_passed(metadata: Mapping[str, Any]) -> bool:
    """Both gates ran and passed. A failure that `--bypass-gates` let through is no pass."""
    return all((metadata.get(key) or {}).get("passed") is True for key, _ in GATES)


def bypassed_gates(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, what it would have said) for each gate that failed and was bypassed, in chain order."""
    found = []
    for key, label in GATES:
        gate = metadata.get(key) or {}
        if gate.get("bypassed") and not gate.get("passed"):
            found.append((label, str(gate.get("reason") or "failed")))
    return found


def is_discovery(metadata: Mapping[str, Any], deflated_sharpe: Any, *, completed: bool) -> bool:
    """A discovery passed every gate: the cycle completed, both gates passed (not bypassed), and its deflated
    Sharpe, judged over the series' trials, is at least DISCOVERY_DSR."""
    dsr = deflated_sharpe
    passed_dsr = isinstance(dsr, int | float) and not isinstance(dsr, bool) and dsr >= DISCOVERY_DSR
    return completed and passed_dsr and gates_passed(metadata)
