"""`ktrdr operations|db|data` as a user drives them: click's CliRunner and the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_pipeline.config import reset_settings
from agent_pipeline.store.operations import OperationsStore, OperationStatus, OperationType
from tests.e2e.shell import invoke

pytestmark = pytest.mark.e2e

KTRDR = Path(sys.executable).parent / "ktrdr"
UNREACHABLE_URL = "postgresql+psycopg://postgres:secretpw@127.0.0.1:1/x"
TABLE_HEADERS = ("ID", "Type", "Status", "Progress", "Step", "Duration", "Error")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[OperationsStore]:
    store = OperationsStore(db_url)
    store.upgrade()
    yield store
    store.engine.dispose()


def ktrdr(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    assert KTRDR.exists(), f"{KTRDR} missing: run `make venv` (pip install -e .)"
    return subprocess.run(
        [str(KTRDR), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(stderr: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ") and expected in lines[0]
    assert "Traceback" not in stderr


# -- operations list ----------------------------------------------------------------------------------


def test_list_on_empty_database_prints_the_table_header(db_url: str) -> None:
    result = invoke("operations", "list")
    assert result.exit_code == 0, result.output
    for header in TABLE_HEADERS:
        assert header in result.stdout


def test_list_on_empty_database_prints_the_header_from_the_console_script(db_url: str, tmp_path: Path) -> None:
    done = ktrdr("operations", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for header in TABLE_HEADERS:
        assert header in done.stdout
    assert done.stderr == ""


def test_list_on_a_fresh_machine_creates_the_default_sqlite_database(tmp_path: Path) -> None:
    # No DATABASE_URL: the default SQLite file under KTRDR_HOME (a folder that does not exist yet)
    home = tmp_path / "fresh_home"
    done = ktrdr("operations", "list", cwd=tmp_path, KTRDR_HOME=str(home))
    assert done.returncode == 0, done.stderr
    assert (home / "ktrdr.db").exists()


def test_list_shows_rows_and_filters_by_type_and_status(store: OperationsStore) -> None:
    training = store.create(operation_type=OperationType.TRAINING).operation_id
    store.start(training)
    store.update_progress(training, percentage=37.5, current_step="epoch 3/8")
    other = store.create(operation_type=OperationType.AGENT_DESIGN).operation_id

    everything = invoke("operations", "list")
    only_running_training = invoke("operations", "list", "--type", "training", "--status", "running")

    assert training in everything.stdout and other in everything.stdout
    assert training in only_running_training.stdout and other not in only_running_training.stdout
    assert "38%" in only_running_training.stdout and "epoch 3/8" in only_running_training.stdout


def test_list_json_is_the_api_envelope_newest_first(store: OperationsStore) -> None:
    first = store.create(operation_type=OperationType.TRAINING).operation_id
    second = store.create(operation_type=OperationType.TRAINING).operation_id

    result = invoke("operations", "list", "--json", "--limit", "1")

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["success"] is True
    assert [row["operation_id"] for row in payload["data"]] in ([second], [first])
    assert payload["data"][0]["status"] == "pending"


@pytest.mark.parametrize("option", ["--type", "--status"])
def test_list_with_unknown_choice_is_a_usage_error(option: str, tmp_path: Path) -> None:
    result = invoke("operations", "list", option, "bogus")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr


def test_bad_type_from_the_console_script_exits_2(tmp_path: Path) -> None:
    done = ktrdr("operations", "list", "--type", "bogus", cwd=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '--type'" in done.stderr


# -- operations status ------------------------------------------------------------------------------------


def test_status_of_unknown_id_is_one_line_and_exit_1(db_url: str) -> None:
    result = invoke("operations", "status", "op_nope")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "operation not found: op_nope")


def test_status_of_unknown_id_from_the_console_script(db_url: str, tmp_path: Path) -> None:
    done = ktrdr("operations", "status", "op_nope", cwd=tmp_path)
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "operation not found: op_nope")
    assert done.stdout == ""


def test_status_shows_fields_metadata_error_and_children(store: OperationsStore) -> None:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"strategy_name": "momo_v1"})
    store.start(cycle.operation_id)
    child = store.create(operation_type=OperationType.TRAINING, parent_operation_id=cycle.operation_id)
    store.fail(cycle.operation_id, error_message="Training gate failed: accuracy_below_threshold (35% < 45%)")

    result = invoke("operations", "status", cycle.operation_id)

    assert result.exit_code == 0, result.output
    assert "Training gate failed: accuracy_below_threshold (35% < 45%)" in result.stdout
    assert '"strategy_name": "momo_v1"' in result.stdout
    assert child.operation_id in result.stdout
    assert "failed" in result.stdout


def test_status_json_is_the_api_envelope(store: OperationsStore) -> None:
    operation = store.create(operation_type=OperationType.BACKTESTING, metadata={"k": [1, 2]})

    result = invoke("operations", "status", operation.operation_id, "--json")

    payload = json.loads(result.stdout)
    assert payload["success"] is True
    assert payload["data"]["operation_id"] == operation.operation_id
    assert payload["data"]["metadata"] == {"k": [1, 2]}


# -- operations cancel -------------------------------------------------------------------------------------


def test_cancel_cascades_and_a_second_cancel_is_one_line_exit_1(store: OperationsStore, tmp_path: Path) -> None:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH).operation_id
    store.start(cycle)
    child = store.create(operation_type=OperationType.TRAINING, parent_operation_id=cycle).operation_id
    store.start(child)

    first = ktrdr("operations", "cancel", cycle, "--reason", "changed my mind", cwd=tmp_path)
    second = ktrdr("operations", "cancel", cycle, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert f"Cancelled {cycle}" in first.stdout and "1 active child" in first.stdout
    assert store.get(cycle).status == OperationStatus.CANCELLED
    assert store.get(cycle).error_message == "changed my mind"
    assert store.get(child).status == OperationStatus.CANCELLED
    assert second.returncode == 1
    assert_one_line_error(second.stderr, "already cancelled")


def test_cancel_of_unknown_id_is_one_line_exit_1(db_url: str) -> None:
    result = invoke("operations", "cancel", "op_nope")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "operation not found: op_nope")


# -- failures at the edges -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["operations", "list"], ["operations", "status", "op_x"], ["db", "upgrade"]])
def test_unreachable_database_is_one_line_without_the_password(command: list[str], tmp_path: Path) -> None:
    done = ktrdr(*command, cwd=tmp_path, DATABASE_URL=UNREACHABLE_URL)
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:1/x")
    assert "secretpw" not in done.stdout + done.stderr


def test_bad_setting_is_one_line_exit_1(tmp_path: Path) -> None:
    done = ktrdr("operations", "list", cwd=tmp_path, KTRDR_DESIGNER="nonsense_designer")
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "invalid setting designer")
    assert "nonsense_designer" not in done.stderr


def test_unexpected_exception_is_one_line_with_a_hint(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(OperationsStore, "list", explode)
    result = invoke("operations", "list")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "unexpected RuntimeError: disk on fire")
    assert "--verbose" in result.stderr


# -- db and data -------------------------------------------------------------------------------------------


def test_db_upgrade_masks_the_password(postgres_url: str, tmp_path: Path) -> None:
    # Local Postgres trusts 127.0.0.1, so any password works, and none may be printed.
    with_password = postgres_url.replace("postgres@", "postgres:hunter2@")
    done = ktrdr("db", "upgrade", cwd=tmp_path, DATABASE_URL=with_password)
    again = ktrdr("db", "upgrade", cwd=tmp_path, DATABASE_URL=with_password)
    assert done.returncode == 0 and again.returncode == 0, done.stderr + again.stderr
    assert "postgres:***@127.0.0.1" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr


def test_data_list_json_names_the_bundled_datasets() -> None:
    result = invoke("data", "list", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["success"] is True
    assert all({"symbol", "timeframe", "bars", "source"} <= set(row) for row in payload["data"])


def test_data_import_of_garbage_is_one_line_exit_1(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this is not,an ohlcv file\n1,2\n")
    result = invoke("data", "import", str(garbage), "--symbol", "ZZZ", "--timeframe", "1h")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1


HEAVY_MODULES = ("torch", "matplotlib", "celery", "anthropic", "pandas", "optuna", "arch")


@pytest.mark.parametrize("argv", [["--help"], ["agent", "--help"], ["operations", "--help"]])
def test_help_loads_no_heavy_modules(argv: list[str]) -> None:
    # `ktrdr --help` must stay instant: no torch, matplotlib, Celery tasks or LLM SDK while it runs.
    code = (
        "import sys\nfrom agent_pipeline.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in done.stdout, done.stdout + done.stderr


def test_help_lists_the_command_groups(tmp_path: Path) -> None:
    done = ktrdr("--help", cwd=tmp_path)
    assert done.returncode == 0
    for group in ("operations", "db", "data"):
        assert group in done.stdout
