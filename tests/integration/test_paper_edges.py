"""Paper trading at its edges (issue 27 review): one broken account never stalls the others' step, and a cycle whose
strategy file or backtest returns are gone is refused with one line, not an unexpected error.

One model is trained for the module; each test runs on a fresh SQLite file and on a fresh Postgres database (the
`store` fixture), on its own copy of the data folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.errors import PaperRefusedError
from agent_pipeline.pipeline.paper import open_account, step_accounts
from agent_pipeline.store.operations import OperationsStore, OperationType
from agent_pipeline.store.paper import PaperAccountRow, get_account
from tests.forward import data_copy, forward_csv, trained_cycle

SYMBOL = "PEDGE"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A planted reversal's data folder and the metadata of a cycle trained and backtested on it (once)."""
    from agent_pipeline.store.operations import OperationsStore

    work = tmp_path_factory.mktemp("paper_edges")
    folder = work / "data"
    write_synth("reversal", 3.0, 5, symbol=SYMBOL, timeframe="1d", data_dir=folder, bars=1500)
    scratch = OperationsStore(f"sqlite:///{work / 'scratch.db'}")
    scratch.upgrade()
    cycle_id = trained_cycle(scratch, folder, work, SYMBOL)
    meta = dict(scratch.get(cycle_id).metadata)
    scratch.engine.dispose()
    return folder, meta


@pytest.fixture
def data_dir(trained: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's copy of the trained cycle's data folder, the one the settings name."""
    return data_copy(trained[0], tmp_path, monkeypatch)


def discovery(store: OperationsStore, meta: dict) -> str:
    """A completed discovery in `store` with the trained cycle's model, backtest and strategy."""
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    store.start(cycle.operation_id)
    store.complete(cycle.operation_id, result_summary={"discovery": True})
    return str(cycle.operation_id)


def test_an_account_that_raises_unexpectedly_is_recorded_and_the_others_are_stepped(
    store: OperationsStore,
    trained: tuple[Path, dict],
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given three accounts of a discovery, one of whose decay record the code cannot read (a KeyError, no KtrdrError)
    cycle = discovery(store, trained[1])
    accounts = [open_account(store, cycle) for _ in range(3)]
    broken = accounts[1].id
    with store._session() as session:
        session.execute(update(PaperAccountRow).where(PaperAccountRow.id == broken).values(decay={"arl0": 1.0}))
    # When 30 forward bars arrive and the step runs
    csv = forward_csv(data_dir, SYMBOL, 30, tmp_path / "forward.csv", seed=3)
    append_bars(FileBarSource(csv), symbol=SYMBOL, timeframe="1d", data_dir=data_dir)
    with caplog.at_level(logging.ERROR, logger="agent_pipeline.pipeline.paper"):
        stepped = {s.account_id: s for s in step_accounts(store)}
    # Then the broken account booked nothing, its error recorded and logged with its traceback and its id
    assert stepped[broken].booked == 0 and stepped[broken].error == "KeyError: 'state'"
    assert get_account(store, broken).last_error == "KeyError: 'state'"
    record = next(r for r in caplog.records if getattr(r, "account", None) == broken)
    assert record.exc_info is not None
    # And the others booked every bar
    assert {s.booked for key, s in stepped.items() if key != broken} == {30}
    assert [get_account(store, a.id).bars for a in accounts if a.id != broken] == [30, 30]


def test_a_cycle_whose_strategy_file_is_gone_is_refused_with_one_line(
    store: OperationsStore, trained: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.yaml"
    cycle = discovery(store, {**trained[1], "strategy_path": str(missing)})
    with pytest.raises(PaperRefusedError, match=r"strategy file is missing .*gone\.yaml") as refused:
        open_account(store, cycle)
    assert "\n" not in str(refused.value)
    nothing = discovery(store, {key: value for key, value in trained[1].items() if key != "strategy_path"})
    with pytest.raises(PaperRefusedError, match="strategy file is missing \\(no file recorded\\)"):
        open_account(store, nothing)


def test_a_backtest_without_its_returns_column_or_file_is_refused_with_one_line(
    store: OperationsStore, trained: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    backtest = tmp_path / "backtest"
    shutil.copytree(trained[1]["backtest_dir"], backtest)
    (backtest / "oos_returns.csv").write_text("date,pnl\n2020-01-01,0.1\n")
    cycle = discovery(store, {**trained[1], "backtest_dir": str(backtest)})
    with pytest.raises(PaperRefusedError, match="have no 'return' column"):
        open_account(store, cycle)
    (backtest / "oos_returns.csv").unlink()
    gone = discovery(store, {**trained[1], "backtest_dir": str(backtest)})
    with pytest.raises(PaperRefusedError, match="cannot read its backtest's returns: ") as refused:
        open_account(store, gone)
    assert "\n" not in str(refused.value)
