"""Paper accounts in the operations database (issue 27; store/paper.py, store/paper_ledger.py): opened, booked once
per bar whatever races or repeats, alarmed and stopped.

Each test runs on a fresh SQLite file and on a fresh Postgres database (the `store` fixture).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from agent_pipeline.engine.broker import Position
from agent_pipeline.engine.decay import DecayMonitor
from agent_pipeline.engine.paper import Traded, paper_broker, trade
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.errors import PaperAccountNotFoundError
from agent_pipeline.store import paper as paper_store
from agent_pipeline.store.operations import OperationsStore
from agent_pipeline.store.paper import (
    TRADING,
    Alarm,
    NewAccount,
    PaperAccount,
    PaperEquityRow,
    PaperState,
    alarm_flags,
    create_account,
    get_account,
    list_accounts,
    paper_totals,
    record_error,
    stop_account,
    to_db_time,
    trading_accounts,
)
from agent_pipeline.store.paper_ledger import book, equity_curve, fills, positions

BARS, _ = synth_bars("reversal", 3.0, 4, 300)
START = BARS.index[99]
TARGETS = pd.Series(np.random.default_rng(1).choice([-1.0, 0.0, 1.0], size=201), index=BARS.index[99:])
MONITOR = DecayMonitor.of(0.001, 0.01, 3, backtest_bars=800).to_dict()


def opened(store: OperationsStore, *, stop_on_decay: bool = False, cycle_id: str = "op_cycle") -> PaperAccount:
    new = NewAccount(
        cycle_id=cycle_id, symbol="rev", timeframe="1d", capital=1000.0, model_sha256="ab" * 32,
        model_url="file:///models/model.pt", strategy_yaml="name: x\n", start_after=START,
        stop_on_decay=stop_on_decay, decay=MONITOR,
    )  # fmt: skip
    return create_account(store, new)


def step(store: OperationsStore, account: PaperAccount, through: int) -> Traded:
    """The paper loop over the bars after the account's last booked one, up to bar `through` of BARS."""
    start = account.book(positions(store, account.id).get("REV", Position("REV")))
    broker = paper_broker(start, 0.0003, "REV")
    return trade(start, BARS.iloc[:through], TARGETS, broker, symbol="REV", start_after=START)


def test_an_account_opens_flat_with_its_capital_and_reads_back(store: OperationsStore) -> None:
    account = opened(store)
    assert account.id.startswith("paper_") and account.state == PaperState.OPEN
    assert (account.cash, account.equity, account.bars, account.last_bar) == (1000.0, 1000.0, 0, None)
    assert get_account(store, account.id) == account
    assert account.start_after == START and account.symbol == "REV"
    shown = account.to_dict()
    assert (shown["mode"], shown["state"], shown["bars"], shown["equity"]) == ("paper", "open", 0, 1000.0)
    assert shown["decay"]["fired"] is False and shown["decay"]["threshold"] > 0
    assert positions(store, account.id) == {"REV": Position("REV")}
    with pytest.raises(PaperAccountNotFoundError, match="paper account not found: nope"):
        get_account(store, "nope")


def test_a_step_books_its_bars_fills_position_and_equity_once(store: OperationsStore) -> None:
    # Given an open account and a step over 50 forward bars
    account = opened(store)
    traded = step(store, account, 150)
    # When it is booked, and the same step (read before the first was booked) is booked again
    assert book(store, account, traded, decay=MONITOR, alarm=None)
    assert not book(store, account, traded, decay=MONITOR, alarm=None)
    # Then the bars are there once, with their fills, and the account's book moved past them
    curve = equity_curve(store, account.id)
    assert [point.at for point in curve] == list(BARS.index[100:150]) and [p.bar for p in curve] == list(range(50))
    assert [point.equity for point in curve] == [bar.equity for bar in traded.bars]
    assert len(fills(store, account.id)) == sum(len(bar.fills) for bar in traded.bars) > 0
    after = get_account(store, account.id)
    assert (after.bars, after.last_bar, after.equity) == (50, BARS.index[149], traded.book.equity)
    assert positions(store, account.id)["REV"] == traded.book.position
    # And the next step books only the bars after them
    later = step(store, after, 200)
    assert book(store, after, later, decay=MONITOR, alarm=None)
    assert len(equity_curve(store, account.id)) == 100 and get_account(store, account.id).bars == 100


def test_steps_racing_on_one_account_book_each_bar_once(store: OperationsStore) -> None:
    account = opened(store)
    traded = step(store, account, 180)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: book(store, account, traded, decay=MONITOR, alarm=None), range(6)))
    assert results.count(True) == 1
    assert len(equity_curve(store, account.id)) == 80


def test_the_database_itself_refuses_a_bar_booked_twice(store: OperationsStore) -> None:
    account = opened(store)
    row = {"account_id": account.id, "bar_time": to_db_time(BARS.index[100]), "bar": 0, "close": 1.0}
    values = {**row, "position": 0.0, "target": 0.0, "cash": 1.0, "equity": 1.0, "bar_return": 0.0}
    with store._session() as session:
        session.add(PaperEquityRow(**values))
    with pytest.raises(IntegrityError), store._session() as session:
        session.add(PaperEquityRow(**{**values, "bar": 1}))


def test_an_alarm_flags_the_account_decayed_and_it_trades_on(store: OperationsStore) -> None:
    account = opened(store)
    traded = step(store, account, 130)
    alarm = Alarm(BARS.index[120], 7.5)
    assert book(store, account, traded, decay=MONITOR, alarm=alarm)
    decayed = get_account(store, account.id)
    assert (decayed.state, decayed.decayed_bar, decayed.decay_statistic) == (PaperState.DECAYED, BARS.index[120], 7.5)
    assert decayed.to_dict()["decay"]["bar"] == str(BARS.index[120])
    assert book(store, decayed, step(store, decayed, 140), decay=MONITOR, alarm=None)
    assert get_account(store, account.id).bars == 40
    assert [a.id for a in list_accounts(store, states=TRADING)] == [account.id]


def test_with_stop_on_decay_the_alarm_stops_the_account(store: OperationsStore) -> None:
    account = opened(store, stop_on_decay=True)
    assert book(store, account, step(store, account, 130), decay=MONITOR, alarm=Alarm(BARS.index[110], 6.0))
    stopped = get_account(store, account.id)
    assert (stopped.state, stopped.stop_reason, stopped.decayed_bar) == (PaperState.STOPPED, "decay", BARS.index[110])
    assert not book(store, stopped, step(store, stopped, 140), decay=MONITOR, alarm=None)
    assert list_accounts(store, states=TRADING) == []


def test_a_stopped_account_books_nothing_and_stopping_it_again_changes_nothing(store: OperationsStore) -> None:
    account = opened(store)
    first = opened(store, cycle_id="op_other")
    traded = step(store, account, 120)
    stopped = stop_account(store, account.id)
    assert stopped.state == PaperState.STOPPED and stopped.stop_reason == "user" and stopped.stopped_at is not None
    assert stop_account(store, account.id) == stopped
    assert not book(store, account, traded, decay=MONITOR, alarm=None)
    assert equity_curve(store, account.id) == []
    assert {a.id for a in list_accounts(store)} == {account.id, first.id}
    record_error(store, first.id, "model missing")
    assert get_account(store, first.id).last_error == "model missing"


def test_the_step_and_the_metrics_reach_every_account_past_the_list_cap(
    store: OperationsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.pipeline.paper import step_accounts

    # Given five accounts, one stopped and one decayed, and lists capped at two
    accounts = [opened(store, cycle_id=f"op_{i}") for i in range(5)]
    stop_account(store, accounts[0].id)
    assert book(store, accounts[1], step(store, accounts[1], 130), decay=MONITOR, alarm=Alarm(BARS.index[120], 7.5))
    monkeypatch.setattr(paper_store, "MAX_ACCOUNTS", 2)
    assert len(list_accounts(store)) == 2
    # Then the step pages through the four trading ones, oldest id first, and steps each (here: no series, recorded)
    trading = sorted(account.id for account in accounts[1:])
    assert [account.id for account in trading_accounts(store)] == trading
    assert [account.id for account in trading_accounts(store, page=3)] == trading
    stepped = step_accounts(store)
    assert [s.account_id for s in stepped] == trading and all(s.error for s in stepped)
    # And the metrics count every account, by the database
    assert len(alarm_flags(store)) == 5 and sum(fired for _, _, fired in alarm_flags(store)) == 1
    totals = paper_totals(store)
    assert totals.by_state == {"open": 3, "decayed": 1, "stopped": 1} and totals.alarms == 1
