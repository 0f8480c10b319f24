"""Walk-forward folds and the lockbox on the bundled data: disjoint, ordered, purged, never overlapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine import research
from agent_pipeline.engine.data import load_bars
from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.engine.walkforward import build_walk_forward, lockbox_rows, lockbox_start, plan_folds
from agent_pipeline.errors import DataError

EXAMPLE = Path(__file__).parents[3] / "examples" / "eurusd_rsi_atr.yaml"


@pytest.fixture(scope="module")
def strategy():
    return load_strategy(EXAMPLE)


@pytest.fixture(scope="module")
def bars(strategy):
    return load_bars(strategy.symbol, strategy.timeframe)


@pytest.fixture(scope="module")
def plan(strategy, bars):
    return build_walk_forward(strategy, bars, lockbox_fraction=0.2, folds=4)


def test_the_folds_are_ordered_and_their_test_blocks_disjoint_and_contiguous(plan) -> None:
    assert [f.index for f in plan.folds] == [1, 2, 3, 4]
    blocks = [f.test for f in plan.folds]
    for before, after in zip(blocks, blocks[1:], strict=False):
        assert before[-1] < after[0]
        assert after[0] == before[-1] + 1  # nothing between two folds is left untraded
    assert len(np.unique(np.concatenate(blocks))) == sum(len(b) for b in blocks)


def test_no_fold_trains_or_validates_on_bars_within_lookahead_of_its_test_bars(plan, strategy) -> None:
    lookahead = strategy.labels.lookahead
    for fold in plan.folds:
        seen = np.concatenate([fold.train, fold.val])
        assert seen.max() + lookahead < fold.test[0]
        assert fold.train.max() + lookahead < fold.val.min()  # the validation slice is purged too
        assert (plan.labels[seen] >= 0).all()


def test_windows_expand_and_validation_keeps_the_strategys_ratio(plan, strategy) -> None:
    sizes = [len(f.train) for f in plan.folds]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    ratio = strategy.split.train / (strategy.split.train + strategy.split.validation)
    for fold in plan.folds:
        share = len(fold.train) / (len(fold.train) + len(fold.val))
        assert share == pytest.approx(ratio, abs=0.02)


def test_the_research_period_and_the_lockbox_never_overlap(plan, strategy, bars) -> None:
    cut = lockbox_start(len(bars), 0.2)
    assert len(plan.bars) == cut
    _, lockbox = lockbox_rows(strategy, bars, lockbox_fraction=0.2)
    assert plan.bars.index[-1] < lockbox.index[0]
    assert len(lockbox) == len(bars) - cut  # the lockbox warms up on research bars: every bar is usable
    assert lockbox.index.intersection(plan.bars.index).empty


def test_research_figures_do_not_depend_on_lockbox_prices(strategy, bars) -> None:
    # Given the same series with every lockbox price doubled
    cut = lockbox_start(len(bars), 0.2)
    changed = bars.copy()
    changed.iloc[cut:, :4] *= 2.0
    # Then the research period's features, labels and folds are identical: labels look ahead, so they are cut too
    original = build_walk_forward(strategy, bars, lockbox_fraction=0.2, folds=4)
    altered = build_walk_forward(strategy, changed, lockbox_fraction=0.2, folds=4)
    assert np.array_equal(original.labels, altered.labels)
    assert np.array_equal(original.x, altered.x, equal_nan=True)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(original.folds, altered.folds, strict=True))


def test_the_final_model_trains_on_the_whole_research_period(plan, strategy) -> None:
    final = plan.final
    assert final.index == 0 and len(final.test) == 0
    assert final.val.max() == np.flatnonzero(plan.labels >= 0).max()
    assert len(final.train) > len(plan.folds[-1].train)


def test_too_many_folds_for_the_data_is_a_clear_data_error(strategy, bars) -> None:
    with pytest.raises(DataError, match=r"walk-forward fold 1 of 10 is too small.*fewer folds"):
        build_walk_forward(strategy, bars.iloc[:1500], lockbox_fraction=0.2, folds=10)


def test_a_strategy_may_set_its_own_number_of_folds(strategy, bars) -> None:
    three = strategy.model_copy(update={"evaluation": strategy.evaluation.model_copy(update={"folds": 3})})
    assert len(build_walk_forward(three, bars, lockbox_fraction=0.2, folds=4).folds) == 3


def test_plan_folds_purges_exactly_lookahead_bars() -> None:
    usable = np.arange(0, 1000)
    labelled = usable[:-5]
    folds = plan_folds(usable, labelled, folds=4, ratio=0.8, lookahead=5)
    for fold in folds[:-1]:
        assert fold.val.max() == fold.test[0] - 6  # t + 5 < first test bar, and no more is dropped


@pytest.mark.slow
def test_walk_forward_training_and_backtest_report_honest_figures(tmp_path: Path) -> None:
    # Given the example trained walk-forward with few epochs
    text = EXAMPLE.read_text().replace("epochs: 30", "epochs: 3")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=3)
    stages: list[str] = []
    summary = research.train_walk_forward(
        path, model_dir=tmp_path / "m", evaluation=evaluation, on_epoch=lambda p, s: stages.append(s)
    )
    # Then progress spans the fold models and the final model (trained together), and the figures are out-of-sample
    assert set(stages) == {"3 folds + final model"}
    assert len(summary["folds"]) == 3
    assert 0 <= summary["balanced_accuracy"] <= 1 and 0 <= summary["macro_f1"] <= 1
    assert summary["baseline_accuracy"] >= 1 / 3
    assert summary["prior_log_loss"] > 0 and summary["log_loss"] > 0
    # And the backtest stitches the folds' own trades over exactly the fold bars
    backtest = research.backtest_walk_forward(
        path, model_dir=Path(summary["model_path"]).parent, evaluation=evaluation, out_dir=tmp_path / "b"
    )
    assert [f["fold"] for f in backtest["folds"]] == [1, 2, 3]
    assert backtest["start"] == backtest["folds"][0]["start"] and backtest["end"] == backtest["folds"][-1]["end"]
    assert backtest["trials"] == 1 and 0 <= backtest["psr"] <= 1
    assert backtest["excess_return"] == pytest.approx(backtest["total_return"] - backtest["buy_and_hold_return"])
    for name in ("equity.csv", "oos_returns.csv", "metrics.json"):
        assert (tmp_path / "b" / name).is_file()
    # And the lockbox is after every fold
    lockbox = research.trade_lockbox(path, model_path=Path(summary["model_path"]), evaluation=evaluation)
    assert lockbox["start"] > backtest["end"]
    assert set(lockbox) == set(research.LOCKBOX_KEYS)
    # And a minimum hold reaches every fold's trades and the lockbox's: each position lasts at least 40 bars
    path.write_text(text.replace("confidence_threshold: 0.34,", "confidence_threshold: 0.34, min_hold: 40,"))
    held = research.backtest_walk_forward(
        path, model_dir=Path(summary["model_path"]).parent, evaluation=evaluation, out_dir=tmp_path / "h"
    )
    curve = pd.read_csv(tmp_path / "h" / "equity.csv")
    for _, fold in curve.groupby("fold"):
        runs = np.diff(np.flatnonzero(np.diff(fold["position"].to_numpy())) + 1)
        assert (runs >= 40).all()
    assert held["num_trades"] < backtest["num_trades"]
    held_lockbox = research.trade_lockbox(path, model_path=Path(summary["model_path"]), evaluation=evaluation)
    assert held_lockbox["num_trades"] < lockbox["num_trades"]


def test_walk_forward_reports_the_same_figures_trained_together_or_one_by_one(tmp_path: Path) -> None:
    # Given the example with two epochs and three folds
    path = tmp_path / "s.yaml"
    path.write_text(EXAMPLE.read_text().replace("epochs: 30", "epochs: 2"))
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=3)
    stages: dict[bool, list[str]] = {True: [], False: []}
    # When it is trained both ways
    summaries = {
        batched: research.train_walk_forward(
            path,
            model_dir=tmp_path / str(batched),
            evaluation=evaluation,
            batched=batched,
            on_epoch=lambda p, s, b=batched: stages[b].append(s),
        )
        for batched in (True, False)
    }
    # Then the folds' curves and the honest figures agree to float rounding (see test_batch_trainer.py)
    together, alone = summaries[True], summaries[False]
    assert stages[False][0] == "fold 1/3" and stages[False][-1] == "final model"
    assert stages[True] == ["3 folds + final model"] * 2
    for key in ("accuracy", "balanced_accuracy", "log_loss", "final_loss", "initial_loss"):
        assert together[key] == pytest.approx(alone[key], abs=1e-3), key  # 1e-3: a flipped tie moves one OOS row
    for mine, theirs in zip(together["folds"], alone["folds"], strict=True):
        assert mine["epochs_run"] == theirs["epochs_run"] and mine["n_train"] == theirs["n_train"]
        assert [h["val_loss"] for h in mine["history"]] == pytest.approx(
            [h["val_loss"] for h in theirs["history"]], abs=1e-5
        )
    assert Path(together["model_path"]) == tmp_path / "True" / "eurusd_rsi_atr" / "model.pt"
