"""`ktrdr agent calibrate` end to end on a tiny budget, and the API serving its last run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_pipeline.engine.universe import get_universe
from tests.e2e.shell import clean_env, ktrdr

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_calibrate_runs_the_loop_on_a_planted_edge_and_on_noise_and_the_api_serves_the_power_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = clean_env(KTRDR_TRAINING_EPOCHS="2", KTRDR_WALK_FORWARD_FOLDS="2")
    # Given a tiny plan: two cycles on a reversal edge and two on noise, with the default gates
    args = ("--kinds", "reversal,noise", "--strengths", "1.5", "--cycles", "2", "--bars", "1500", "--json")
    done = ktrdr("agent", "calibrate", "--home", str(home), *args, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)["data"]
    # Then every series ran its whole budget on a neutral symbol of its own, and the power table has a row per kind
    assert [(s["kind"], s["cycles_run"]) for s in record["series"]] == [("reversal", 2), ("noise", 2)]
    assert all(re.fullmatch(r"CAL_[0-9A-F]{8}", s["symbol"]) for s in record["series"])
    assert len({s["symbol"] for s in record["series"]}) == 2
    assert {row["kind"] for row in record["power"]} == {"reversal", "noise"}
    # And each series says what stood at the end and what was withdrawn, in cycle numbers of its budget
    for series in record["series"]:
        assert set(series["discoveries"]) | set(series["withdrawn_flags"]) <= {1, 2}
        assert series["first_lasting_discovery"] == (series["discoveries"] or [None])[0]
        assert series["discovered"] is (series["first_lasting_discovery"] is not None)
    assert record["withdrawn_flags"] == sum(len(s["withdrawn_flags"]) for s in record["series"])
    reversal = next(s for s in record["series"] if s["kind"] == "reversal")
    assert reversal["rule_sharpe"] > 0.5  # the planted rule's own research Sharpe is recorded beside the loop's
    assert record["false_discovery_rate"] in (0.0, 1.0)
    calibration = home / "artifacts" / "calibration"
    assert (calibration / "power_curve.png").read_bytes()[:4] == b"\x89PNG"
    # And the API serves that run
    monkeypatch.setenv("KTRDR_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home / 'ktrdr.db'}")
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    reset_settings()
    with TestClient(app) as client:
        answer = client.get("/api/v1/agent/calibration")
    assert answer.status_code == 200
    assert answer.json()["data"]["power"] == record["power"]


def test_the_api_says_404_before_any_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ktrdr.db'}")
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    reset_settings()
    with TestClient(app) as client:
        answer = client.get("/api/v1/agent/calibration")
    assert answer.status_code == 404
    assert answer.json() == {"success": False, "error": "no calibration run yet: run `ktrdr agent calibrate`"}


@pytest.mark.parametrize(
    ("args", "problem"),
    [(("--kinds", "trend,sideways"), "sideways"), (("--strengths", "9"), "[0, 4]"), (("--cycles", "0"), "--cycles")],
)
def test_calibrate_refuses_a_bad_plan_in_one_line(tmp_path: Path, args: tuple[str, ...], problem: str) -> None:
    done = ktrdr("agent", "calibrate", "--home", str(tmp_path / "home"), *args, env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()  # nothing written for a refused plan


def test_calibrate_plants_a_universe_per_series_and_runs_universe_cycles(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(KTRDR_TRAINING_EPOCHS="2", KTRDR_WALK_FORWARD_FOLDS="2")
    # Given a plan of one cycle on a planted universe of three correlated symbols
    args = ("--kinds", "reversal", "--strengths", "1.0", "--cycles", "1", "--bars", "1500", "--universe-size", "3")
    done = ktrdr(
        "agent", "calibrate", "--home", str(home), *args, "--correlation", "0.3", "--json", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (series,) = json.loads(done.stdout)["data"]["series"]
    # Then the series is a universe under its neutral name, its cycle ran on it, and the rule Sharpe is its symbols'
    universe = get_universe(series["symbol"], home / "data")
    assert universe.symbols == tuple(f"{series['symbol']}.S0{i}" for i in range(3))
    assert series["cycles_run"] == 1 and series["outcomes"] != ["error"]
    assert set(series["discoveries"]) <= set(series["candidates"]) <= {1}  # both definitions, promoted among them
    assert 0.3 < series["rule_sharpe"] < 2.0
    # And a universe of another size or correlation is another series, with a name of its own
    other = ktrdr("agent", "calibrate", "--home", str(home), *args, "--json", env=env, cwd=tmp_path)
    assert json.loads(other.stdout)["data"]["series"][0]["symbol"] != series["symbol"]
