"""A user's own strategy: `ktrdr strategy validate`, `--strategy FILE` on trigger/run, `"strategy"` in the API body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_pipeline.config import reset_settings
from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.pipeline.user_strategy import MAX_STRATEGY_BYTES
from agent_pipeline.store.operations import OperationsStore, OperationType, get_store
from tests.e2e.shell import clean_env, invoke, ktrdr

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "eurusd_rsi_atr.yaml"
# The example with four mistakes, each in a different field.
BROKEN = (
    EXAMPLE.read_text()
    .replace("name: eurusd_rsi_atr", "name: ../../etc/passwd")
    .replace("{type: rsi, period: 14}", "{type: rsi, period: 1}")
    .replace("activation: relu", "activation: sigmoid")
    .replace("symbol: EURUSD", "symbol: GBPJPY")
)


def test_validate_accepts_the_example_and_prints_its_checksum() -> None:
    result = invoke("strategy", "validate", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(EXAMPLE.read_bytes()).hexdigest() in result.stdout


def test_validate_lists_every_problem_exactly_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = invoke("strategy", "validate", str(broken))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{broken}: name: '../../etc/passwd' must match ^[a-z0-9_-]{{1,64}}$",
        f"{broken}: indicators[0].period: must be >= 2",
        f"{broken}: model.activation: Input should be 'relu', 'tanh', 'gelu' or 'leaky_relu'",
        f"{broken}: symbol/timeframe: no data for GBPJPY 1h (available: EURUSD 1h, NASDAQ 1d, SP500 1d)",
    ]
    assert result.stderr == f"Error: {broken} is not a valid strategy (4 problems)\n"


def test_validate_json_and_bad_yaml_and_size_limit(tmp_path: Path) -> None:
    not_yaml = tmp_path / "not.yaml"
    not_yaml.write_text("name: x\nindicators: [unclosed\n")
    result = invoke("strategy", "validate", "--json", str(not_yaml))
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False and body["errors"][0].startswith("not valid YAML at line ")
    huge = tmp_path / "huge.yaml"
    huge.write_text("#" * (MAX_STRATEGY_BYTES + 1))
    result = invoke("strategy", "validate", str(huge))
    assert result.exit_code == 1
    assert f"larger than the {MAX_STRATEGY_BYTES} byte limit" in result.stdout


def test_trigger_with_a_bad_strategy_exits_1_in_one_line_and_creates_no_cycle(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = invoke("agent", "trigger", "--strategy", str(broken))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: name: '../../etc/passwd' must match")
    assert len(result.stderr.strip().splitlines()) == 1 and "GBPJPY" in result.stderr
    assert get_store(sqlite_url).count() == 0


@pytest.fixture
def client(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from agent_pipeline.api.app import app

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    with TestClient(app) as test_client:
        yield test_client


def test_api_trigger_refuses_a_bad_or_oversized_strategy_with_422(client: TestClient, sqlite_url: str) -> None:
    bad = client.post("/api/v1/agent/trigger", json={"strategy": BROKEN})
    assert bad.status_code == 422
    assert "indicators[0].period: must be >= 2" in bad.json()["error"]
    huge = client.post("/api/v1/agent/trigger", json={"strategy": "#" * (MAX_STRATEGY_BYTES + 1)})
    assert huge.status_code == 422
    assert huge.json()["error"].startswith("invalid strategy: ")
    both = client.post("/api/v1/agent/trigger", json={"strategy": EXAMPLE.read_text(), "symbol": "SP500"})
    assert both.status_code == 400
    assert get_store(sqlite_url).count() == 0


@pytest.mark.slow
def test_agent_run_strategy_runs_the_file_as_given(tmp_path: Path) -> None:
    # Given the example strategy and no servers
    home = tmp_path / "home"
    env = clean_env(KTRDR_TRAINING_EPOCHS="2")
    # When the embedded run is given the file
    done = ktrdr(
        "agent", "run", "--strategy", str(EXAMPLE), "--bypass-gates", "--home", str(home), env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Then no designer ran: the design op records the user and the file's checksum, and the saved strategy is the file
    store = OperationsStore(f"sqlite:///{home / 'ktrdr.db'}")
    (cycle,) = store.list(operation_type=OperationType.AGENT_RESEARCH)
    design = store.get(cycle.metadata["design_op_id"]).result_summary
    assert design["designer"] == "user" and cycle.metadata["designer"] == "user"
    assert design["checksum"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert load_strategy(Path(cycle.metadata["strategy_path"])) == load_strategy(EXAMPLE)
    assert "eurusd_rsi_atr" in done.stdout and "designer: user" in done.stdout
    store.engine.dispose()
    # And the run says where its report is; history lists the cycle; the report page has the plots inline
    assert f"Report: 6 plot(s) in {home / 'artifacts' / 'reports' / cycle.operation_id}" in done.stdout
    later = {**env, "KTRDR_HOME": str(home)}
    history = ktrdr("agent", "history", "--json", env=later, cwd=tmp_path)
    assert [row["operation_id"] for row in json.loads(history.stdout)["data"]] == [cycle.operation_id]
    page = tmp_path / "r.html"
    report = ktrdr("agent", "report", cycle.operation_id, "--html", str(page), env=later, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert page.read_text().count("data:image/png;base64,") >= 3
