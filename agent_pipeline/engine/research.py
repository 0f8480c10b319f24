"""The engine's two entry points for the pipeline: train a strategy file, backtest its model.

Each reads the strategy YAML (checked against the data on hand), loads its bars, builds the dataset and
hands over to the trainer or the backtester. Torch loads with this module: only the GPU training task and
the backtest task import it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent_pipeline.engine import stats
from agent_pipeline.engine.backtest import (
    BacktestResult,
    periods_per_year,
    run_backtest,
    save_walk_forward,
    simulate,
    strategy_signals,
)
from agent_pipeline.engine.batch_trainer import train_together
from agent_pipeline.engine.data import available_pairs, load_bars
from agent_pipeline.engine.dataset import Dataset, build_dataset
from agent_pipeline.engine.pooled import PooledWalkForward, build_pooled_walk_forward, universe_series
from agent_pipeline.engine.pooled import lockbox_rows as universe_lockbox_rows
from agent_pipeline.engine.portfolio import FOLD_KEYS, trade_plan
from agent_pipeline.engine.portfolio import trade_lockbox as trade_portfolio_lockbox
from agent_pipeline.engine.series_cut import cut_at, cut_series
from agent_pipeline.engine.strategy import Strategy, load_strategy
from agent_pipeline.engine.trainer import EpochProgress, TrainingResult, predict_probabilities, train
from agent_pipeline.engine.walkforward import Fold, WalkForward, build_walk_forward, lockbox_rows

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
# The batched state of a walk-forward plan trained together, beside the final model (issue 15).
BATCH_CHECKPOINT_FILE = "batch_checkpoint.pt"


def prepare(strategy_path: Path, data_dir: Path | None = None) -> tuple[Strategy, Dataset]:
    """The validated strategy and its dataset.

    Raises:
        StrategyValidationError: the file breaks the grammar or names a pair without data.
        DataError: the bars cannot be read.
    """
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    return strategy, build_dataset(strategy, load_bars(strategy.symbol, strategy.timeframe, data_dir))


def train_strategy(
    strategy_path: Path,
    *,
    model_dir: Path,
    data_dir: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_path: Path | None = None,
) -> TrainingResult:
    """Train the strategy in `strategy_path`; the model goes to `model_dir/<strategy name>/model.pt`.

    Args:
        checkpoint_path: defaults to `model_dir/<strategy name>/checkpoint.pt`, so a redelivered task
            resumes from its last finished epoch.

    Raises:
        StrategyValidationError, DataError, TrainingError, CancelledError: see `prepare` and `trainer.train`.
    """
    strategy, dataset = prepare(strategy_path, data_dir)
    folder = Path(model_dir) / strategy.name
    return train(
        strategy,
        dataset,
        model_path=folder / MODEL_FILE,
        checkpoint_path=checkpoint_path or folder / CHECKPOINT_FILE,
        seed=seed,
        device=device,
        on_epoch=on_epoch,
        should_cancel=should_cancel,
    )


def backtest_strategy(
    strategy_path: Path, *, model_path: Path, data_dir: Path | None = None, out_dir: Path
) -> BacktestResult:
    """Trade the strategy's test period with its trained model; equity.csv and metrics.json go to `out_dir`.

    Raises:
        StrategyValidationError, DataError, BacktestError: see `prepare` and `backtest.run_backtest`.
    """
    strategy, dataset = prepare(strategy_path, data_dir)
    return run_backtest(strategy, dataset, Path(model_path), out_dir=Path(out_dir))


# --- Walk-forward research: K fold models and a final model, the lockbox traded once -------------------------

# Laplace smoothing of the class prior, so a class absent from a fold's training rows costs a finite log-loss.
PRIOR_SMOOTHING = 1.0


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How a cycle evaluates: the same values must reach training, backtest and lockbox.

    `series_end` is the series' research and lockbox end, fixed by its first cycle (issue 27, `series_cut`): bars
    after it are forward bars and never read here. None reads the whole series (cycles recorded before it).
    """

    lockbox_fraction: float = 0.2
    folds: int = 4
    series_end: str | None = None


# A walk-forward plan: one series', or a universe's pooled one (issue 24); both train and summarise alike.
Plan = WalkForward | PooledWalkForward


def _walk_forward(strategy_path: Path, data_dir: Path | None, evaluation: Evaluation) -> tuple[Strategy, Plan]:
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    fraction, folds = evaluation.lockbox_fraction, evaluation.folds
    if strategy.universe is not None:
        series = cut_series(universe_series(strategy.universe, strategy.timeframe, data_dir), evaluation.series_end)
        return strategy, build_pooled_walk_forward(strategy, series, lockbox_fraction=fraction, folds=folds)
    bars = cut_at(load_bars(strategy.symbol, strategy.timeframe, data_dir), evaluation.series_end)
    return strategy, build_walk_forward(strategy, bars, lockbox_fraction=fraction, folds=folds)


def model_path(folder: Path, fold: Fold) -> Path:
    """Where a walk-forward model lives: `<folder>/model.pt` for the final model, `<folder>/fold_k/` for folds."""
    return folder / MODEL_FILE if fold.index == 0 else folder / fold.name / MODEL_FILE


def train_walk_forward(
    strategy_path: Path,
    *,
    model_dir: Path,
    evaluation: Evaluation,
    data_dir: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    batched: bool = True,
) -> dict[str, Any]:
    """Train the K fold models and the final model of a strategy, in one call, with progress across all.

    A universe strategy (`universe:`) trains one model per fold on the rows of every symbol pooled
    (`engine.pooled`); its summary has the same keys, over every symbol's out-of-sample rows.

    The summary is the final model's (spec fields `final_loss`, `initial_loss`, `model_path`), with `accuracy`
    and the honest metrics computed on the stitched out-of-sample rows of the folds. A redelivered task resumes
    from its checkpoint(s).

    Args:
        on_epoch: called after every epoch with the progress (its `percentage` spans all models) and the stage
            (`fold 2/4`, `final model`; `4 folds + final model` when batched).
        batched: train every model at once (`batch_trainer.train_together`, the default, `KTRDR_BATCHED_FOLDS`);
            False trains them one after another with `trainer.train`. Both give the same models up to float
            rounding.

    Raises:
        StrategyValidationError, DataError, TrainingError, CancelledError.
    """
    strategy, plan = _walk_forward(strategy_path, data_dir, evaluation)
    started = time.monotonic()
    folder = Path(model_dir) / strategy.name
    train_models = _train_together if batched else _train_one_by_one
    results = train_models(strategy, plan, folder, seed, device, on_epoch, should_cancel)
    return _training_summary(
        plan, results, evaluation, lookahead=strategy.labels.lookahead, duration_s=time.monotonic() - started
    )


def _train_together(
    strategy: Strategy,
    plan: Plan,
    folder: Path,
    seed: int,
    device: str | None,
    on_epoch: Callable[[EpochProgress, str], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> list[TrainingResult]:
    stage = f"{len(plan.folds)} folds + final model"
    return train_together(
        strategy,
        [plan.dataset(fold) for fold in plan.models],
        model_paths=[model_path(folder, fold) for fold in plan.models],
        checkpoint_path=folder / BATCH_CHECKPOINT_FILE,
        seed=seed,
        device=device,
        on_epoch=None if on_epoch is None else lambda progress: on_epoch(progress, stage),
        should_cancel=should_cancel,
    )


def _train_one_by_one(
    strategy: Strategy,
    plan: Plan,
    folder: Path,
    seed: int,
    device: str | None,
    on_epoch: Callable[[EpochProgress, str], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> list[TrainingResult]:
    models = plan.models
    results: list[TrainingResult] = []
    for i, fold in enumerate(models):
        stage = f"fold {fold.index}/{len(plan.folds)}" if fold.index else "final model"

        def report(progress: EpochProgress, i: int = i, stage: str = stage) -> None:
            if on_epoch is not None:
                overall = 100.0 * (i + progress.percentage / 100.0) / len(models)
                on_epoch(dataclasses.replace(progress, percentage=overall), stage)

        path = model_path(folder, fold)
        results.append(
            train(
                strategy,
                plan.dataset(fold),
                model_path=path,
                checkpoint_path=path.with_name(CHECKPOINT_FILE),
                seed=seed,
                device=device,
                on_epoch=report,
                should_cancel=should_cancel,
            )
        )
    return results


def _training_summary(
    plan: Plan, results: list[TrainingResult], evaluation: Evaluation, *, lookahead: int, duration_s: float
) -> dict[str, Any]:
    actual, probabilities, prior_losses, folds = [], [], [], []
    for fold, result in zip(plan.folds, results, strict=False):
        y = plan.labels[fold.test_labelled]
        p = predict_probabilities(Path(result.model_path), plan.x[fold.test_labelled])
        prior = np.bincount(plan.labels[fold.train], minlength=3) + PRIOR_SMOOTHING
        prior_losses.append(-np.log(prior / prior.sum())[y])
        actual.append(y)
        probabilities.append(p)
        folds.append(_fold_training(plan, fold, result, y, p))
    y_all, p_all = np.concatenate(actual), np.concatenate(probabilities)
    summary = results[-1].to_summary()
    summary.update(classification_metrics(y_all, p_all))
    summary["prior_log_loss"] = float(np.concatenate(prior_losses).mean())
    summary["log_loss_skill"] = 1.0 - summary["log_loss"] / summary["prior_log_loss"]
    # A pooled plan's rows are time-major: blocks of lookahead x symbols rows are whole dates.
    summary.update(skill_against_chance(y_all, p_all, lookahead=lookahead, rows_per_date=plan.rows_per_date))
    summary["folds"] = folds
    start, end = plan.span
    summary["walk_forward"] = {
        "folds": len(plan.folds),
        "lockbox_fraction": evaluation.lockbox_fraction,
        "research_start": start,
        "research_end": end,
        "oos_rows": int(len(y_all)),
    }
    if isinstance(plan, PooledWalkForward):
        summary["walk_forward"]["symbols"] = list(plan.symbols)
    summary["duration_s"] = round(duration_s, 3)  # the models' training, however it was done
    return summary


def _fold_training(plan: Plan, fold: Fold, result: TrainingResult, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {
        "fold": fold.index,
        **plan.dates(fold),
        "n_train": len(fold.train),
        "n_test": len(fold.test),
        **classification_metrics(y, p),
        "epochs_run": result.epochs_run,
        "history": result.history,
    }


def classification_metrics(actual: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, the majority-class baseline and the log-loss of predictions.

    Balanced accuracy is the mean recall over the classes present in `actual`; macro F1 the mean F1 over the
    classes present in `actual` or predicted (scikit-learn's definitions). `baseline_accuracy` is what always
    predicting the most frequent actual class would score.
    """
    predicted = probabilities.argmax(axis=1)
    present = np.unique(actual)
    recalls = [np.mean(predicted[actual == c] == c) for c in present]
    f1s = []
    for c in np.union1d(present, np.unique(predicted)):
        hits = np.sum((predicted == c) & (actual == c))
        denominator = np.sum(predicted == c) + np.sum(actual == c)
        f1s.append(2.0 * hits / denominator if denominator else 0.0)
    picked = probabilities[np.arange(len(actual)), actual]
    return {
        "accuracy": float(np.mean(predicted == actual)),
        "balanced_accuracy": float(np.mean(recalls)),
        "macro_f1": float(np.mean(f1s)),
        "baseline_accuracy": float(np.bincount(actual).max() / len(actual)),
        "log_loss": float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))),
    }


def skill_against_chance(
    actual: np.ndarray, probabilities: np.ndarray, *, lookahead: int, rows_per_date: int = 1
) -> dict[str, Any]:
    """The training gate's evidence of skill: how many classes the out-of-sample labels hold, chance for them
    (what balanced accuracy scores with no skill), and the one-sided block-permutation p-value that the stitched
    out-of-sample balanced accuracy beats it, in blocks of the labels' look-ahead (`stats.skill_pvalue`).

    A universe's rows (`rows_per_date` symbols per date, time-major) are permuted in blocks of `lookahead` whole
    dates: every symbol's labels move together. Permuting each symbol on its own would count correlated symbols
    (stocks share a market factor) as independent evidence and find skill in a common move, as a plain permutation
    of overlapping labels does (issue 24). Where a symbol lacks a date, a block is a few rows off a date's edge.
    """
    n_classes = int(len(np.unique(actual)))
    block = int(lookahead) * max(1, int(rows_per_date))
    return {
        "n_classes": n_classes,
        "chance": 1.0 / max(n_classes, 1),
        "skill_pvalue": stats.skill_pvalue(actual, probabilities.argmax(axis=1), block=block),
        "skill_block": int(lookahead),
    }


@dataclasses.dataclass(frozen=True)
class Trials:
    """Every earlier trial on the same series: how many, and the annualised OOS Sharpe ratios recorded."""

    count: int = 0
    sharpes: tuple[float, ...] = ()


def backtest_walk_forward(
    strategy_path: Path,
    *,
    model_dir: Path,
    evaluation: Evaluation,
    out_dir: Path,
    trials: Trials = Trials(),
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Each fold model trades its own fold; the stitched out-of-sample record is the backtest.

    A universe strategy trades its `portfolio.mode` (`engine.portfolio`): `timing` (each symbol its own stitched
    signal, the portfolio their equal-weight mean; each symbol's summary under `symbols`) or `rank` (long-short on
    the daily ranks). The summary is the portfolio's, with `portfolio_mode`, `rank_ic`, `icir` and `ic_days`.

    Writes `equity.csv` (timestamp, equity, position, fold, buy_and_hold), `oos_returns.csv` (timestamp,
    return, buy_and_hold) and `metrics.json` to `out_dir`.

    Args:
        model_dir: the folder holding `fold_k/model.pt` (the training summary's model_path's folder).
        trials: the earlier trials on this series; this one is added to them for the DSR.

    Raises:
        StrategyValidationError, DataError, BacktestError.
    """
    strategy, plan = _walk_forward(strategy_path, data_dir, evaluation)
    if isinstance(plan, PooledWalkForward):
        return _backtest_universe(strategy, plan, Path(model_dir), trials, Path(out_dir))
    signals, fold_ids = [], []
    for fold in plan.folds:
        signals.append(strategy_signals(model_path(Path(model_dir), fold), plan.x[fold.test], strategy.backtest))
        fold_ids.append(np.full(len(fold.test), fold.index))
    bars = pd.concat([plan.test_bars(f) for f in plan.folds])
    result = _simulate(strategy, bars, np.concatenate(signals))
    summary = result.to_summary()
    summary["folds"] = [_fold_summary(strategy, plan, f, s) for f, s in zip(plan.folds, signals, strict=True)]
    summary.update(_sharpe_evidence(result, strategy.timeframe, trials))
    save_walk_forward(result, np.concatenate(fold_ids), summary, Path(out_dir))
    return summary


def _simulate(strategy: Strategy, bars: pd.DataFrame, signals: np.ndarray) -> BacktestResult:
    costs = strategy.backtest
    return simulate(
        bars,
        signals,
        commission=costs.commission,
        slippage=costs.slippage,
        periods_per_year=periods_per_year(strategy.timeframe),
    )


def _backtest_universe(
    strategy: Strategy, plan: PooledWalkForward, model_dir: Path, trials: Trials, out_dir: Path
) -> dict[str, Any]:
    """The universe's portfolio over the stitched folds (`portfolio.trade_plan`), each fold's alone, the evidence."""
    probabilities = [predict_probabilities(model_path(model_dir, f), plan.x[f.test]) for f in plan.folds]
    result, ic, symbols = trade_plan(strategy, plan, plan.folds, probabilities)
    mode = strategy.portfolio.mode if strategy.portfolio is not None else "timing"
    summary = {**result.to_summary(), "portfolio_mode": mode, **ic}
    summary["folds"] = []
    for fold, p in zip(plan.folds, probabilities, strict=True):
        alone = trade_plan(strategy, plan, [fold], [p])[0].to_summary()
        summary["folds"].append({"fold": fold.index, **{k: alone[k] for k in FOLD_KEYS}})
    if symbols:
        summary["symbols"] = {name: r.to_summary() for name, r in zip(plan.symbols, symbols, strict=True)}
    summary.update(_sharpe_evidence(result, strategy.timeframe, trials))
    save_walk_forward(result, _fold_ids(plan, result.equity.index), summary, out_dir)
    return summary


def _fold_ids(plan: PooledWalkForward, dates: pd.Index) -> np.ndarray:
    """The fold that traded each portfolio date."""
    owner = pd.concat([pd.Series(fold.index, index=plan.bars.index[fold.test].unique()) for fold in plan.folds])
    return owner.reindex(dates).fillna(0).to_numpy(dtype=np.int64)


def _fold_summary(strategy: Strategy, plan: WalkForward, fold: Fold, signals: np.ndarray) -> dict[str, Any]:
    summary = _simulate(strategy, plan.test_bars(fold), signals).to_summary()
    keys = ("start", "end", "total_return", "buy_and_hold_return", "sharpe_ratio", "num_trades", "win_rate")
    return {"fold": fold.index, **{k: summary[k] for k in keys}}


def _sharpe_evidence(result: BacktestResult, timeframe: str, trials: Trials) -> dict[str, Any]:
    """PSR against 0 and the DSR over every trial on the series (this one included)."""
    returns = result.returns
    evidence = stats.SharpeEvidence.of(returns)
    per_bar = math.sqrt(periods_per_year(timeframe))
    sharpes = [s / per_bar for s in trials.sharpes] + [evidence.sharpe]
    variance = stats.trials_variance(sharpes, len(returns))
    count = trials.count + 1
    return {
        "psr": stats.probabilistic_sharpe(evidence),
        "deflated_sharpe": stats.deflated_sharpe(evidence, trials=count, variance=variance),
        "trials": count,
        "sharpe_variance": variance * per_bar**2,  # annualised units, like sharpe_ratio
        "expected_max_sharpe": stats.expected_max_sharpe(count, variance) * per_bar,
        "skewness": evidence.skewness,
        "kurtosis": evidence.kurtosis,
    }


# Lockbox result fields: what people see, never the loop; `n_bars` and the returns' moments let the leaderboard
# deflate the best lockbox Sharpe over a series' lockbox reads (issue 25, store/lockbox.py).
LOCKBOX_KEYS = (
    "start", "end", "total_return", "buy_and_hold_return", "sharpe_ratio", "num_trades", "n_bars", "skewness",
    "kurtosis",
)  # fmt: skip


def trade_lockbox(
    strategy_path: Path, *, model_path: Path, evaluation: Evaluation, data_dir: Path | None = None
) -> dict[str, Any]:
    """The final model trades the lockbox once; its figures go to people only (the cycle's result_summary).

    Raises:
        StrategyValidationError, DataError, BacktestError.
    """
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    if strategy.universe is not None:
        return _lockbox_figures(_universe_lockbox(strategy, Path(model_path), evaluation, data_dir))
    bars = cut_at(load_bars(strategy.symbol, strategy.timeframe, data_dir), evaluation.series_end)
    x, lockbox = lockbox_rows(strategy, bars, lockbox_fraction=evaluation.lockbox_fraction)
    signals = strategy_signals(Path(model_path), x, strategy.backtest)
    return _lockbox_figures(_simulate(strategy, lockbox, signals))


def _lockbox_figures(result: BacktestResult) -> dict[str, Any]:
    """The lockbox's figures for people, with the per-bar moments of its returns (Pearson's kurtosis)."""
    evidence = stats.SharpeEvidence.of(result.returns)
    figures = {**result.to_summary(), "skewness": evidence.skewness, "kurtosis": evidence.kurtosis}
    return {k: figures[k] for k in LOCKBOX_KEYS}


def _universe_lockbox(strategy: Strategy, path: Path, evaluation: Evaluation, data_dir: Path | None) -> BacktestResult:
    """The final model trades every symbol's lockbox once, as the strategy's portfolio."""
    assert strategy.universe is not None
    series = cut_series(universe_series(strategy.universe, strategy.timeframe, data_dir), evaluation.series_end)
    rows = universe_lockbox_rows(strategy, series, lockbox_fraction=evaluation.lockbox_fraction)
    return trade_portfolio_lockbox(strategy, rows, [predict_probabilities(path, x) for x, _ in rows.values()])
