"""The lockbox's read log (issue 25): one read per strategy and model, counted, and deflated on the leaderboard.

Each test runs on a fresh SQLite file and on a fresh Postgres database (the `store` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from agent_pipeline.engine.stats import SharpeEvidence, deflated_sharpe, trials_variance
from agent_pipeline.store.history import leaderboard
from agent_pipeline.store.lockbox import list_reads, read_lockbox, record_read
from agent_pipeline.store.migrations import upgrade_database
from agent_pipeline.store.operations import OperationsStore
from tests.cycles import finished_cycle

# Lockbox figures as engine.research.trade_lockbox reports them (annualised Sharpe, per-bar moments).
FIGURES = {
    "start": "2023-01-02",
    "end": "2023-12-29",
    "total_return": 0.04,
    "buy_and_hold_return": 0.02,
    "sharpe_ratio": 0.9,
    "num_trades": 12,
    "n_bars": 1500,
    "skewness": -0.1,
    "kurtosis": 3.4,
}
READ_KEYS = {"symbol", "timeframe", "cycle_id", "strategy_checksum", "model_sha256", "at"}


class Trader:
    """The lockbox trade `read_lockbox` is handed: counts its calls, answers `figures`."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures, self.calls = figures, 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self.figures)


def read(
    store: OperationsStore,
    cycle_id: str,
    trader: Callable[[], dict[str, Any]],
    *,
    checksum: str = "s1",
    model: str = "m1",
) -> Any:
    return read_lockbox(
        store,
        symbol="eurusd",
        timeframe="1h",
        cycle_id=cycle_id,
        strategy_checksum=checksum,
        model_sha256=model,
        trade=trader,
    )


def test_a_read_is_traded_once_logged_once_and_listed(store: OperationsStore) -> None:
    trader = Trader(FIGURES)
    shown = read(store, "op_a", trader)
    assert shown == FIGURES and trader.calls == 1
    (logged,) = list_reads(store)
    assert logged.to_dict().keys() == READ_KEYS
    assert (logged.symbol, logged.timeframe, logged.cycle_id) == ("EURUSD", "1h", "op_a")
    assert (logged.strategy_checksum, logged.model_sha256) == ("s1", "m1")
    assert logged.at.utcoffset() is not None and logged.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_a_second_read_of_the_same_strategy_and_model_is_refused_shows_the_first_result_and_logs_nothing(
    store: OperationsStore,
) -> None:
    # Given a cycle that read the lockbox of its strategy and model
    read(store, "op_first", Trader(FIGURES))
    # When a later cycle with the same strategy document and model asks to read it
    again = Trader({**FIGURES, "total_return": 9.9})
    shown = read(store, "op_second", again)
    # Then nothing is traded, the first read's figures come back marked, and the log still holds one read
    assert again.calls == 0
    assert shown == {**FIGURES, "repeat_of": "op_first"}
    assert [r.cycle_id for r in list_reads(store)] == ["op_first"]


def test_another_model_of_the_same_strategy_is_a_read_of_its_own(store: OperationsStore) -> None:
    read(store, "op_first", Trader(FIGURES))
    other = Trader({**FIGURES, "sharpe_ratio": 0.1})
    assert read(store, "op_second", other, model="m2")["sharpe_ratio"] == 0.1 and other.calls == 1
    assert [r.cycle_id for r in list_reads(store)] == ["op_first", "op_second"]


def test_a_redelivered_task_gets_its_own_read_back_unmarked_and_logs_no_second(store: OperationsStore) -> None:
    read(store, "op_a", Trader(FIGURES))
    redelivered = Trader(FIGURES)
    assert read(store, "op_a", redelivered) == FIGURES and redelivered.calls == 0
    assert len(list_reads(store)) == 1


def test_of_two_cycles_racing_on_one_strategy_and_model_only_one_logs_a_read(store: OperationsStore) -> None:
    # Both traded before either logged: the unique pair lets one in, and the other gets that read
    first = record_read(
        store, symbol="EURUSD", timeframe="1h", cycle_id="op_a", strategy_checksum="s", model_sha256="m", figures={}
    )
    second = record_read(
        store, symbol="EURUSD", timeframe="1h", cycle_id="op_b", strategy_checksum="s", model_sha256="m", figures={}
    )
    assert second == first and second.shown_to("op_b") == {"repeat_of": "op_a"}
    again = record_read(
        store, symbol="EURUSD", timeframe="1h", cycle_id="op_a", strategy_checksum="s2", model_sha256="m", figures={}
    )
    assert again == first  # one read per cycle, whatever it asks
    assert [r.cycle_id for r in list_reads(store)] == ["op_a"]


def test_the_log_lists_reads_oldest_first_and_filters_by_symbol_in_any_case(store: OperationsStore) -> None:
    for cycle_id, symbol, hour in (("op_late", "EURUSD", 3), ("op_spx", "SP500", 2), ("op_early", "EURUSD", 1)):
        record_read(
            store,
            symbol=symbol,
            timeframe="1h",
            cycle_id=cycle_id,
            strategy_checksum=cycle_id,
            model_sha256="m",
            figures=FIGURES,
            at=datetime(2024, 5, 1, hour, tzinfo=UTC),
        )
    assert [r.cycle_id for r in list_reads(store)] == ["op_early", "op_spx", "op_late"]
    assert [r.cycle_id for r in list_reads(store, symbol="eurusd")] == ["op_early", "op_late"]
    assert list_reads(store, symbol="GBPUSD") == []
    assert list_reads(store)[0].to_dict()["at"] == "2024-05-01T01:00:00+00:00"


def test_the_leaderboard_deflates_each_series_best_lockbox_sharpe_over_its_reads(store: OperationsStore) -> None:
    # Given a finished cycle on EURUSD 1h, and three reads of that series' lockbox
    cycle_id = finished_cycle(store, "passed", dsr=0.5)
    sharpes = [0.3, 1.8, 0.9]
    for n, sharpe in enumerate(sharpes):
        record_read(
            store,
            symbol="EURUSD",
            timeframe="1h",
            cycle_id=f"op_{n}",
            strategy_checksum=f"s{n}",
            model_sha256="m",
            figures={**FIGURES, "sharpe_ratio": sharpe},
        )
    # When the leaderboard is read
    (row,) = leaderboard(store)
    box = row.series_lockbox
    # Then its series shows 3 reads, and the best lockbox Sharpe deflated with the 3 reads as the trials
    per_bar = (252 * 24) ** 0.5
    evidence = SharpeEvidence(1.8 / per_bar, FIGURES["skewness"], FIGURES["kurtosis"], FIGURES["n_bars"])
    expected = deflated_sharpe(evidence, trials=3, variance=trials_variance([s / per_bar for s in sharpes], 1500))
    assert box is not None and (box.reads, box.best_cycle_id, box.best_sharpe) == (3, "op_1", 1.8)
    assert box.deflated_sharpe == pytest.approx(expected)
    assert row.to_dict()["series_lockbox"]["reads"] == 3 and row.operation_id == cycle_id
    # And a fourth, lucky-looking read is counted against the same best figure: more reads, less confidence
    record_read(
        store, symbol="EURUSD", timeframe="1h", cycle_id="op_3", strategy_checksum="s3", model_sha256="m",
        figures={**FIGURES, "sharpe_ratio": 1.7},
    )  # fmt: skip
    (row,) = leaderboard(store)
    assert row.series_lockbox is not None and row.series_lockbox.reads == 4
    assert row.series_lockbox.deflated_sharpe is not None and row.series_lockbox.deflated_sharpe < expected


def test_a_series_never_read_shows_no_lockbox_figures(store: OperationsStore) -> None:
    finished_cycle(store, "passed", dsr=0.5)
    (row,) = leaderboard(store)
    assert row.series_lockbox is not None and row.series_lockbox.reads == 0
    assert row.series_lockbox.deflated_sharpe is None


def test_cli_history_shows_each_series_lockbox_reads_and_deflated_best(store: OperationsStore) -> None:
    finished_cycle(store, "passed", dsr=0.5)
    for n in range(2):
        record_read(
            store, symbol="EURUSD", timeframe="1h", cycle_id=f"op_{n}", strategy_checksum=f"s{n}", model_sha256="m",
            figures=FIGURES,
        )  # fmt: skip
    from agent_pipeline.cli import cli

    result = CliRunner().invoke(cli, ["agent", "history"], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    assert "EURUSD 1h: 2 lockbox reads; best lockbox Sharpe 0.90, deflated over the reads (DSR) 0." in result.stdout


def test_cli_lockbox_log_json_lists_the_reads(store: OperationsStore) -> None:
    from agent_pipeline.cli import cli

    read(store, "op_a", Trader(FIGURES))
    record_read(
        store, symbol="SP500", timeframe="1d", cycle_id="op_b", strategy_checksum="s", model_sha256="m", figures={}
    )
    result = CliRunner().invoke(cli, ["agent", "lockbox-log", "--json", "--symbol", "EURUSD"], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["data"]
    assert entry.keys() == READ_KEYS
    assert (entry["symbol"], entry["timeframe"], entry["cycle_id"]) == ("EURUSD", "1h", "op_a")
    assert (entry["strategy_checksum"], entry["model_sha256"]) == ("s1", "m1")
    assert datetime.fromisoformat(entry["at"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    table = CliRunner().invoke(cli, ["agent", "lockbox-log"], prog_name="ktrdr")
    assert table.exit_code == 0 and "Lockbox reads: 2" in table.stdout and "op_b" in table.stdout


def test_api_lockbox_log_lists_the_reads_of_a_symbol(store: OperationsStore) -> None:
    from agent_pipeline.api.app import app

    read(store, "op_a", Trader(FIGURES))
    read(store, "op_b", Trader(FIGURES), checksum="s2")
    with TestClient(app) as client:
        body = client.get("/api/v1/agent/lockbox-log", params={"symbol": "eurusd"}).json()
        assert body["success"] is True and [e["cycle_id"] for e in body["data"]] == ["op_a", "op_b"]
        assert body["data"][0].keys() == READ_KEYS and body["data"][1]["strategy_checksum"] == "s2"
        assert client.get("/api/v1/agent/lockbox-log", params={"symbol": "SP500"}).json()["data"] == []


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upgrade_from_0003_creates_the_log_with_a_read_for_each_cycle_that_traded_its_lockbox(
    database: str, request: pytest.FixtureRequest
) -> None:
    # Given a database at revision 0003 with a cycle that traded its lockbox, and one whose lockbox failed
    store = OperationsStore(request.getfixturevalue(f"{database}_url"))
    upgrade_database(store.engine, "0003")
    assert "lockbox_reads" not in inspect(store.engine).get_table_names()
    traded = finished_cycle(store, "passed")  # its result summary holds a traded lockbox
    failed = store.create_cycle(max_active=10)
    store.merge_metadata(failed.operation_id, {"symbol": "EURUSD", "timeframe": "1h"})
    store.start(failed.operation_id)
    store.complete(failed.operation_id, result_summary={"lockbox": {"error": "lockbox not traded: x"}})
    # When it is upgraded
    store.upgrade()
    # Then the log holds one read, the traded one, without checksums, and refuses no later read
    (old,) = list_reads(store)
    assert (old.cycle_id, old.symbol, old.timeframe, old.figures) == (traded, "EURUSD", "1h", {"total_return": -0.03})
    assert (old.strategy_checksum, old.model_sha256) == (None, None)
    assert read(store, "op_new", Trader(FIGURES)) == FIGURES
    (row, _) = leaderboard(store)
    assert row.series_lockbox is not None and row.series_lockbox.reads == 2
    store.engine.dispose()


def test_a_cancel_that_lands_while_the_lockbox_trades_logs_no_read(store: OperationsStore) -> None:
    from agent_pipeline.errors import CancelledError
    from agent_pipeline.tasks.cycle import traded_while_running

    # Given two running cycles, one of which is cancelled while its final model trades the lockbox
    cancelled, running = (store.create_cycle(max_active=1000).operation_id for _ in range(2))
    for cycle_id in (cancelled, running):
        store.start(cycle_id)

    def cancel_meanwhile() -> dict[str, Any]:
        store.cancel(cancelled)
        return dict(FIGURES)

    # When each reads its lockbox through the finalize task's trade
    with pytest.raises(CancelledError, match=f"cycle {cancelled} is cancelled: its lockbox read is not logged"):
        read(store, cancelled, lambda: traded_while_running(cancelled, cancel_meanwhile), checksum="s2", model="m2")
    shown = read(store, running, lambda: traded_while_running(running, Trader(FIGURES)), checksum="s3", model="m3")
    # Then only the running cycle's read is logged
    assert shown == FIGURES
    assert [entry.cycle_id for entry in list_reads(store)] == [running]
