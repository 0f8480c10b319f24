"""Purged combinatorial paths (issue 25): the split plan (15 splits, 5 paths, purge and embargo) and the figures of a
real run on a planted edge."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from agent_pipeline.engine.data import available_pairs
from agent_pipeline.engine.features import PRIMARY
from agent_pipeline.engine.paths import GROUPS, TEST_GROUPS, PathPlan, measure_paths, plan_paths, research_plan
from agent_pipeline.engine.strategy import Strategy, load_strategy
from agent_pipeline.engine.synth import synth_bars, write_synth
from agent_pipeline.engine.universe import import_universe
from agent_pipeline.engine.walkforward import WalkForward, build_walk_forward, lockbox_start
from agent_pipeline.llm.space import fuzzy_sets, research_bars, volatility
from tests.universes import pooled_strategy

LOOKAHEAD = 10


@pytest.fixture(scope="module")
def planned(make_strategy: Callable[..., Strategy], eurusd: pd.DataFrame) -> tuple[WalkForward, PathPlan]:
    strategy = make_strategy()
    plan = build_walk_forward(strategy, eurusd, lockbox_fraction=0.2, folds=4)
    return plan, plan_paths(plan, lookahead=LOOKAHEAD, ratio=0.8)


def test_six_groups_two_held_out_give_fifteen_splits_and_five_paths_each_covering_every_group_once(
    planned: tuple[WalkForward, PathPlan],
) -> None:
    plan, paths = planned
    assert (len(paths.groups), len(paths.splits), paths.n_paths) == (GROUPS, 15, 5)
    assert all(len(tested) == TEST_GROUPS for tested in paths.tested)
    # Every path takes each group once, each from a model that never trained on it
    seen = set()
    for number in range(paths.n_paths):
        picked = paths.path(number)
        assert [group for _, group in picked] == list(range(GROUPS))
        assert all(group in paths.tested[split] for split, group in picked)
        seen.update(picked)
    assert len(seen) == 15 * TEST_GROUPS  # every (split, tested group) prediction is used by exactly one path
    # The groups tile the research period's usable rows in time order
    rows = np.concatenate(paths.groups)
    assert np.array_equal(rows, np.flatnonzero(np.isfinite(plan.x).all(axis=1)))


def test_no_training_row_reads_a_test_price_and_the_rows_after_a_test_group_are_embargoed(
    planned: tuple[WalkForward, PathPlan],
) -> None:
    _, paths = planned
    assert paths.purge == LOOKAHEAD and paths.embargo >= 1
    for split, tested in zip(paths.splits, paths.tested, strict=True):
        fitted = np.concatenate([split.train, split.val])
        assert not np.intersect1d(fitted, split.test).size
        for group in tested:
            first, last = paths.groups[group][0], paths.groups[group][-1]
            # purge: a row at t stays only if its label's look-ahead ends before the test group (t + 10 < first)
            assert not ((fitted < first) & (fitted + LOOKAHEAD >= first)).any()
            # embargo: nothing trains in the look-ahead plus the embargo after the test group
            assert not ((fitted > last) & (fitted <= last + LOOKAHEAD + paths.embargo)).any()
        # and the train rows are purged before their own validation rows
        assert split.train.max() + LOOKAHEAD < split.val.min()


def test_the_paths_read_the_research_period_only(planned: tuple[WalkForward, PathPlan], eurusd: pd.DataFrame) -> None:
    plan, paths = planned
    last = plan.bars.index[int(paths.groups[-1][-1])]
    assert last < eurusd.index[lockbox_start(len(eurusd), 0.2)]


def reversal_strategy(data_dir: Path, tmp_path: Path) -> Path:
    """A two-class strategy on a planted one-day reversal of strength 3 (as tests/unit/engine/test_skill_gate.py)."""
    write_synth("reversal", 3.0, 5, symbol="SYN", timeframe="1d", data_dir=data_dir, bars=1500)
    bars = research_bars("SYN", "1d", data_dir, 0.2)
    values = PRIMARY["sma"](SimpleNamespace(period=2, smooth=3), bars).to_numpy(dtype=float)
    document: dict[str, Any] = {
        "name": "paths_reversal", "symbol": "SYN", "timeframe": "1d", "indicators": [{"type": "sma", "period": 2}],
        "fuzzy_sets": {"sma_2": fuzzy_sets(values[np.isfinite(values)], 2, 0.3)},
        "model": {"type": "mlp", "hidden_layers": [16], "activation": "relu", "dropout": 0.1},
        "labels": {"zigzag_threshold": round(0.05 * volatility(bars) * math.sqrt(2), 6), "lookahead": 2, "hold": False},
        "training": {"epochs": 5, "batch_size": 64, "early_stopping_patience": 0, "learning_rate": 0.003},
    }  # fmt: skip
    path = tmp_path / "strategy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.slow
def test_a_planted_reversal_holds_up_on_every_path(tmp_path: Path) -> None:
    # Given a strong planted edge and a strategy that reads it
    data_dir = tmp_path / "data"
    strategy = reversal_strategy(data_dir, tmp_path)
    # When its 15 split models are trained (batched, as the walk-forward trains) and its 5 paths backtested
    figures = measure_paths(strategy, work_dir=tmp_path / "work", lockbox_fraction=0.2, folds=4, data_dir=data_dir)
    # Then every path earns a positive Sharpe, and the record says how it was cut
    assert len(figures["sharpes"]) == figures["paths"] == 5 and figures["splits"] == 15
    assert figures["positive_share"] == 1.0 and figures["median"] > 0.3
    assert (figures["groups"], figures["test_groups"], figures["purge"]) == (6, 2, 2)
    assert pd.Timestamp(figures["end"]) <= research_bars("SYN", "1d", data_dir, 0.2).index[-1]


@pytest.mark.slow
def test_a_universe_pools_its_symbols_purges_by_date_and_trades_its_portfolio_on_every_path(tmp_path: Path) -> None:
    # Given a planted universe of three close-only symbols and the universe tests' pooled strategy
    closes = pd.DataFrame({f"S{i:02d}": synth_bars("reversal", 3.0, i + 1, 900)[0]["close"] for i in range(3)})
    closes.index = closes.index.strftime("%Y-%m-%d")
    closes.to_csv(tmp_path / "wide.csv", index_label="date")
    import_universe(tmp_path / "wide.csv", name="PLANT", timeframe="1d", data_dir=tmp_path / "data")
    strategy_path = tmp_path / "pooled.yaml"
    strategy_path.write_text(yaml.safe_dump(pooled_strategy("PLANT")))
    # When its split plan is made, then every symbol's rows of a date fall on the same side, purged by date
    strategy = load_strategy(strategy_path, available_pairs(tmp_path / "data"))
    plan = research_plan(strategy, lockbox_fraction=0.2, folds=4, data_dir=tmp_path / "data")
    paths = plan_paths(plan, lookahead=2, ratio=0.8)
    for split, tested in zip(paths.splits, paths.tested, strict=True):
        dates = np.concatenate([split.train, split.val]) // 3
        for group in tested:
            first, last = paths.group_dates[group][0], paths.group_dates[group][-1]
            assert not ((dates < first) & (dates + 2 >= first)).any() and not ((dates >= first) & (dates <= last)).any()
    # And the measured paths are the universe's portfolio, one Sharpe per path
    figures = measure_paths(
        strategy_path, work_dir=tmp_path / "w", lockbox_fraction=0.2, folds=4, data_dir=tmp_path / "data"
    )
    assert len(figures["sharpes"]) == 5 and figures["median"] > 0
