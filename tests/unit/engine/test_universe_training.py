"""One model across a universe (issue 24): a planted universe trains pooled, walk-forward, on the common calendar.

The universe is four close-only series with the same planted one-day reversal (`engine.synth`), imported from a
wide CSV as `PLANT.S00` .. `PLANT.S03`; one symbol lacks a few dates, so the common calendar is not every date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from agent_pipeline.engine import research
from agent_pipeline.engine.backtest import bar_returns, simulate
from agent_pipeline.engine.pooled import build_pooled_walk_forward, common_calendar, universe_series
from agent_pipeline.engine.portfolio import timing_portfolio
from agent_pipeline.engine.strategy import dump_strategy, load_strategy_text, parse_strategy
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.engine.universe import import_universe
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.errors import StrategyValidationError

SYMBOLS = 4
BARS = 1200
LOOKAHEAD = 2
# Dates the last symbol has no bar on: the common calendar skips them for every symbol.
MISSING = [300, 301, 777]


def document(**overrides: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": "pooled",
        "universe": "PLANT",
        "timeframe": "1d",
        "indicators": [{"type": "rsi", "period": 2}, {"type": "roc", "period": 2}],
        "fuzzy_sets": {
            "rsi_2": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 50]},
                "high": {"type": "trapezoidal", "parameters": [50, 70, 100, 100]},
            },
            "roc_2": {
                "up": {"type": "gaussian", "parameters": [1.5, 1.5]},
                "down": {"type": "gaussian", "parameters": [-1.5, 1.5]},
            },
        },
        "model": {"hidden_layers": [16]},
        "labels": {"zigzag_threshold": 0.002, "lookahead": LOOKAHEAD, "hold": False},
        "training": {"epochs": 6, "batch_size": 256, "learning_rate": 0.005},
    }
    found.update(overrides)
    return found


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("universe")
    frames = [synth_bars("reversal", 3.0, seed, BARS)[0] for seed in range(1, SYMBOLS + 1)]
    closes = pd.DataFrame({f"S{i:02d}": frame["close"] for i, frame in enumerate(frames)})
    closes.iloc[MISSING, -1] = np.nan
    closes.index = closes.index.strftime("%Y-%m-%d")
    closes.to_csv(folder / "wide.csv", index_label="date")
    import_universe(folder / "wide.csv", name="PLANT", timeframe="1d", data_dir=folder / "data")
    return folder / "data"


def plan_of(series: dict[str, pd.DataFrame], folds: int = 3) -> Any:
    return build_pooled_walk_forward(parse_strategy(document()), series, lockbox_fraction=0.2, folds=folds)


def test_a_strategy_names_a_symbol_or_a_universe_and_never_both() -> None:
    strategy = parse_strategy(document())
    assert strategy.universe == "PLANT" and strategy.symbol == "PLANT"  # the universe stands in as the series
    assert load_strategy_text(dump_strategy(strategy)) == strategy
    assert "symbol" not in yaml.safe_load(dump_strategy(strategy))
    with pytest.raises(StrategyValidationError, match=r"^give either symbol or universe, not both$"):
        parse_strategy(document(symbol="EURUSD"))
    with pytest.raises(StrategyValidationError, match=r"^symbol: required \(or universe: NAME instead\)$"):
        parse_strategy({k: v for k, v in document().items() if k != "universe"})
    with pytest.raises(StrategyValidationError, match=r"^universe/timeframe: no data for PLANT 1d"):
        parse_strategy(document(), universes=[("SP500_20", "1d")])


def test_pooled_folds_cut_the_common_calendar_and_purge_every_symbols_labels(data_dir: Path) -> None:
    # Given the universe's series, one of which lacks three dates
    series = universe_series("plant", "1d", data_dir)
    common = common_calendar(series)
    assert len(common) == BARS - len(MISSING)
    # When the pooled plan is built
    plan = plan_of(series)
    # Then the research period is the common calendar before the lockbox, for every symbol alike
    assert plan.symbols == tuple(f"PLANT.S{i:02d}" for i in range(SYMBOLS))
    assert plan.calendar.equals(common[: lockbox_start(len(common), 0.2)])
    assert len(plan.x) == len(plan.calendar) * SYMBOLS == len(plan.labels) == len(plan.bars)
    for fold in plan.folds:
        first_test = fold.test.min() // SYMBOLS
        # no training or validation label looks at a test date: t + lookahead is before the test block
        assert (np.concatenate([fold.train, fold.val]) // SYMBOLS + LOOKAHEAD < first_test).all()
        # every symbol trains and is tested on the same dates
        for rows in (fold.train, fold.test):
            assert np.bincount(rows % SYMBOLS, minlength=SYMBOLS).tolist() == [len(rows) // SYMBOLS] * SYMBOLS
        assert (plan.labels[fold.train] >= 0).all() and np.isfinite(plan.x[fold.test]).all()


def test_the_lockbox_is_cut_before_features_for_every_symbol(data_dir: Path) -> None:
    # Given the same universe with every symbol's lockbox prices scrambled
    series = universe_series("PLANT", "1d", data_dir)
    cut = common_calendar(series)[lockbox_start(len(common_calendar(series)), 0.2)]
    rng = np.random.default_rng(0)
    scrambled = {}
    for symbol, frame in series.items():
        frame = frame.copy()
        late = frame.index >= cut
        frame.loc[late, "close"] *= rng.uniform(0.5, 2.0, late.sum())
        scrambled[symbol] = frame
    # Then no research feature, label or fold changes
    plain, other = plan_of(series), plan_of(scrambled)
    np.testing.assert_array_equal(plain.x, other.x)
    np.testing.assert_array_equal(plain.labels, other.labels)
    assert all(
        (a.train == b.train).all() and (a.test == b.test).all() for a, b in zip(plain.folds, other.folds, strict=True)
    )
    assert plain.calendar[-1] < cut


def test_the_timing_portfolio_earns_the_mean_of_its_symbols_returns() -> None:
    # Given two symbols' backtests on the same dates, one with a position the other without
    dates = pd.bdate_range("2020-01-01", periods=50)
    rng = np.random.default_rng(3)
    results = []
    for seed in range(2):
        close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, 50)))
        bars = pd.DataFrame({"open": np.nan, "high": np.nan, "low": np.nan, "close": close, "volume": np.nan}, dates)
        signals = rng.choice([-1.0, 0.0, 1.0], 50)
        results.append(simulate(bars, signals, commission=0.001, slippage=0.0, periods_per_year=252))
    # When they are combined
    portfolio = timing_portfolio(results, periods_per_year=252)
    # Then each date's return is the mean of the symbols' returns, and the trades are all of theirs
    np.testing.assert_allclose(portfolio.returns, (results[0].returns + results[1].returns) / 2, atol=1e-12)
    assert portfolio.num_trades == results[0].num_trades + results[1].num_trades
    # And the benchmark is the equal-weight buy-and-hold, rebalanced like the portfolio
    holds = np.mean([bar_returns(r.closes / r.first_open) for r in results], axis=0)
    np.testing.assert_allclose(bar_returns(portfolio.closes), holds, atol=1e-12)
    assert portfolio.excess_return == pytest.approx(portfolio.total_return - portfolio.buy_and_hold_return)


def test_one_model_trains_on_the_pooled_universe_and_its_portfolio_is_backtested(
    data_dir: Path, tmp_path: Path
) -> None:
    # Given a universe strategy file
    path = tmp_path / "pooled.yaml"
    path.write_text(yaml.safe_dump(document()))
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=3)
    # When it is trained walk-forward
    summary = research.train_walk_forward(path, model_dir=tmp_path / "m", evaluation=evaluation, data_dir=data_dir)
    # Then one summary holds the stitched out-of-sample figures over every symbol, as for one series
    assert {"accuracy", "balanced_accuracy", "n_classes", "chance", "skill_pvalue", "model_path"} <= set(summary)
    assert summary["n_classes"] == 2 and summary["chance"] == 0.5
    assert summary["walk_forward"]["symbols"] == [f"PLANT.S{i:02d}" for i in range(SYMBOLS)]
    # every symbol's test rows are scored, but the last `lookahead` dates, whose labels run past the research period
    assert summary["walk_forward"]["oos_rows"] == sum(f["n_test"] for f in summary["folds"]) - LOOKAHEAD * SYMBOLS
    assert summary["balanced_accuracy"] > 0.55 and summary["skill_pvalue"] <= 0.01  # the planted reversal
    # And the backtest trades each symbol and reports the equal-weight portfolio
    backtest = research.backtest_walk_forward(
        path,
        model_dir=Path(summary["model_path"]).parent,
        evaluation=evaluation,
        out_dir=tmp_path / "b",
        data_dir=data_dir,
    )
    assert backtest["portfolio_mode"] == "timing" and len(backtest["symbols"]) == SYMBOLS
    assert backtest["num_trades"] == sum(s["num_trades"] for s in backtest["symbols"].values())
    assert [f["fold"] for f in backtest["folds"]] == [1, 2, 3] and 0 <= backtest["deflated_sharpe"] <= 1
    returns = pd.read_csv(tmp_path / "b" / "oos_returns.csv")
    assert len(returns) == backtest["n_bars"]
    # And the final model trades every symbol's lockbox once
    lockbox = research.trade_lockbox(
        path, model_path=Path(summary["model_path"]), evaluation=evaluation, data_dir=data_dir
    )
    assert set(lockbox) == set(research.LOCKBOX_KEYS) and lockbox["num_trades"] > 0
