"""Trading a universe (issue 24): the fold models' predictions on every symbol become one portfolio.

`timing` (the default): each symbol trades its own signal, backtested alone (`backtest.simulate`, so costs are
charged per symbol per trade), and the portfolio's return on a date is the mean of the symbols' returns that date:
capital split equally and rebalanced every bar. A symbol without a bar on a date counts as flat (0). Trades and the
win rate are counted over every symbol's trades; the profit factor is the portfolio's (gross gains over gross
losses of its per-bar returns), since trades of different symbols are sized on different equities.

`rank`: after each date's close, the symbols are ranked by the model's predicted up-probability (P(BUY)); the top
`fraction` (at least one symbol) are held long and as many at the bottom short over the next bar, equal-weight and
dollar-neutral with a gross exposure of 1 (each leg 0.5), close to close. Costs are charged per symbol on the
weight each one trades (entering, leaving, resizing, and the liquidation after the last bar). A trade is a run of
bars one symbol is held on one side.

Both report the universe's equal-weight buy-and-hold as the benchmark (rebalanced like the portfolio) and the
daily cross-sectional rank IC: the Spearman correlation across symbols between P(BUY) at a date's close and the
next bar's return, its mean (`rank_ic`) and its mean over its standard deviation (`icir`), as Qlib reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# `_ratios`: the one definition of the annualised ratios, shared with the single-series backtest.
from agent_pipeline.engine.backtest import (
    BacktestResult,
    _ratios,
    bar_returns,
    periods_per_year,
    positions_from_classes,
    simulate,
)
from agent_pipeline.engine.labels import BUY
from agent_pipeline.engine.pooled import PooledWalkForward
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.engine.walkforward import Fold
from agent_pipeline.errors import BacktestError

# The summary figures of each fold's own portfolio.
FOLD_KEYS = ("start", "end", "total_return", "buy_and_hold_return", "sharpe_ratio", "num_trades", "win_rate")


@dataclass(frozen=True)
class Curve:
    """A portfolio's per-bar record before it becomes a BacktestResult."""

    index: pd.DatetimeIndex
    returns: np.ndarray  # the portfolio's return over each bar
    hold_returns: np.ndarray  # the equal-weight buy-and-hold's
    positions: np.ndarray  # the net exposure held over each bar
    exposure: float  # the share of bars with a position (timing: the symbols' mean)
    num_trades: int
    win_rate: float


def portfolio_result(curve: Curve, periods: float) -> BacktestResult:
    """The metrics of a portfolio curve; its `closes` are the buy-and-hold curve from 1.0 (`first_open` 1.0), so
    `backtest.save_walk_forward` writes it as it writes one series."""
    if len(curve.returns) == 0:
        raise BacktestError("a portfolio needs at least one bar")
    returns = curve.returns
    equity, hold = np.cumprod(1.0 + returns), np.cumprod(1.0 + curve.hold_returns)
    volatility, sharpe, sortino = _ratios(returns, periods)
    total = float(equity[-1] - 1.0)
    annualised = float(equity[-1] ** (periods / len(equity)) - 1.0) if equity[-1] > 0 else -1.0
    drawdown = max(float(np.max(1.0 - equity / np.maximum.accumulate(np.maximum(equity, 1.0)))), 0.0)
    gains, losses = float(returns[returns > 0].sum()), float(-returns[returns < 0].sum())
    profit = gains / losses if losses > 0 else float("inf") if gains > 0 else 0.0
    index = curve.index
    return BacktestResult(
        total_return=total, annualised_return=annualised, volatility=volatility, sharpe_ratio=sharpe,
        sortino_ratio=sortino, max_drawdown=drawdown, calmar_ratio=annualised / drawdown if drawdown > 0 else 0.0,
        num_trades=curve.num_trades, win_rate=curve.win_rate, profit_factor=profit, exposure=curve.exposure,
        buy_and_hold_return=float(hold[-1] - 1.0), excess_return=total - float(hold[-1] - 1.0), n_bars=len(index),
        start=str(index[0]), end=str(index[-1]), equity=pd.Series(equity, index=index, name="equity"),
        positions=curve.positions, closes=hold, first_open=1.0,
    )  # fmt: skip


# --------------------------------------------------------------------------- timing


def _frame(results: list[BacktestResult], values: list[np.ndarray]) -> pd.DataFrame:
    columns = [pd.Series(v, index=r.equity.index) for r, v in zip(results, values, strict=True)]
    return pd.concat(columns, axis=1).sort_index().fillna(0.0)


def timing_portfolio(results: list[BacktestResult], *, periods_per_year: float) -> BacktestResult:
    """The equal-weight portfolio of the symbols' own backtests (see the module docstring).

    Raises:
        BacktestError: no symbol.
    """
    if not results:
        raise BacktestError("a portfolio needs at least one symbol")
    returns = _frame(results, [r.returns for r in results])
    trades = sum(r.num_trades for r in results)
    curve = Curve(
        index=pd.DatetimeIndex(returns.index),
        returns=returns.mean(axis=1).to_numpy(),
        hold_returns=_frame(results, [bar_returns(r.closes / r.first_open) for r in results]).mean(axis=1).to_numpy(),
        positions=_frame(results, [r.positions for r in results]).mean(axis=1).to_numpy(),
        exposure=float(np.mean([r.exposure for r in results])),
        num_trades=trades,
        win_rate=sum(r.num_trades * r.win_rate for r in results) / trades if trades else 0.0,
    )
    return portfolio_result(curve, periods_per_year)


# --------------------------------------------------------------------------- rank


def rank_weights(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Target weights (dates x symbols): +0.5/k on the k highest scores, -0.5/k on the k lowest, 0 elsewhere.

    k is `fraction` of the symbols ranked that date (NaN scores are not), at least 1 and at most half; a date with
    fewer than two ranked symbols is flat. Ties go to the earlier symbol.
    """
    ranked = np.isfinite(scores)
    n = ranked.sum(axis=1)
    k = np.where(n >= 2, np.clip(np.floor(fraction * n), 1, n // 2), 0).astype(int)
    order = np.argsort(np.where(ranked, scores, np.inf), axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.broadcast_to(np.arange(scores.shape[1]), scores.shape), axis=1)
    size = np.divide(0.5, k, out=np.zeros(len(k)), where=k > 0)[:, None]
    weights = np.where(position < k[:, None], -size, 0.0)
    return np.where((position >= (n - k)[:, None]) & (position < n[:, None]), size, weights)


def _segment_wins(held: np.ndarray, gross: np.ndarray, costs: np.ndarray) -> tuple[int, int]:
    """(trades, winning trades): runs of one symbol held at one weight, won when their net return is positive."""
    trades = wins = 0
    for s in range(held.shape[1]):
        column = held[:, s]
        start = np.concatenate(([True], column[1:] != column[:-1]))
        run = np.cumsum(start) - 1
        net = np.bincount(run, weights=gross[:, s] - costs[:, s])
        active = column[start] != 0
        trades += int(active.sum())
        wins += int((net[active] > 0).sum())
    return trades, wins


def rank_portfolio(
    scores: np.ndarray, closes: np.ndarray, index: pd.DatetimeIndex, *, fraction: float, cost: float, periods: float
) -> BacktestResult:
    """The dollar-neutral long-short portfolio of the daily ranks (see the module docstring).

    Args:
        scores: P(BUY) per date and symbol (NaN: not ranked); closes: the symbols' closes, same shape.
        cost: commission + slippage, a fraction of the weight traded.

    Raises:
        BacktestError: fewer than 2 dates.
    """
    if len(index) < 2:
        raise BacktestError(f"a backtest needs at least 2 bars, got {len(index)}")
    weights = rank_weights(scores, fraction)
    held = np.vstack([np.zeros(weights.shape[1]), weights[:-1]])  # decided at one close, held over the next bar
    moves = np.vstack([np.zeros(closes.shape[1]), closes[1:] / closes[:-1] - 1.0])
    moves = np.nan_to_num(moves)
    traded = np.abs(np.diff(held, axis=0, prepend=0.0))
    traded[-1] += np.abs(held[-1])  # liquidated at the last close
    gross, costs = held * moves, cost * traded
    trades, wins = _segment_wins(held, gross, costs)
    curve = Curve(
        index=index, returns=(gross - costs).sum(axis=1), hold_returns=moves.mean(axis=1), positions=held.sum(axis=1),
        exposure=float(np.mean(np.abs(held).sum(axis=1) > 0)), num_trades=trades,
        win_rate=wins / trades if trades else 0.0,
    )  # fmt: skip
    return portfolio_result(curve, periods)


def rank_ic(scores: np.ndarray, closes: np.ndarray) -> dict[str, float | int | None]:
    """The daily Spearman rank IC of scores against the next bar's return: its mean, ICIR and number of dates.

    Dates with fewer than three symbols scored, or no spread in scores or returns, have no IC.
    """
    ahead = closes[1:] / closes[:-1] - 1.0
    now = scores[:-1]
    usable = np.isfinite(now).all(axis=1) & np.isfinite(ahead).all(axis=1) & (now.shape[1] >= 3)
    a = pd.DataFrame(now[usable]).rank(axis=1).to_numpy()
    b = pd.DataFrame(ahead[usable]).rank(axis=1).to_numpy()
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    spread = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    ic = np.divide((a * b).sum(axis=1), spread, out=np.full(len(a), np.nan), where=spread > 0)
    ic = ic[np.isfinite(ic)]
    mean = float(ic.mean()) if len(ic) else None
    std = float(ic.std(ddof=1)) if len(ic) > 1 else 0.0
    return {"rank_ic": mean, "icir": mean / std if mean is not None and std > 0 else None, "ic_days": int(len(ic))}


# --------------------------------------------------------------------------- a walk-forward plan traded


def _positions(strategy: Strategy, probabilities: np.ndarray) -> np.ndarray:
    """One symbol's target positions from its own calls (`backtest.positions_from_classes` under its rules)."""
    rules = strategy.backtest
    confident = probabilities.max(axis=1) >= rules.confidence_threshold
    return positions_from_classes(probabilities.argmax(axis=1), confident, rules.min_hold)


def _timing_signals(
    strategy: Strategy, plan: PooledWalkForward, fold: Fold, probabilities: np.ndarray
) -> list[np.ndarray]:
    """Each symbol's target positions on the fold's test dates, from its own calls alone."""
    owner = plan.symbol_ids[fold.test]
    return [_positions(strategy, probabilities[owner == s]) for s in range(len(plan.symbols))]


def symbol_backtests(
    strategy: Strategy, plan: PooledWalkForward, folds: list[Fold], probabilities: list[np.ndarray]
) -> list[BacktestResult]:
    """Each symbol's own stitched backtest over `folds` (`probabilities[i]`: fold i's predictions on its test rows)."""
    signals = [_timing_signals(strategy, plan, f, p) for f, p in zip(folds, probabilities, strict=True)]
    costs, owner = strategy.backtest, plan.symbol_ids
    results = []
    for s in range(len(plan.symbols)):
        rows = np.concatenate([fold.test[owner[fold.test] == s] for fold in folds])
        mine = np.concatenate([fold_signals[s] for fold_signals in signals])
        results.append(
            simulate(
                plan.bars.iloc[rows],
                mine,
                commission=costs.commission,
                slippage=costs.slippage,
                periods_per_year=periods_per_year(strategy.timeframe),
            )  # fmt: skip
        )
    return results


def score_matrix(plan: PooledWalkForward, folds: list[Fold], probabilities: list[np.ndarray]) -> np.ndarray:
    """P(BUY) per test date (rows: the folds' test dates in order) and symbol; NaN where a symbol was not scored."""
    symbols = len(plan.symbols)
    scores = np.full((len(plan.calendar), symbols), np.nan)
    for fold, p in zip(folds, probabilities, strict=True):
        scores[fold.test // symbols, fold.test % symbols] = p[:, BUY]
    return scores[test_dates(plan, folds)]


def test_dates(plan: PooledWalkForward, folds: list[Fold]) -> np.ndarray:
    """Calendar positions of the folds' test dates, ascending."""
    return np.unique(np.concatenate([fold.test // len(plan.symbols) for fold in folds]))


def trade_plan(
    strategy: Strategy, plan: PooledWalkForward, folds: list[Fold], probabilities: list[np.ndarray]
) -> tuple[BacktestResult, dict[str, float | int | None], list[BacktestResult]]:
    """The portfolio of `folds` under the strategy's `portfolio.mode`, its rank IC, and the symbols' own backtests
    (timing only; empty for rank)."""
    dates = test_dates(plan, folds)
    closes = plan.bars["close"].to_numpy().reshape(len(plan.calendar), -1)[dates]
    scores = score_matrix(plan, folds, probabilities)
    ic = rank_ic(scores, closes)
    periods = periods_per_year(strategy.timeframe)
    rules = strategy.portfolio
    if rules is not None and rules.mode == "rank":
        cost = strategy.backtest.commission + strategy.backtest.slippage
        index = pd.DatetimeIndex(plan.calendar[dates])
        return rank_portfolio(scores, closes, index, fraction=rules.fraction, cost=cost, periods=periods), ic, []
    symbols = symbol_backtests(strategy, plan, folds, probabilities)
    return timing_portfolio(symbols, periods_per_year=periods), ic, symbols


def trade_lockbox(
    strategy: Strategy, rows: dict[str, tuple[np.ndarray, pd.DataFrame]], probabilities: list[np.ndarray]
) -> BacktestResult:
    """The final model's portfolio on the lockbox, under the strategy's `portfolio.mode`.

    Args:
        rows: each symbol's lockbox features and bars (`pooled.lockbox_rows`); probabilities: the final model's
            predictions on each symbol's features, in the same order.
    """
    periods = periods_per_year(strategy.timeframe)
    bars = [frame for _, frame in rows.values()]
    rules = strategy.portfolio
    if rules is not None and rules.mode == "rank":
        scores = pd.concat(
            [pd.Series(p[:, BUY], index=b.index) for p, b in zip(probabilities, bars, strict=True)], axis=1
        )
        closes = pd.concat([b["close"] for b in bars], axis=1).reindex(scores.index)
        cost = strategy.backtest.commission + strategy.backtest.slippage
        index = pd.DatetimeIndex(scores.index)
        return rank_portfolio(
            scores.to_numpy(), closes.to_numpy(), index, fraction=rules.fraction, cost=cost, periods=periods
        )
    costs = strategy.backtest
    results = [
        simulate(frame, _positions(strategy, p), commission=costs.commission, slippage=costs.slippage,
                 periods_per_year=periods)
        for p, frame in zip(probabilities, bars, strict=True)
    ]  # fmt: skip
    return timing_portfolio(results, periods_per_year=periods)
