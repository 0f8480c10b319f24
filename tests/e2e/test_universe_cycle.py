"""A user's universe strategy through a whole research cycle: `ktrdr agent run --strategy FILE` (issue 24).

Three planted close-only series are imported as one universe, and the embedded run trains one model pooled across
them, backtests the walk-forward timing portfolio, trades the lockbox, applies the gates, assesses and reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from agent_pipeline.cli import cli
from agent_pipeline.config import reset_settings
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.store.operations import OperationsStore, OperationType
from tests.e2e.shell import clean_env, ktrdr, ktrdr_env
from tests.stack import OPEN_GATES, QUICK, Stack, finished, start_stack, wait_until
from tests.universes import pooled_strategy

pytestmark = pytest.mark.e2e

SYMBOLS = 3
BARS = 1000
STRATEGY = pooled_strategy(
    "DEMO",
    name="demo_pooled",
    description="Short RSI and rate of change on a planted universe.",
    hypothesis="A one-day move reverts on every symbol of the universe.",
)


def wide_closes(path: Path) -> Path:
    """A wide CSV of planted one-day-reversal closes: a date column, then one column per symbol."""
    frames = [synth_bars("reversal", 3.0, seed, BARS)[0] for seed in range(1, SYMBOLS + 1)]
    closes = pd.DataFrame({f"S{i:02d}": frame["close"] for i, frame in enumerate(frames)})
    closes.index = closes.index.strftime("%Y-%m-%d")
    closes.to_csv(path, index_label="date")
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"universe": "NOPE"}, "universe/timeframe: no data for NOPE 1d (available: DEMO 1d, SP500_20 1d)"),
        (
            {"indicators": [{"type": "rsi", "period": 2}, {"type": "atr", "period": 14}]},
            "indicators[1]: atr needs high and low, and DEMO 1d is close-only",
        ),
    ],
    ids=["unknown-universe", "close-only"],
)
def test_a_universe_strategy_is_checked_against_the_universes(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    # Given the universe imported, and the strategy with an unknown universe or an indicator that needs highs
    reset_settings()
    imported = CliRunner().invoke(
        cli, ["data", "import", str(wide_closes(tmp_path / "closes.csv")), "--universe", "demo", "--timeframe", "1d"]
    )
    assert imported.exit_code == 0, imported.output
    document = {**STRATEGY, **change}
    if "indicators" in change:
        document["fuzzy_sets"] = {"rsi_2": STRATEGY["fuzzy_sets"]["rsi_2"]}  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document, sort_keys=False))
    # When it is validated, and given to a run
    validated = CliRunner().invoke(cli, ["strategy", "validate", str(bad)])
    run = CliRunner().invoke(cli, ["agent", "run", "--strategy", str(bad)])
    # Then both name the problem, and nothing ran
    assert validated.exit_code == 1 and validated.stdout == f"{bad}: {problem}\n"
    assert run.exit_code == 1 and problem in run.stderr


@pytest.mark.slow
def test_agent_run_runs_a_universe_strategy_through_the_whole_cycle(tmp_path: Path) -> None:
    # Given a private home with a three-symbol universe imported and a user's strategy on it
    home = tmp_path / "home"
    env = clean_env(KTRDR_HOME=str(home), KTRDR_TRAINING_EPOCHS="2", KTRDR_WALK_FORWARD_FOLDS="2")
    imported = ktrdr(
        "data", "import", str(wide_closes(tmp_path / "closes.csv")), "--universe", "demo", "--timeframe", "1d",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    strategy = tmp_path / "my_universe.yaml"
    strategy.write_text(yaml.safe_dump(STRATEGY, sort_keys=False))
    # When the embedded run is given the file
    done = ktrdr("agent", "run", "--strategy", str(strategy), "--bypass-gates", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "study not told" not in done.stderr  # the optimiser is told quietly
    # Then the cycle completed under the universe's name, trained pooled and backtested the timing portfolio
    store = OperationsStore(f"sqlite:///{home / 'ktrdr.db'}")
    (cycle,) = store.list(operation_type=OperationType.AGENT_RESEARCH)
    assert cycle.status == "completed" and cycle.metadata["symbol"] == "DEMO"
    training = store.get(cycle.metadata["training_op_id"]).result_summary
    assert training["walk_forward"]["symbols"] == ["DEMO.S00", "DEMO.S01", "DEMO.S02"]
    assert training["n_classes"] == 2
    backtest = store.get(cycle.metadata["backtest_op_id"]).result_summary
    assert backtest["portfolio_mode"] == "timing"
    store.engine.dispose()
    # And the lockbox was traded and every plot drawn, the walk-forward layout on the universe's index included
    assert "Lockbox" in done.stdout and "demo_pooled" in done.stdout
    assert f"Report: 6 plot(s) in {home / 'artifacts' / 'reports' / cycle.operation_id}" in done.stdout
    # And history lists the cycle under the universe's name
    history = ktrdr("agent", "history", "--json", "--symbol", "DEMO", env=env, cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)["data"]
    assert [(row["operation_id"], row["symbol"]) for row in rows] == [(cycle.operation_id, "DEMO")]


@pytest.mark.slow
@pytest.mark.integration
def test_a_universe_cycle_runs_on_the_real_stack_from_the_trigger_api_and_the_cli(
    tmp_path: Path, make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the real stack (Postgres, Redis, a research and a gpu worker) and a universe imported into its data
    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK, KTRDR_WALK_FORWARD_FOLDS="2")
    closes = wide_closes(tmp_path / "closes.csv")
    env = ktrdr_env(stack)
    imported = ktrdr("data", "import", str(closes), "--universe", "demo", "--timeframe", "1d", env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    from fastapi.testclient import TestClient

    from agent_pipeline.api.app import app

    with TestClient(app) as client:
        # When the trigger API is asked for an unknown universe, and then for the universe ranked
        unknown = client.post("/api/v1/agent/trigger", json={"universe": "nope"})
        accepted = client.post("/api/v1/agent/trigger", json={"universe": "demo", "portfolio": "rank"})
    # Then the unknown one is refused with its reason and no row, and the other runs to its end on the workers
    assert unknown.status_code == 400 and "no universe 'nope'" in unknown.text
    assert accepted.status_code == 202, accepted.text
    ranked = wait_until(finished(accepted.json()["operation_id"]), timeout=240)
    assert ranked.status == "completed", ranked.error_message
    # When the CLI triggers a timing cycle on it and follows it
    followed = ktrdr("agent", "trigger", "--universe", "DEMO", "--follow", env=env, cwd=tmp_path)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    # Then both cycles are the universe's: one study, one trial count, pooled training, each its own portfolio
    store = OperationsStore(stack.env["DATABASE_URL"])
    cycles = store.list(operation_type=OperationType.AGENT_RESEARCH)
    assert len(cycles) == 2 and {cycle.record.symbol for cycle in cycles} == {"DEMO"}
    modes = {}
    for cycle in cycles:
        backtest = store.get(str(cycle.record.backtest_op_id)).result_summary
        modes[backtest["portfolio_mode"]] = backtest
        assert store.get(str(cycle.record.training_op_id)).result_summary["walk_forward"]["symbols"] == [
            "DEMO.S00", "DEMO.S01", "DEMO.S02"
        ]  # fmt: skip
    assert set(modes) == {"rank", "timing"} and isinstance(modes["rank"]["rank_ic"], float)
    assert sorted(cycle.record.study_trial for cycle in cycles) == [0, 1]
    assert modes["timing"]["trials"] == 2 or modes["rank"]["trials"] == 2
    store.engine.dispose()


@pytest.mark.slow
def test_the_bundled_sp500_universe_runs_a_ranked_cycle_offline(tmp_path: Path) -> None:
    # Given a fresh home: nothing imported, the bundled SP500_20 (skfolio's 20 stocks, closes only) is there
    env = clean_env(KTRDR_HOME=str(tmp_path / "home"), KTRDR_TRAINING_EPOCHS="2", KTRDR_WALK_FORWARD_FOLDS="2")
    # When `make demo UNIVERSE=SP500_20`'s command runs, ranked
    done = ktrdr(
        "agent", "run", "--universe", "SP500_20", "--portfolio", "rank", "--bypass-gates", env=env, cwd=tmp_path
    )
    # Then one model traded the 20 stocks long-short on its daily ranks, with the rank IC, and read the lockbox
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rank: long the top, short the bottom by predicted up-probability; daily rank IC" in done.stdout
    assert "Lockbox" in done.stdout and "vs buy-and-hold" in done.stdout
    history = ktrdr("agent", "history", "--json", "--symbol", "sp500_20", env=env, cwd=tmp_path)
    (row,) = json.loads(history.stdout)["data"]
    assert row["symbol"] == "SP500_20" and row["timeframe"] == "1d"
    assert row["portfolio_mode"] == "rank" and isinstance(row["rank_ic"], float)
    # And evidence lists it as one series, the universe, with its portfolio's figures on the trial
    evidence = ktrdr("agent", "evidence", "--json", "--symbol", "SP500_20", env=env, cwd=tmp_path)
    (series,) = json.loads(evidence.stdout)["series"]
    assert (series["symbol"], series["trials"]) == ("SP500_20", 1)
    assert series["best"][0]["portfolio_mode"] == "rank" and series["best"][0]["rank_ic"] == row["rank_ic"]
