"""Trading a universe (issue 24), `portfolio.mode: timing`: each symbol trades its own signal, equal weight.

Each symbol is backtested alone (`backtest.simulate`, so costs are charged per symbol per trade), and the portfolio's
return on a date is the mean of the symbols' returns that date: capital split equally and rebalanced every bar. A
symbol without a bar on a date counts as flat (0). The benchmark is the universe's equal-weight buy-and-hold, built
the same way from the symbols' buy-and-hold returns.

Trades and the win rate are counted over every symbol's trades; the profit factor is the portfolio's (gross gains
over gross losses of its per-bar returns), since trades of different symbols are sized on different equities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# `_ratios`: the one definition of the annualised ratios, shared with the single-series backtest.
from agent_pipeline.engine.backtest import BacktestResult, _ratios, bar_returns
from agent_pipeline.errors import BacktestError


def _frame(results: list[BacktestResult], values: list[np.ndarray]) -> pd.DataFrame:
    columns = [pd.Series(v, index=r.equity.index) for r, v in zip(results, values, strict=True)]
    return pd.concat(columns, axis=1).sort_index().fillna(0.0)


def _hold_returns(result: BacktestResult) -> np.ndarray:
    return bar_returns(result.closes / result.first_open)


def _trades(results: list[BacktestResult], returns: np.ndarray) -> tuple[int, float, float]:
    """(trades over all symbols, their win rate, the portfolio's profit factor)."""
    trades = sum(r.num_trades for r in results)
    wins = sum(r.num_trades * r.win_rate for r in results)
    gains, losses = float(returns[returns > 0].sum()), float(-returns[returns < 0].sum())
    profit = gains / losses if losses > 0 else float("inf") if gains > 0 else 0.0
    return trades, wins / trades if trades else 0.0, profit


def timing_portfolio(results: list[BacktestResult], *, periods_per_year: float) -> BacktestResult:
    """The equal-weight portfolio of the symbols' backtests (see the module docstring).

    Its `positions` are the symbols' mean position (the net exposure), its `closes` the equal-weight buy-and-hold
    curve from 1.0 (`first_open` 1.0), so `backtest.save_walk_forward` writes it as it writes one series.

    Raises:
        BacktestError: no symbol.
    """
    if not results:
        raise BacktestError("a portfolio needs at least one symbol")
    returns_frame = _frame(results, [r.returns for r in results])
    returns = returns_frame.mean(axis=1).to_numpy()
    equity = np.cumprod(1.0 + returns)
    hold = np.cumprod(1.0 + _frame(results, [_hold_returns(r) for r in results]).mean(axis=1).to_numpy())
    positions = _frame(results, [r.positions for r in results]).mean(axis=1).to_numpy()
    volatility, sharpe, sortino = _ratios(returns, periods_per_year)
    total = float(equity[-1] - 1.0)
    annualised = float(equity[-1] ** (periods_per_year / len(equity)) - 1.0) if equity[-1] > 0 else -1.0
    drawdown = max(float(np.max(1.0 - equity / np.maximum.accumulate(np.maximum(equity, 1.0)))), 0.0)
    num_trades, win_rate, profit_factor = _trades(results, returns)
    index = returns_frame.index
    return BacktestResult(
        total_return=total, annualised_return=annualised, volatility=volatility, sharpe_ratio=sharpe,
        sortino_ratio=sortino, max_drawdown=drawdown, calmar_ratio=annualised / drawdown if drawdown > 0 else 0.0,
        num_trades=num_trades, win_rate=win_rate, profit_factor=profit_factor,
        exposure=float(np.mean([r.exposure for r in results])), buy_and_hold_return=float(hold[-1] - 1.0),
        excess_return=total - float(hold[-1] - 1.0), n_bars=len(index), start=str(index[0]), end=str(index[-1]),
        equity=pd.Series(equity, index=index, name="equity"), positions=positions, closes=hold, first_open=1.0,
    )  # fmt: skip
