"""The README's promises: `ktrdr agent run` with no servers, the Python snippet, the bundled data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.shell import ROOT, clean_env, ktrdr
from tests.stack import OPEN_GATES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_agent_run_completes_a_cycle_in_process_without_servers(tmp_path: Path) -> None:
    # Given no Redis or Postgres settings at all (the broker URL would be refused if it were used)
    env = clean_env(KTRDR_TRAINING_EPOCHS="3", KTRDR_BROKER_URL="redis://127.0.0.1:1/0")
    # When the embedded default runs with gates that any model passes
    done = ktrdr("agent", "run", "--home", str(tmp_path / "home"), env={**env, **OPEN_GATES}, cwd=tmp_path)
    # Then the whole cycle completes and its report names every phase's outcome and artifact
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for label in ("Strategy", "Training", "Training gate", "Backtest", "Backtest gate", "Assessment", "Model"):
        assert re.search(rf"│ {label}\s", out), label
    assert "buy-and-hold" in out and "completed" in out
    assert (tmp_path / "home" / "ktrdr.db").is_file()
    assert list((tmp_path / "home" / "strategies").glob("*.yaml"))
    assert "Traceback" not in done.stderr


def test_agent_run_exits_3_when_a_gate_rejects_the_strategy(tmp_path: Path) -> None:
    env = clean_env(KTRDR_TRAINING_EPOCHS="2", TRAINING_GATE_MIN_ACCURACY="0.99")
    done = ktrdr("agent", "run", "--home", str(tmp_path / "home"), env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Training gate failed: accuracy_below_threshold" in done.stdout


def test_readme_python_snippet_trains_and_backtests_the_example(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- readme-snippet:start -->")[1].split("<!-- readme-snippet:end -->")[0]
    code = block.split("```python\n")[1].split("```")[0]
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"test accuracy \d+\.\d%", done.stdout)
    assert re.search(r"vs buy-and-hold -?\d+\.\d%, Sharpe -?\d+\.\d\d, \d+ trades", done.stdout)
    assert (tmp_path / ".ktrdr" / "backtests" / "example" / "equity.csv").is_file()


def test_data_list_shows_the_bundled_series_on_a_fresh_machine(tmp_path: Path) -> None:
    done = ktrdr("data", "list", env=clean_env(KTRDR_HOME=str(tmp_path / "fresh")), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for symbol, timeframe, bars in (("EURUSD", "1h", "6225"), ("SP500", "1d", "5031"), ("NASDAQ", "1d", "5031")):
        assert re.search(rf"{symbol}\s.*{timeframe}\s.*{bars}", done.stdout), symbol


def test_agent_run_cycles_learns_from_the_cycle_before(tmp_path: Path) -> None:
    # Given gates no model passes, so every cycle ends with a gate failure for the designer to read
    env = clean_env(KTRDR_TRAINING_EPOCHS="2", TRAINING_GATE_MIN_ACCURACY="0.99")
    done = ktrdr("agent", "run", "--cycles", "2", "--home", str(tmp_path / "home"), env=env, cwd=tmp_path)
    # Then both cycles ran, the summary lists them, and the second design differs from the first
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Research cycle 1/2" in done.stdout and "Research cycle 2/2" in done.stdout
    assert "Research cycles" in done.stdout
    strategies = sorted((tmp_path / "home" / "strategies").glob("*.yaml"))
    assert len(strategies) == 2
    first, second = (path.read_text() for path in strategies)
    assert first != second
