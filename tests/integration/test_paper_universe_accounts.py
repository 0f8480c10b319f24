"""Universe paper accounts (issue 27 after issue 24): a discovery on a universe is paper-traded as its strategy's
`portfolio.mode` says, over the dates every symbol has, each booked once.

One pooled model is trained for the module on a small planted universe (4 symbols x 800 daily bars, two folds) and
backtested in each mode; each test runs on a fresh SQLite file and on a fresh Postgres database (the `store`
fixture), on its own copy of the data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from agent_pipeline.engine import research
from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.synth_universe import UniverseRecipe, synth_universe
from agent_pipeline.errors import PaperRefusedError
from agent_pipeline.insight.paper import account_view
from agent_pipeline.pipeline.paper import open_account, step_account, step_accounts
from agent_pipeline.store.operations import OperationsStore, OperationType
from agent_pipeline.store.paper import PaperEquityRow, get_account
from agent_pipeline.store.paper_ledger import equity_curve, fills, positions
from tests.forward import data_copy, forward_csv
from tests.universes import pooled_strategy

UNIVERSE, SYMBOLS = "PUNI", [f"PUNI.S{i:02d}" for i in range(4)]
MODES = {"timing": {}, "rank": {"portfolio": {"mode": "rank", "fraction": 0.25}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The planted universe's data folder, and per mode the metadata of a cycle trained and backtested on it."""
    work = tmp_path_factory.mktemp("paper_universe")
    folder = work / "data"
    synth_universe(UNIVERSE, UniverseRecipe("reversal", 3.0, 5, len(SYMBOLS), bars=800), data_dir=folder)
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=2)
    strategy = write_strategy(work, "timing")
    summary = research.train_walk_forward(strategy, model_dir=work / "models", evaluation=evaluation, data_dir=folder)
    metas = {}
    for mode in MODES:
        path = write_strategy(work, mode)
        out = work / f"backtest_{mode}"
        backtest = research.backtest_walk_forward(
            path, model_dir=Path(summary["model_path"]).parent, evaluation=evaluation, out_dir=out, data_dir=folder
        )
        figures = {key: backtest[key] for key in ("sharpe_ratio", "trials", "sharpe_variance", "n_bars")}
        metas[mode] = {
            "symbol": UNIVERSE, "timeframe": "1d", "strategy_name": path.stem, "strategy_path": str(path),
            "model_path": summary["model_path"], "backtest_dir": str(out), "backtest_result": figures,
        }  # fmt: skip
    return folder, metas


def write_strategy(folder: Path, mode: str) -> Path:
    path = folder / f"pooled_{mode}.yaml"
    path.write_text(yaml.safe_dump(pooled_strategy(UNIVERSE, training={"epochs": 3, "batch_size": 256}, **MODES[mode])))
    return path


@pytest.fixture
def data_dir(trained: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's copy of the universe's data folder, the one the settings name."""
    return data_copy(trained[0], tmp_path, monkeypatch)


def discovery(store: OperationsStore, meta: dict[str, Any]) -> str:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    store.start(cycle.operation_id)
    store.complete(cycle.operation_id, result_summary={"discovery": True})
    return str(cycle.operation_id)


def append(data_dir: Path, tmp_path: Path, bars: int, symbols: list[str] = SYMBOLS) -> None:
    for symbol in symbols:
        csv = forward_csv(data_dir, symbol, bars, tmp_path / f"{symbol}_{bars}.csv", seed=bars)
        append_bars(FileBarSource(csv), symbol=symbol, timeframe="1d", data_dir=data_dir)


def booked_rows(store: OperationsStore, account_id: str) -> int:
    with store._session() as session:
        query = select(func.count()).select_from(PaperEquityRow).where(PaperEquityRow.account_id == account_id)
        return int(session.scalar(query) or 0)


def test_a_universe_account_trades_its_mode_and_books_each_common_date_once(
    store: OperationsStore, trained: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    # Given a timing and a rank discovery on the universe, an account each
    accounts = {mode: open_account(store, discovery(store, meta)) for mode, meta in trained[1].items()}
    timing, rank = accounts["timing"], accounts["rank"]
    # Then each account says its universe, its mode and its symbols, and starts flat in each symbol
    assert (timing.universe, timing.portfolio_mode, timing.symbol) == (UNIVERSE, "timing", UNIVERSE)
    assert (rank.universe, rank.portfolio_mode, list(rank.symbols)) == (UNIVERSE, "rank", SYMBOLS)
    assert rank.to_dict()["universe"] == UNIVERSE and rank.to_dict()["portfolio_mode"] == "rank"
    assert sorted(positions(store, rank.id)) == SYMBOLS
    # When 30 forward bars reach three symbols only, and a step runs: no date is common yet
    append(data_dir, tmp_path, 30, SYMBOLS[:3])
    assert {s.booked for s in step_accounts(store)} == {0}
    # And once the fourth has them too, two steps run
    append(data_dir, tmp_path, 30, SYMBOLS[3:])
    assert {s.booked for s in step_accounts(store)} == {30}
    assert {s.booked for s in step_accounts(store)} == {0}
    # Then each books the 30 dates once; the modes trade them differently
    after = {mode: get_account(store, account.id) for mode, account in accounts.items()}
    assert all(a.bars == 30 == booked_rows(store, a.id) and a.state.value == "open" for a in after.values())
    curves = {mode: [p.equity for p in equity_curve(store, a.id)] for mode, a in after.items()}
    assert curves["timing"] != curves["rank"] and after["timing"].equity != after["rank"].equity
    assert all(abs(p.position) < 1e-9 for p in equity_curve(store, rank.id))  # rank: dollar-neutral
    assert {f.symbol for f in fills(store, timing.id)} <= set(SYMBOLS) and fills(store, rank.id)
    assert [(f.at, f.symbol) for f in fills(store, timing.id)] != [(f.at, f.symbol) for f in fills(store, rank.id)]
    # And its status says what it trades, as `ktrdr paper status` shows it
    view = account_view(store, rank.id)
    assert (view["state"], view["bars"], view["series"]) == ("open", 30, f"universe {UNIVERSE} 1d (rank, 4 symbols)")
    assert sorted(p["symbol"] for p in view["positions"]) == SYMBOLS


def test_a_redelivered_universe_step_books_no_date_twice(
    store: OperationsStore, trained: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    # Given a rank account and 20 forward bars on every symbol
    account = open_account(store, discovery(store, trained[1]["rank"]))
    append(data_dir, tmp_path, 20)
    # When the step runs, and the same step is delivered again with the account as it read it first
    first = step_account(store, account, data_dir)
    again = step_account(store, account, data_dir)
    # Then the second books nothing, and every date is in the ledger once
    assert (first.booked, again.booked) == (20, 0)
    assert get_account(store, account.id).bars == 20 == booked_rows(store, account.id)
    # And 10 more bars later, the next step books those 10 only, its bar numbers and dates continuing the first's
    append(data_dir, tmp_path, 10)
    assert step_account(store, get_account(store, account.id), data_dir).booked == 10
    curve = equity_curve(store, account.id)
    assert [p.bar for p in curve] == list(range(30)) and len({p.at for p in curve}) == 30


def test_a_universe_whose_symbols_end_on_different_dates_is_refused_with_one_line(
    store: OperationsStore, trained: tuple[Path, dict], data_dir: Path, tmp_path: Path
) -> None:
    cycle = discovery(store, trained[1]["timing"])
    append(data_dir, tmp_path, 5, SYMBOLS[1:2])
    with pytest.raises(
        PaperRefusedError,
        match=rf"^cycle {cycle}: the symbols of the universe {UNIVERSE} end on "
        r"different dates \(PUNI.S00 at .*, PUNI.S01 at .*\): append bars",
    ):
        open_account(store, cycle)  # fmt: skip
