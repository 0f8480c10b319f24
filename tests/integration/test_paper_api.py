"""`/api/v1/paper`, the dashboard's paper pages and the metrics (issue 27), over a real trained model and forward bars
appended to its planted series; each bar booked once however often the step runs.

Each test runs on a fresh SQLite file and on a fresh Postgres database (the `store` fixture).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_pipeline.config import reset_settings
from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.pipeline.paper import step_accounts
from agent_pipeline.store.operations import OperationsStore, OperationType
from agent_pipeline.store.paper_ledger import equity_curve
from tests.forward import forward_csv, trained_cycle

SYMBOL = "PAPI"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A planted reversal of 1,500 daily bars in the data folder the settings name."""
    folder = tmp_path / "data"
    monkeypatch.setenv("KTRDR_DATA_DIR", str(folder))
    monkeypatch.setenv("KTRDR_HOME", str(tmp_path / "home"))
    reset_settings()
    write_synth("reversal", 3.0, 5, symbol=SYMBOL, timeframe="1d", data_dir=folder, bars=1500)
    return folder


def append(data_dir: Path, bars: int, change: str, tmp_path: Path) -> None:
    csv = forward_csv(data_dir, SYMBOL, bars, tmp_path / f"{change}.csv", change=change, seed=bars)
    append_bars(FileBarSource(csv), symbol=SYMBOL, timeframe="1d", data_dir=data_dir)


def not_a_discovery(store: OperationsStore, cycle_id: str) -> str:
    """A second completed cycle with the same model and backtest, judged no discovery."""
    twin = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=store.get(cycle_id).metadata)
    store.start(twin.operation_id)
    store.complete(twin.operation_id, result_summary={"discovery": False})
    return str(twin.operation_id)


def test_the_api_opens_reads_steps_and_stops_paper_accounts(
    store: OperationsStore, data_dir: Path, tmp_path: Path
) -> None:
    from agent_pipeline.api.app import app

    client = TestClient(app)
    # Given a discovery and a cycle that is none
    discovery = trained_cycle(store, data_dir, tmp_path, SYMBOL)
    other = not_a_discovery(store, discovery)
    # When accounts are asked for: the other is refused with one line unless forced, an unknown cycle is a 404
    refused = client.post("/api/v1/paper", json={"cycle_id": other})
    assert refused.status_code == 409 and refused.json() == {
        "success": False,
        "error": f"cycle {other} is not a discovery (not a candidate): paper trading starts from discoveries; "
        "--force opens it anyway",
    }
    assert client.post("/api/v1/paper", json={"cycle_id": "op_nope"}).status_code == 404
    assert client.post("/api/v1/paper", json={"cycle_id": discovery, "capital": -1}).status_code == 422
    forced = client.post("/api/v1/paper", json={"cycle_id": other, "force": True})
    opened = client.post("/api/v1/paper", json={"cycle_id": discovery, "capital": 5000})
    assert forced.status_code == opened.status_code == 201
    account = opened.json()["data"]
    assert (account["mode"], account["state"], account["bars"], account["equity"]) == ("paper", "open", 0, 5000.0)
    listed = client.get("/api/v1/paper").json()["data"]
    assert [a["id"] for a in listed] == [account["id"], forced.json()["data"]["id"]]
    # When 40 forward bars arrive and the step runs twice (a redelivery)
    append(data_dir, 40, "continue", tmp_path)
    assert sorted(s.booked for s in step_accounts(store)) == [40, 40]
    assert [s.booked for s in step_accounts(store)] == [0, 0]
    # Then the account booked each bar once, with its fills and the backtest's expected equity beside its own
    view = client.get(f"/api/v1/paper/{account['id']}").json()["data"]
    assert view["bars"] == 40 and view["last_bar"] == str(equity_curve(store, account["id"])[-1].at)
    assert len({point.at for point in equity_curve(store, account["id"])}) == 40
    assert view["fills"] and view["positions"][0]["symbol"] == SYMBOL and view["first_bar"] > view["start_after"]
    assert view["expected"]["bars"] == 40 and view["expected"]["low"] < view["expected"]["high"]
    # And a stopped account stays stopped; an unknown one is a 404
    stopped = client.post(f"/api/v1/paper/{account['id']}/stop").json()["data"]
    assert stopped["state"] == "stopped" and stopped["stop_reason"] == "user"
    assert client.post(f"/api/v1/paper/{account['id']}/stop").json()["data"] == stopped
    assert [a["id"] for a in client.get("/api/v1/paper", params={"state": "open"}).json()["data"]] == [
        forced.json()["data"]["id"]
    ]
    assert client.get("/api/v1/paper/paper_nope").status_code == 404


def test_a_turned_edge_raises_the_alarm_on_the_dashboard_and_in_the_metrics(
    store: OperationsStore, data_dir: Path, tmp_path: Path
) -> None:
    from agent_pipeline.api.app import app
    from agent_pipeline.pipeline.paper import open_account

    client = TestClient(app)
    # Given two paper accounts of a discovery, one that stops on decay
    cycle = trained_cycle(store, data_dir, tmp_path, SYMBOL)
    trading = open_account(store, cycle)
    stopping = open_account(store, cycle, stop_on_decay=True)
    # When the planted edge turns the other way for 300 forward bars and the step books them
    append(data_dir, 300, "reverse", tmp_path)
    step_accounts(store)
    # Then both raised the alarm: one trades on, flagged decayed; the other stopped
    first = client.get(f"/api/v1/paper/{trading.id}").json()["data"]
    assert first["state"] == "decayed" and first["bars"] == 300, first["decay"]
    assert first["decay"]["fired"] and first["decay"]["statistic"] >= first["decay"]["threshold"]
    second = client.get(f"/api/v1/paper/{stopping.id}").json()["data"]
    assert (second["state"], second["stop_reason"], second["decay"]["bar"]) == (
        "stopped",
        "decay",
        first["decay"]["bar"],
    )
    assert second["bars"] == 300  # the bars of the step that raised it are booked; none after
    # And the dashboard lists them and draws the account against the backtest with the alarm shown
    assert trading.id in client.get("/ui/paper").text
    page = client.get(f"/ui/paper/{trading.id}")
    assert (
        page.status_code == 200 and 'id="decay-alarm"' in page.text and f"fired at {first['decay']['bar']}" in page.text
    )
    chart = client.get(f"/ui/paper/{trading.id}/equity.svg")
    assert chart.headers["content-type"] == "image/svg+xml" and "<svg" in chart.text
    assert client.get("/ui/paper/paper_nope").status_code == 404
    # And the metrics carry the gauge per account and the alarms' counter
    metrics = client.get("/metrics").text
    assert re.search(rf'ktrdr_paper_decayed\{{account="{trading.id}"\}} 1\.0', metrics), metrics
    assert "ktrdr_paper_decay_alarms_total 2.0" in metrics
    assert 'ktrdr_paper_accounts{state="decayed"} 1.0' in metrics


def test_an_unfinished_cycle_is_refused_with_one_line_even_forced(store: OperationsStore, tmp_path: Path) -> None:
    from agent_pipeline.errors import PaperRefusedError
    from agent_pipeline.pipeline.paper import open_account

    # Given a cycle still running (a universe cycle gets an account: tests/integration/test_paper_universe_accounts.py)
    meta = {"model_path": str(tmp_path / "model.pt"), "backtest_dir": str(tmp_path)}
    running = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    store.start(running.operation_id)
    # Then it gets no account, with its reason, even forced
    with pytest.raises(PaperRefusedError, match=rf"^cycle {running.operation_id} is running: .*completed cycle$"):
        open_account(store, running.operation_id, force=True)
