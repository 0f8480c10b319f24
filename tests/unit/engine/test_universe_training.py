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
from agent_pipeline.engine.portfolio import rank_ic, rank_portfolio, rank_weights, timing_portfolio
from agent_pipeline.engine.strategy import dump_strategy, load_strategy_text, parse_strategy
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.engine.universe import import_universe
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.errors import StrategyValidationError
from tests.universes import pooled_strategy

SYMBOLS = 4
BARS = 1200
LOOKAHEAD = pooled_strategy("PLANT")["labels"]["lookahead"]
# Dates the last symbol has no bar on: the common calendar skips them for every symbol.
MISSING = [300, 301, 777]


def document(**overrides: Any) -> dict[str, Any]:
    return (
        pooled_strategy("PLANT", labels={"zigzag_threshold": 0.002, "lookahead": LOOKAHEAD, "hold": False}) | overrides
    )


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
    single = {k: v for k, v in document(symbol="EURUSD", portfolio={"mode": "rank"}).items() if k != "universe"}
    with pytest.raises(StrategyValidationError, match=r"^portfolio applies to a universe strategy only"):
        parse_strategy(single)
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


EVALUATION = research.Evaluation(lockbox_fraction=0.2, folds=3)


def write(folder: Path, **overrides: Any) -> Path:
    path = folder / f"pooled_{len(overrides)}.yaml"
    path.write_text(yaml.safe_dump(document(**overrides)))
    return path


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The planted universe's strategy trained walk-forward once: its folder and training summary."""
    folder = tmp_path_factory.mktemp("trained")
    summary = research.train_walk_forward(
        write(folder), model_dir=folder / "m", evaluation=EVALUATION, data_dir=data_dir
    )
    return folder, summary


def test_one_model_trains_on_the_pooled_universe_with_the_summary_of_one_series(trained: Any) -> None:
    _, summary = trained
    assert {"accuracy", "balanced_accuracy", "n_classes", "chance", "skill_pvalue", "model_path"} <= set(summary)
    assert summary["n_classes"] == 2 and summary["chance"] == 0.5
    assert summary["walk_forward"]["symbols"] == [f"PLANT.S{i:02d}" for i in range(SYMBOLS)]
    # every symbol's test rows are scored, but the last `lookahead` dates, whose labels run past the research period
    assert summary["walk_forward"]["oos_rows"] == sum(f["n_test"] for f in summary["folds"]) - LOOKAHEAD * SYMBOLS
    assert summary["balanced_accuracy"] > 0.55 and summary["skill_pvalue"] <= 0.01  # the planted reversal


def test_the_timing_portfolio_trades_each_symbol_and_the_lockbox_once(trained: Any, data_dir: Path) -> None:
    folder, summary = trained
    models = Path(summary["model_path"]).parent
    backtest = research.backtest_walk_forward(
        write(folder), model_dir=models, evaluation=EVALUATION, out_dir=folder / "timing", data_dir=data_dir
    )
    assert backtest["portfolio_mode"] == "timing" and len(backtest["symbols"]) == SYMBOLS
    assert backtest["num_trades"] == sum(s["num_trades"] for s in backtest["symbols"].values())
    assert [f["fold"] for f in backtest["folds"]] == [1, 2, 3] and 0 <= backtest["deflated_sharpe"] <= 1
    assert backtest["sharpe_ratio"] > 1 and backtest["rank_ic"] > 0  # the planted reversal, after costs
    returns = pd.read_csv(folder / "timing" / "oos_returns.csv")
    assert len(returns) == backtest["n_bars"]
    lockbox = research.trade_lockbox(
        write(folder), model_path=Path(summary["model_path"]), evaluation=EVALUATION, data_dir=data_dir
    )
    assert set(lockbox) == set(research.LOCKBOX_KEYS) and lockbox["num_trades"] > 0


def test_the_rank_portfolio_is_dollar_neutral_and_reports_the_rank_ic(trained: Any, data_dir: Path) -> None:
    # Given the same models, traded long-short on the daily ranks
    folder, summary = trained
    path = write(folder, portfolio={"mode": "rank", "fraction": 0.25})
    models = Path(summary["model_path"]).parent
    backtest = research.backtest_walk_forward(
        path, model_dir=models, evaluation=EVALUATION, out_dir=folder / "rank", data_dir=data_dir
    )
    # Then the portfolio holds one symbol long and one short, and the ranks carry the planted reversal
    assert backtest["portfolio_mode"] == "rank" and "symbols" not in backtest
    equity = pd.read_csv(folder / "rank" / "equity.csv")
    assert np.allclose(equity["position"], 0.0)  # dollar-neutral: the net exposure is nil
    assert backtest["rank_ic"] > 0.05 and backtest["icir"] > 0 and backtest["ic_days"] > 0.9 * backtest["n_bars"]
    assert backtest["num_trades"] > 0 and 0 <= backtest["psr"] <= 1
    lockbox = research.trade_lockbox(
        path, model_path=Path(summary["model_path"]), evaluation=EVALUATION, data_dir=data_dir
    )
    assert lockbox["num_trades"] > 0


def test_rank_weights_go_long_the_top_and_short_the_bottom_fraction() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.2, np.nan, np.nan, np.nan], [0.4, 0.4, 0.1, 0.8]])
    weights = rank_weights(scores, 0.25)
    np.testing.assert_array_equal(weights[0], [-0.5, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(weights[1], [0.0, 0.0, 0.0, 0.0])  # one symbol ranked: flat
    np.testing.assert_array_equal(weights[2], [0.0, 0.0, -0.5, 0.5])
    wide = rank_weights(np.arange(10.0)[None, :], 0.2)[0]
    np.testing.assert_array_equal(wide, [-0.25, -0.25, 0, 0, 0, 0, 0, 0, 0.25, 0.25])


def test_the_rank_portfolio_earns_its_weights_times_the_next_returns_less_costs() -> None:
    # Given two symbols over three dates; B ranks above A after the first close, A above B after the second
    closes = np.array([[100.0, 100.0], [110.0, 90.0], [99.0, 99.0]])
    scores = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    index = pd.bdate_range("2020-01-01", periods=3)
    result = rank_portfolio(scores, closes, index, fraction=0.5, cost=0.01, periods=252)
    # Then bar 1 holds B long, A short (0.5 each): 0.5 * -0.1 - 0.5 * 0.1, less entering both (0.01 * 1.0)
    # and bar 2 flips both (traded 2.0) and liquidates (1.0): 0.5 * -0.1 - 0.5 * 0.1 - 0.01 * 3.0
    np.testing.assert_allclose(result.returns, [0.0, -0.11, -0.13], atol=1e-12)
    assert result.num_trades == 4 and result.win_rate == 0.0
    ic = rank_ic(scores, closes)
    assert ic["ic_days"] == 0  # two symbols: no rank correlation
