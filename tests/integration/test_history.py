"""The leaderboard: a cycle_results row written when a cycle finishes, read as an indexed page (CLI and API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent_pipeline.cli import cli
from agent_pipeline.config import reset_settings
from agent_pipeline.store.history import SortKey, leaderboard, outcome_counts
from agent_pipeline.store.migrations import upgrade_database
from agent_pipeline.store.operations import OperationsStore, OperationType


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[OperationsStore]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    store = OperationsStore(url)
    store.upgrade()
    yield store
    store.engine.dispose()


def finished_cycle(store: OperationsStore, how: str, *, dsr: float | None = None, symbol: str = "EURUSD") -> str:
    """A cycle that went through design, training and backtest, then ended `how`."""
    cycle = store.create_cycle(max_active=1000)
    store.start(cycle.operation_id)
    backtest = {"sharpe_ratio": 1.2, "num_trades": 14, "total_return": 0.05, "buy_and_hold_return": 0.02}
    if dsr is not None:
        backtest["deflated_sharpe"] = dsr
    meta: dict[str, Any] = {
        "strategy_name": f"s_{how}",
        "symbol": symbol.lower(),
        "timeframe": "1h",
        "designer": "offline",
        "training_result": {"balanced_accuracy": 0.41},
        "backtest_result": backtest,
        "cost_usd": 0.012,
    }
    store.merge_metadata(cycle.operation_id, meta)
    if how == "passed":
        store.complete(cycle.operation_id, result_summary={"discovery": False, "lockbox": {"total_return": -0.03}})
    elif how == "training_gate":
        store.fail(cycle.operation_id, error_message="Training gate failed: no_skill (balanced accuracy 35.2% < 40%)")
    elif how == "cancelled":
        store.cancel(cycle.operation_id)
    else:
        store.fail(cycle.operation_id, error_message="Cycle failed: WorkerLostError: boom")
    return cycle.operation_id


def test_a_finished_cycle_gets_one_typed_row_with_its_outcome_family(store: OperationsStore) -> None:
    passed = finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "training_gate")
    finished_cycle(store, "cancelled")
    finished_cycle(store, "error")
    store.create_cycle(max_active=1000)  # still pending: not on the leaderboard
    rows = {r.operation_id: r for r in leaderboard(store, sort=SortKey.CREATED)}
    assert len(rows) == 4
    best = rows[passed]
    assert (best.outcome, best.symbol, best.timeframe, best.designer) == ("passed", "EURUSD", "1h", "offline")
    assert best.excess_return == pytest.approx(0.03) and best.num_trades == 14 and best.lockbox_return == -0.03
    assert outcome_counts(store) == {"passed": 1, "training_gate": 1, "cancelled": 1, "error": 1}
    gate = next(r for r in rows.values() if r.outcome == "training_gate")
    assert gate.reason == "no_skill (balanced accuracy 35.2% < 40%)"


def test_leaderboard_sorts_best_first_missing_figures_last_and_pages(store: OperationsStore) -> None:
    low, high, none = (finished_cycle(store, "passed", dsr=d) for d in (0.2, 0.9, None))
    other = finished_cycle(store, "passed", dsr=0.99, symbol="SP500")
    assert [r.operation_id for r in leaderboard(store, symbol="EURUSD", timeframe="1h")] == [high, low, none]
    assert [r.operation_id for r in leaderboard(store)] == [other, high, low, none]
    assert [r.operation_id for r in leaderboard(store, limit=2, offset=1)] == [high, low]
    assert leaderboard(store, symbol="eurusd", timeframe="1d") == []


def test_upgrade_backfills_cycles_that_finished_before_the_table(sqlite_url: str) -> None:
    store = OperationsStore(sqlite_url)
    upgrade_database(store.engine, "0001")
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"strategy_name": "old"})
    from sqlalchemy import update

    from agent_pipeline.store.models import OperationRow

    with store.engine.begin() as connection:  # finished under revision 0001: no history hook then
        connection.execute(update(OperationRow).values(status="failed", error_message="Backtest gate failed: x"))
    store.upgrade()
    (row,) = leaderboard(store)
    assert (row.operation_id, row.outcome, row.reason, row.strategy_name) == (
        cycle.operation_id,
        "backtest_gate",
        "x",
        "old",
    )


def test_cli_history_shows_the_leaderboard_with_a_marked_lockbox_column(store: OperationsStore) -> None:
    passed = finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "training_gate")
    result = CliRunner().invoke(cli, ["agent", "history"], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    for text in (passed, "EURUSD 1h", "offline", "training gate: no_skill", "Lockbox†", "-3.0%", "† lockbox"):
        assert text in result.stdout, text
    as_json = CliRunner().invoke(cli, ["agent", "history", "--json", "--sort", "sharpe", "--limit", "1"])
    data = json.loads(as_json.stdout)["data"]
    assert len(data) == 1 and data[0]["sharpe_ratio"] == 1.2


def test_api_history_pages_and_refuses_an_unknown_sort(store: OperationsStore) -> None:
    from agent_pipeline.api.app import app

    finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "error")
    with TestClient(app) as client:
        body = client.get("/api/v1/agent/history", params={"sort": "return", "limit": 1}).json()
        assert body["success"] is True and len(body["data"]) == 1 and body["limit"] == 1
        assert client.get("/api/v1/agent/history", params={"sort": "luck"}).status_code == 422


def test_odd_figures_never_block_a_cycle_from_finishing(store: OperationsStore) -> None:
    cycle = store.create_cycle(max_active=10)
    store.start(cycle.operation_id)
    odd = {"symbol": "X" * 100, "backtest_result": {"deflated_sharpe": "n/a", "num_trades": True}}
    store.merge_metadata(cycle.operation_id, odd)
    assert store.complete(cycle.operation_id)
    ranked = finished_cycle(store, "passed", dsr=0.1)
    (row, other) = leaderboard(store)  # the odd one has no DSR: it sorts after the one that has
    assert other.operation_id == cycle.operation_id and row.operation_id == ranked
    assert other.symbol == "X" * 32 and other.deflated_sharpe is None and other.num_trades is None
