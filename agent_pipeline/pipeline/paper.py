"""Paper trading (issue 27): open an account on a cycle's final model, and step every open account over the bars
it has not seen yet. Paper only: no order reaches a live broker.

`open_account` refuses, with one line, a cycle that is not a discovery (unless forced), not completed, or without a
final model or backtest. The account starts after the series' last stored bar; a universe account (a universe
strategy's cycle) after the date on which every symbol's series ends, and it is refused while they end on different
dates. Its decay monitor's H0 comes from the cycle's backtest: the per-bar mean and standard deviation of its
out-of-sample returns (`oos_returns.csv`: a universe's are its portfolio's), deflated by its trials (`engine.decay`).

`step_accounts` is the beat's task (`tasks.paper`) and `ktrdr paper step`'s work: for each trading account, the
model decides on every forward bar (`engine.paper.decisions`), the bars after the last booked one are traded through
the paper broker (a universe account's: its strategy's portfolio over the universe's common dates,
`engine.paper_universe`), their returns fed to the decay monitor, and the whole step is booked in one transaction
(`store.paper_ledger.book`): a step run twice, or redelivered after a lost worker, books each bar once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from agent_pipeline.engine.artifacts import child_of, digest, fetch
from agent_pipeline.engine.broker import Position
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.engine.decay import DecayMonitor, DecayState
from agent_pipeline.engine.paper import Traded, backtest_moments, decisions, paper_broker, trade, watch
from agent_pipeline.engine.strategy import Strategy, load_strategy_text
from agent_pipeline.errors import ArtifactNotFoundError, KtrdrError, PaperRefusedError
from agent_pipeline.store.operations import Operation, OperationsStore, OperationStatus, OperationType
from agent_pipeline.store.paper import (
    Alarm,
    NewAccount,
    PaperAccount,
    create_account,
    get_account,
    record_error,
    trading_accounts,
)
from agent_pipeline.store.paper_ledger import book, positions

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

logger = logging.getLogger(__name__)

# Capital of a paper account unless `--capital` says otherwise.
DEFAULT_CAPITAL = 10_000.0


def open_account(
    store: OperationsStore, cycle_id: str, *, capital: float = DEFAULT_CAPITAL, force: bool = False,
    stop_on_decay: bool = False,
) -> PaperAccount:  # fmt: skip
    """Open a paper account for a completed cycle's final model (module docstring).

    Raises:
        OperationNotFoundError: no such cycle.
        PaperRefusedError: one line saying why no account is opened.
        DataError, StoreError: the series, the model or the backtest's returns cannot be read.
    """
    cycle = store.get(cycle_id)
    strategy_yaml = _check_cycle(cycle, force=force, capital=capital)
    strategy = load_strategy_text(strategy_yaml)
    meta = cycle.record
    start_after, symbols = _forward_start(cycle_id, strategy)
    model_url = str(meta.model_path)
    rules = strategy.portfolio
    new = NewAccount(
        cycle_id=cycle_id, symbol=strategy.symbol, timeframe=strategy.timeframe, capital=float(capital),
        model_sha256=digest(fetch(model_url)), model_url=model_url, strategy_yaml=strategy_yaml,
        start_after=start_after, stop_on_decay=stop_on_decay, decay=_monitor(cycle, strategy).to_dict(),
        universe=strategy.universe, symbols=symbols,
        portfolio_mode=(rules.mode if rules is not None else "timing") if strategy.universe else None,
    )  # fmt: skip
    account = create_account(store, new)
    logger.info("paper account opened", extra={"account": account.id, "cycle_id": cycle_id})
    return account


def _forward_start(cycle_id: str, strategy: Strategy) -> tuple[pd.Timestamp, tuple[str, ...]]:
    """Where the account's forward bars start (after the series' last stored bar; a universe's: after the date
    every symbol ends on), and the universe's symbols (none for one series).

    Raises:
        PaperRefusedError: the universe's symbols end on different dates (one line naming two of them).
        DataError: a series or the universe cannot be read.
    """
    from agent_pipeline.engine.data import load_bars  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.pooled import universe_series  # lazy: start-up cost (pandas)

    data_dir = synced_data_dir()
    if strategy.universe is None:
        return load_bars(strategy.symbol, strategy.timeframe, data_dir).index[-1], ()
    series = universe_series(strategy.universe, strategy.timeframe, data_dir)
    ends = {symbol: frame.index[-1] for symbol, frame in series.items()}
    first, last = min(ends, key=ends.__getitem__), max(ends, key=ends.__getitem__)
    if ends[first] != ends[last]:
        raise PaperRefusedError(
            f"cycle {cycle_id}: the symbols of the universe {strategy.universe} end on different dates ({first} at "
            f"{ends[first]}, {last} at {ends[last]}): append bars until every symbol ends on the same date"
        )
    return ends[first], tuple(series)


def _check_cycle(cycle: Operation, *, force: bool, capital: float) -> str:
    """The cycle's strategy document, once the cycle is one a paper account takes."""
    meta, summary = cycle.record, cycle.result_summary or {}
    name = cycle.operation_id
    if cycle.operation_type != OperationType.AGENT_RESEARCH:
        raise PaperRefusedError(f"{name} is a {cycle.operation_type.value} operation, not a research cycle")
    if cycle.status != OperationStatus.COMPLETED:
        raise PaperRefusedError(f"cycle {name} is {cycle.status.value}: paper trading takes a completed cycle")
    if not capital > 0:
        raise PaperRefusedError(f"capital must be positive, got {capital}")
    if summary.get("discovery") is not True and not force:
        promotion = summary.get("promotion")
        status = promotion.get("status") if isinstance(promotion, dict) else None
        what = f"a {status}" if status else "not a candidate"
        raise PaperRefusedError(
            f"cycle {name} is not a discovery ({what}): paper trading starts from discoveries; --force opens it anyway"
        )
    if meta.model_path is None or meta.backtest_dir is None:
        raise PaperRefusedError(f"cycle {name} has no final model or backtest recorded")
    return _strategy_text(cycle)


def _strategy_text(cycle: Operation) -> str:
    """The cycle's strategy document: its file, else the copy published beside its artifacts.

    Raises:
        PaperRefusedError: neither can be read (one line saying which).
    """
    meta = cycle.record
    path = Path(str(meta.strategy_path)) if meta.strategy_path else None
    source = str(meta.strategy_url) if meta.strategy_url else None
    try:
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8")
        if source is not None:
            return fetch(source).read_text(encoding="utf-8")
    except (ArtifactNotFoundError, OSError, UnicodeDecodeError) as exc:
        raise PaperRefusedError(f"cycle {cycle.operation_id}: cannot read its strategy: {exc}") from None
    where = path or "no file recorded"
    raise PaperRefusedError(
        f"cycle {cycle.operation_id}: its strategy file is missing ({where}) and none was published"
    )


def _backtest_returns(cycle: Operation) -> np.ndarray:
    """The per-bar returns of the cycle's backtest on its out-of-sample bars (`oos_returns.csv`, column `return`).

    Raises:
        PaperRefusedError: the file is missing, unreadable or has no `return` column (one line).
    """
    import pandas as pd  # lazy: start-up cost (pandas)

    from agent_pipeline.engine.data import first_line  # lazy: start-up cost (pandas)

    url = child_of(str(cycle.record.backtest_dir), "oos_returns.csv")
    try:
        frame = pd.read_csv(fetch(url))
    except (ArtifactNotFoundError, OSError, ValueError) as exc:
        what = first_line(exc)
        raise PaperRefusedError(f"cycle {cycle.operation_id}: cannot read its backtest's returns: {what}") from None
    if "return" not in frame.columns:
        raise PaperRefusedError(f"cycle {cycle.operation_id}: its backtest's returns ({url}) have no 'return' column")
    return frame["return"].to_numpy()


def _monitor(cycle: Operation, strategy: Strategy) -> DecayMonitor:
    """A fresh decay monitor: H0 from the backtest's out-of-sample returns per bar, shrunk by its trials."""
    from agent_pipeline.engine.backtest import periods_per_year  # lazy: start-up cost (torch)

    meta = cycle.record
    returns = _backtest_returns(cycle)
    try:
        mean, std = backtest_moments(returns)
    except ValueError as exc:
        raise PaperRefusedError(f"cycle {cycle.operation_id}: {exc}") from None
    figures = meta.backtest
    variance = figures.get("sharpe_variance")
    per_bar = float(variance) / periods_per_year(strategy.timeframe) if variance else None
    trials = max(1, int(figures.get("trials") or 1))
    return DecayMonitor.of(mean, std, trials, backtest_bars=len(returns), trial_variance=per_bar)


@dataclass(frozen=True)
class Stepped:
    """One account's step: the bars it booked (0: none new, or another step booked them), and how it stands."""

    account_id: str
    booked: int
    state: str
    decayed: bool = False
    error: str | None = None


def step_accounts(store: OperationsStore, account_id: str | None = None) -> list[Stepped]:
    """Step every trading account (`trading_accounts`: all of them, a page at a time), or the one named: never
    raises for one account's trouble, which is recorded on it (`last_error`) and logged.

    Raises:
        PaperAccountNotFoundError: the named account does not exist.
        DatabaseUnavailableError: the accounts cannot be read.
    """
    accounts = iter([get_account(store, account_id)]) if account_id else trading_accounts(store)
    first = next(accounts, None)
    if first is None:
        return []
    data_dir = synced_data_dir()
    return [_step_one(store, account, data_dir) for account in chain([first], accounts)]


def _step_one(store: OperationsStore, account: PaperAccount, data_dir: Path | None) -> Stepped:
    """`step_account` at the task's edge: whatever one account raises is logged with its id, recorded on it, and the
    step goes on to the next account (one broken account must not stall every other one on every tick)."""
    try:
        return step_account(store, account, data_dir)
    except KtrdrError as exc:  # expected: the bars, the model or the strategy cannot be read, or the model changed
        message = str(exc)
        logger.warning("paper step failed", extra={"account": account.id, "error": message})
    except Exception as exc:  # unexpected: kept with its traceback in the log
        message = f"{type(exc).__name__}: {exc}"
        logger.exception("paper step failed unexpectedly", extra={"account": account.id, "error": message})
    record_error(store, account.id, message)
    return Stepped(account.id, 0, account.state.value, error=message)


def step_account(store: OperationsStore, account: PaperAccount, data_dir: Path | None) -> Stepped:
    """Book the bars `account` has not seen yet (module docstring); a stopped account books none.

    Raises:
        KtrdrError: the bars, the model or the strategy cannot be read, or the model changed.
    """
    from agent_pipeline.engine.data import load_bars  # lazy: start-up cost (pandas)

    series = {symbol: load_bars(symbol, account.timeframe, data_dir) for symbol in account.symbols or [account.symbol]}
    seen = account.last_bar if account.last_bar is not None else account.start_after
    # a universe has a new date only once every symbol has a bar after the last one booked
    if not account.trading or min(bars.index[-1] for bars in series.values()) <= seen:
        return Stepped(account.id, 0, account.state.value)
    model = fetch(account.model_url)
    if digest(model) != account.model_sha256:
        raise PaperRefusedError(f"the model at {account.model_url} is not the one the account opened with (sha256)")
    strategy = load_strategy_text(account.strategy_yaml)
    if account.universe is not None:
        traded = _trade_universe(account, strategy, model, series)
    else:
        traded = _trade(account, strategy, model, series[account.symbol], positions(store, account.id))
    if not traded.bars:  # no date every symbol has came after the last one booked
        return Stepped(account.id, 0, account.state.value)
    decay, state = watch(account.decay, traded, first=account.bars)
    alarm = _alarm(account, traded, state)
    booked = book(store, account, traded, decay=decay, alarm=alarm)
    after = get_account(store, account.id)
    if booked and alarm is not None:
        logger.warning(
            "paper account decayed",
            extra={"account": account.id, "bar": str(alarm.bar), "statistic": alarm.statistic},
        )
    return Stepped(account.id, len(traded.bars) if booked else 0, after.state.value, after.decayed_bar is not None)


def _trade(
    account: PaperAccount, strategy: Strategy, model: Path, bars: pd.DataFrame, held: dict[str, Position]
) -> Traded:
    """The forward bars after the account's last booked one, traded through a paper broker holding its book."""
    position = held.get(account.symbol, Position(account.symbol))
    cost = strategy.backtest.commission + strategy.backtest.slippage
    start = account.book(position)
    targets = decisions(strategy, model, bars, account.start_after)
    broker = paper_broker(start, cost, account.symbol)
    return trade(start, bars, targets, broker, symbol=account.symbol, start_after=account.start_after)


def _trade_universe(account: PaperAccount, strategy: Strategy, model: Path, series: dict[str, pd.DataFrame]) -> Traded:
    """The universe's common dates after the account's last booked one, traded as its portfolio mode says."""
    from agent_pipeline.engine.paper_universe import forward_period, run_portfolio, trade_universe  # lazy: torch
    from agent_pipeline.engine.trainer import predict_probabilities  # lazy: start-up cost (torch)

    forward = forward_period(strategy, series, account.start_after, lambda x: predict_probabilities(model, x))
    cost = strategy.backtest.commission + strategy.backtest.slippage
    start = account.book(Position(account.symbol))
    return trade_universe(
        run_portfolio(strategy, forward), start, capital=account.capital, cost_rate=cost, name=account.symbol
    )


def _alarm(account: PaperAccount, traded: Traded, state: DecayState) -> Alarm | None:
    """The alarm this step raised: the forward bar the monitor fired at, if it is one of this step's bars."""
    if not state.fired or account.decayed_bar is not None or state.fired_bar is None:
        return None
    offset = state.fired_bar - account.bars
    if not 0 <= offset < len(traded.bars):
        return None
    return Alarm(traded.bars[offset].at, float(state.fired_statistic or 0.0))
