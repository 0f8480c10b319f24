"""The backtester: the trained model trades the held-out test period, vectorised in numpy.

Signals (`predict_signals`): the model's class at each bar's close becomes a target position:
BUY -> long (+1), SELL -> short (-1) (every bundled market is traded as a CFD / future, so shorting is
allowed), HOLD or a top probability below `confidence_threshold` -> keep the current position
("do nothing"). The first position is flat. With `min_hold` > 1 a position, once taken, is kept for at least that
many bars; after that it follows the latest confident call.

Execution (`simulate`): a target position decided from bar t's close is executed at bar t+1's open; the
last bar's target is never executed (there is no next open), and any open position is closed at the last
bar's close. Close-only bars (issue 24: no open, high or low) trade close to close: bar t+1's "open" is bar
t's close, so the target decided at that close is filled at it and earns bar t+1's close-to-close return, and
buy-and-hold runs from the first close.
Costs: `commission + slippage` as a fraction of traded notional, charged on each exit and each
entry (a flip long -> short pays both). A trade is sized at the whole equity at its entry and held as a
fixed quantity until its exit, so equity within a trade is E_entry * (1 - cost + side * (price/entry - 1)).

Metrics use per-bar returns of the close-to-close equity curve, a zero risk-free rate and
`periods_per_year` (see PERIODS_PER_YEAR).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agent_pipeline.engine.data import is_close_only
from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.engine.labels import BUY, SELL
from agent_pipeline.engine.stats import PERIODS_PER_YEAR
from agent_pipeline.engine.strategy import Backtest, Strategy
from agent_pipeline.engine.trainer import ModelSpec, load_model, predict_probabilities
from agent_pipeline.errors import BacktestError, TrainingError


@dataclass
class BacktestResult:
    """Metrics of one backtest (fractions, not percent) plus the equity curve and positions."""

    total_return: float
    annualised_return: float
    volatility: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float  # fraction 0-1, positive
    calmar_ratio: float
    num_trades: int
    win_rate: float  # fraction of closed trades with positive pnl after costs; 0 with no trades
    profit_factor: float  # gross profit / gross loss; inf with no losing trade, 0 with no trades
    exposure: float  # fraction of bars with a position
    buy_and_hold_return: float  # first open to last close, no costs
    excess_return: float  # total_return - buy_and_hold_return
    n_bars: int
    start: str
    end: str
    equity: pd.Series = field(repr=False)  # equity at each bar's close, starting capital 1.0
    positions: np.ndarray = field(repr=False)  # position held during each bar (from its open)
    closes: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    first_open: float = field(repr=False, default=1.0)

    @property
    def returns(self) -> np.ndarray:
        """Per-bar returns of the close-to-close equity curve (the first bar's against the starting capital)."""
        return bar_returns(self.equity.to_numpy())

    def to_summary(self) -> dict[str, Any]:
        """JSON-safe metrics; non-finite numbers (an infinite profit factor) become None."""
        summary = asdict(self)
        del summary["equity"], summary["positions"], summary["closes"], summary["first_open"]
        return {k: _finite(v) for k, v in summary.items()}

    def save(self, out_dir: Path) -> None:
        """Write `equity.csv` (timestamp, equity, position) and `metrics.json` atomically into `out_dir`."""
        out_dir = Path(out_dir)
        curve = pd.DataFrame({"equity": self.equity.to_numpy(), "position": self.positions}, index=self.equity.index)
        curve.index.name = "timestamp"
        atomic_write(out_dir / "equity.csv", curve.to_csv())
        atomic_write(out_dir / "metrics.json", json.dumps(self.to_summary(), indent=2, allow_nan=False))


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Per-bar returns of an equity curve starting from 1.0; 0 after a ruin (nothing left to gain or lose)."""
    previous = np.concatenate(([1.0], equity[:-1]))
    change = np.diff(equity, prepend=1.0)
    return np.divide(change, previous, out=np.zeros_like(change), where=previous > 0)


def save_walk_forward(result: BacktestResult, folds: np.ndarray, summary: dict[str, Any], out_dir: Path) -> None:
    """Write a stitched walk-forward record atomically into `out_dir`.

    `equity.csv`: timestamp, equity, position, fold, buy_and_hold (its equity from the first open);
    `oos_returns.csv`: timestamp, return, buy_and_hold (per-bar returns, for statistics across trials);
    `metrics.json`: `summary`.
    """
    out_dir = Path(out_dir)
    index = result.equity.index
    closes = result.closes
    hold = closes / result.first_open
    hold_returns = np.diff(hold, prepend=1.0) / np.concatenate(([1.0], hold[:-1]))
    curve = pd.DataFrame(
        {"equity": result.equity.to_numpy(), "position": result.positions, "fold": folds, "buy_and_hold": hold},
        index=index,
    )
    curve.index.name = "timestamp"
    returns = pd.DataFrame({"return": result.returns, "buy_and_hold": hold_returns}, index=index)
    returns.index.name = "timestamp"
    atomic_write(out_dir / "equity.csv", curve.to_csv())
    atomic_write(out_dir / "oos_returns.csv", returns.to_csv())
    atomic_write(out_dir / "metrics.json", json.dumps(_json_safe(summary), indent=2, allow_nan=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return _finite(value)


def _finite(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def periods_per_year(timeframe: str) -> float:
    """Bars per year for a timeframe (see PERIODS_PER_YEAR)."""
    try:
        return float(PERIODS_PER_YEAR[timeframe])
    except KeyError:
        raise BacktestError(f"unknown timeframe {timeframe!r}") from None


def positions_from_classes(classes: np.ndarray, confident: np.ndarray, min_hold: int = 1) -> np.ndarray:
    """Target positions: BUY +1, SELL -1, HOLD or unconfident keeps the previous position (first: flat).

    With `min_hold` > 1 a position taken at bar t may change again at bar t + min_hold at the earliest, to the
    latest confident call by then; leaving flat is never delayed.
    """
    action = np.where(classes == BUY, 1.0, np.where(classes == SELL, -1.0, np.nan))
    action[~confident] = np.nan
    wanted = pd.Series(action).ffill().fillna(0.0).to_numpy()
    if min_hold <= 1:
        return wanted
    held = np.empty_like(wanted)
    position, since = 0.0, 0
    for t, target in enumerate(wanted):
        since += 1
        if target != position and (position == 0.0 or since >= min_hold):
            position, since = target, 0
        held[t] = position
    return held


def _load(model_path: Path) -> tuple[torch.nn.Sequential, ModelSpec]:
    try:
        return load_model(Path(model_path), device="cpu")
    except TrainingError as exc:
        raise BacktestError(str(exc)) from None


def predict_signals(model_path: Path, x: np.ndarray, *, confidence_threshold: float, min_hold: int = 1) -> np.ndarray:
    """The model's target position (+1 long, -1 short, 0 flat) after each bar; see the module docstring.

    Raises:
        BacktestError: the model cannot be read, or the features do not match its inputs.
    """
    try:
        probabilities = predict_probabilities(Path(model_path), x)
    except TrainingError as exc:
        raise BacktestError(str(exc)) from None
    classes = probabilities.argmax(axis=1)
    return positions_from_classes(classes, probabilities.max(axis=1) >= confidence_threshold, min_hold)


def strategy_signals(model_path: Path, x: np.ndarray, rules: Backtest) -> np.ndarray:
    """`predict_signals` under a strategy's backtest rules (its confidence threshold and minimum hold)."""
    return predict_signals(model_path, x, confidence_threshold=rules.confidence_threshold, min_hold=rules.min_hold)


def _prices(bars: pd.DataFrame, signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(bars) < 2:
        raise BacktestError(f"a backtest needs at least 2 bars, got {len(bars)}")
    if len(signals) != len(bars):
        raise BacktestError(f"{len(signals)} signals for {len(bars)} bars")
    closes = bars["close"].to_numpy(dtype=np.float64)
    # close-only: each bar is entered at the close before it (the first bar, always flat, at its own close)
    opens = np.concatenate((closes[:1], closes[:-1])) if is_close_only(bars) else bars["open"].to_numpy(dtype=float)
    if not (np.isfinite(opens).all() and np.isfinite(closes).all() and (opens > 0).all() and (closes > 0).all()):
        raise BacktestError("open and close prices must be positive and finite")
    return opens, closes


def _equity_curve(
    opens: np.ndarray, closes: np.ndarray, held: np.ndarray, cost: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equity at each close, plus each segment's position and growth factor (see the module docstring).

    A segment is a run of bars holding one position; it starts at an open and ends at the next segment's
    open (or, for the last, at the final close, where an open position is liquidated).
    """
    is_start = np.empty(len(held), dtype=bool)
    is_start[0] = True
    np.not_equal(held[1:], held[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    seg = np.cumsum(is_start) - 1
    side, entry_price = held[starts], opens[starts]
    exit_price = np.append(opens[starts[1:]], closes[-1])
    ratio = exit_price / entry_price
    size = np.abs(side)
    factor = 1.0 - size * cost + side * (ratio - 1.0) - size * cost * ratio
    start_equity = np.concatenate(([1.0], np.cumprod(factor)[:-1]))
    equity = start_equity[seg] * (1.0 - size[seg] * cost + side[seg] * (closes / entry_price[seg] - 1.0))
    equity[-1] = start_equity[-1] * factor[-1]  # the final close includes the liquidation cost
    return equity, side, factor


def _ratios(returns: np.ndarray, periods: float) -> tuple[float, float, float]:
    """(annualised volatility, Sharpe, Sortino) of per-bar returns with a zero risk-free rate."""
    mean = float(returns.mean())
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    sharpe = mean / std * np.sqrt(periods) if std > 0 else 0.0
    no_downside = float("inf") if mean > 0 else 0.0  # never lost a bar: unbounded, or flat
    sortino = mean / downside * np.sqrt(periods) if downside > 0 else no_downside
    return std * float(np.sqrt(periods)), float(sharpe), float(sortino)


def _trade_stats(side: np.ndarray, factor: np.ndarray) -> tuple[int, float, float]:
    """(number of trades, win rate, profit factor) from the segments that held a position."""
    traded = side != 0
    start_equity = np.concatenate(([1.0], np.cumprod(factor)[:-1]))
    pnl = (start_equity * (factor - 1.0))[traded]
    if len(pnl) == 0:
        return 0, 0.0, 0.0
    gains, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    profit_factor = gains / losses if losses > 0 else float("inf") if gains > 0 else 0.0
    return len(pnl), float(np.mean(pnl > 0)), float(profit_factor)


def simulate(
    bars: pd.DataFrame,
    signals: np.ndarray,
    *,
    commission: float,
    slippage: float,
    periods_per_year: float,
) -> BacktestResult:
    """Trade target positions `signals[t]` (decided at bar t's close) at bar t+1's open.

    Args:
        bars: OHLCV rows (open and close are used), oldest first.
        signals: one target position per bar, in [-1, 1] (+1 long, -1 short, 0 flat).
        commission: fraction of traded notional per side.
        slippage: fraction of traded notional per side (an adverse fill modelled as a cost).
        periods_per_year: bars per year, for annualising.

    Raises:
        BacktestError: lengths differ, fewer than 2 bars, bad prices or signals.
    """
    signals = np.asarray(signals, dtype=np.float64)
    opens, closes = _prices(bars, signals)
    if not np.isfinite(signals).all() or np.abs(signals).max() > 1:
        raise BacktestError("signals must be finite positions in [-1, 1]")
    held = np.concatenate(([0.0], signals[:-1]))  # no look-ahead: bar t's signal trades at bar t+1's open
    held, equity, side, factor = _trade(opens, closes, held, commission + slippage)
    returns = bar_returns(equity)
    volatility, sharpe, sortino = _ratios(returns, periods_per_year)
    total = float(equity[-1] - 1.0)
    annualised = float(equity[-1] ** (periods_per_year / len(equity)) - 1.0) if equity[-1] > 0 else -1.0
    drawdown = float(np.max(1.0 - equity / np.maximum.accumulate(np.maximum(equity, 1.0))))
    num_trades, win_rate, profit_factor = _trade_stats(side, factor)
    buy_and_hold = float(closes[-1] / opens[0] - 1.0)
    return BacktestResult(
        total_return=total, annualised_return=annualised, volatility=volatility, sharpe_ratio=sharpe,
        sortino_ratio=sortino, max_drawdown=max(drawdown, 0.0),
        calmar_ratio=annualised / drawdown if drawdown > 0 else 0.0, num_trades=num_trades, win_rate=win_rate,
        profit_factor=profit_factor, exposure=float(np.mean(held != 0)), buy_and_hold_return=buy_and_hold,
        excess_return=total - buy_and_hold, n_bars=len(bars), start=str(bars.index[0]), end=str(bars.index[-1]),
        equity=pd.Series(equity, index=bars.index, name="equity"), positions=held, closes=closes,
        first_open=float(opens[0]),
    )  # fmt: skip


def _trade(
    opens: np.ndarray, closes: np.ndarray, held: np.ndarray, cost: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The positions actually held, the equity curve and the trades' sides and factors (`_equity_curve`).

    A losing short can cost more than the account: it is ruined at that close, liquidated at the next open, and
    trades no more. Equity stays at 0 (a drawdown of 100%, never more).
    """
    equity, side, factor = _equity_curve(opens, closes, held, cost)
    ruin = np.flatnonzero(equity <= 0)
    if len(ruin):
        held = held.copy()
        held[ruin[0] + 1 :] = 0.0
        equity, side, factor = _equity_curve(opens, closes, held, cost)
        equity[ruin[0] :] = 0.0
    return held, equity, side, factor


def run_backtest(strategy: Strategy, dataset: Dataset, model_path: Path, *, out_dir: Path) -> BacktestResult:
    """Trade the test period with the trained model and save the equity curve and metrics to `out_dir`.

    Raises:
        BacktestError: the model was trained on other features, or the test period cannot be traded.
    """
    _, spec = _load(model_path)
    if spec.feature_names != list(dataset.feature_names):
        raise BacktestError("the model was trained on other features than this dataset's")
    if len(dataset.test_bars) != len(dataset.x_test):
        raise BacktestError(f"{len(dataset.test_bars)} test bars for {len(dataset.x_test)} feature rows")
    costs = strategy.backtest
    result = simulate(
        dataset.test_bars,
        strategy_signals(model_path, dataset.x_test, costs),
        commission=costs.commission,
        slippage=costs.slippage,
        periods_per_year=periods_per_year(strategy.timeframe),
    )
    result.save(out_dir)
    return result
