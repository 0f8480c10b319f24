"""A cycle's report: PNG plots from its training folds and equity.csv, the CLI page and the API page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent_pipeline.cli import cli
from agent_pipeline.config import reset_settings
from agent_pipeline.insight.report import PLOT_NAMES, write_plots
from agent_pipeline.store.operations import OperationsStore, get_store
from tests.cycles import cycle_with_artifacts

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OperationsStore]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    store = get_store(sqlite_url)
    store.upgrade()
    yield store


@pytest.mark.slow
def test_write_plots_draws_every_plot_its_data_allows(store: OperationsStore, tmp_path: Path) -> None:
    full = cycle_with_artifacts(store, tmp_path / "bt")
    plots = write_plots(store, full, tmp_path / "artifacts")
    assert [p.name for p in plots] == list(PLOT_NAMES[:6])  # all but paths.png: it is no candidate with paths
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5000 for p in plots)
    assert store.get(full).metadata["report_dir"] == plots[0].parent.resolve().as_uri()
    # A cycle stopped by the training gate still shows its training: curves, folds, and the walk-forward layout
    gated = cycle_with_artifacts(store, tmp_path / "gated", backtest=False)
    assert [p.name for p in write_plots(store, gated, tmp_path / "artifacts")] == list(PLOT_NAMES[:3])
    # Trained without folds (an older cycle): only the final model's curves
    early = cycle_with_artifacts(store, tmp_path / "none", folds=False, backtest=False)
    assert [p.name for p in write_plots(store, early, tmp_path / "artifacts")] == ["training_curves.png"]


@pytest.mark.slow
def test_cli_report_prints_the_paths_and_writes_one_self_contained_page(store: OperationsStore, tmp_path: Path) -> None:
    cycle_id = cycle_with_artifacts(store, tmp_path / "bt")
    page = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["agent", "report", cycle_id, "--html", str(page)], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Plot: ") == 6 and "equity.png" in result.stdout
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == 6 and "Research cycle " + cycle_id in text
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from elsewhere
    unknown = CliRunner().invoke(cli, ["agent", "report", "op_agent_research_nope"], prog_name="ktrdr")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("Error: operation not found")


def test_api_serves_the_report_page_and_404s_what_is_not_a_cycle(store: OperationsStore, tmp_path: Path) -> None:
    from agent_pipeline.api.app import app
    from agent_pipeline.insight.report import REPORT_DIR_KEY, write_plots

    cycle_id = cycle_with_artifacts(store, tmp_path / "bt")
    training_id = store.get(cycle_id).metadata["training_op_id"]
    with TestClient(app) as client:
        # A GET only reads: a cycle whose plots were never drawn gets its page without them, and none are drawn
        bare = client.get(f"/api/v1/agent/cycles/{cycle_id}/report")
        assert bare.status_code == 200 and "data:image/png;base64," not in bare.text
        assert REPORT_DIR_KEY not in store.get(cycle_id).metadata
        write_plots(store, cycle_id)  # what the cycle's end does (publish)
        page = client.get(f"/api/v1/agent/cycles/{cycle_id}/report")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.text.count("data:image/png;base64,") == 6
        assert client.get("/api/v1/agent/cycles/op_nope/report").status_code == 404
        not_a_cycle = client.get(f"/api/v1/agent/cycles/{training_id}/report")
        assert not_a_cycle.status_code == 404 and "not a cycle" in not_a_cycle.json()["error"]


def test_api_import_loads_no_matplotlib_or_torch() -> None:
    modules = "('matplotlib', 'torch')"
    code = f"import sys, agent_pipeline.api.app; print('LOADED', [m for m in {modules} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in done.stdout, done.stdout + done.stderr


def test_the_report_page_tells_a_two_class_bypassed_cycle_as_it_ran(store: OperationsStore, tmp_path: Path) -> None:
    from agent_pipeline.api.app import app

    # Given a two-class cycle over 2 folds, run with --bypass-gates, whose backtest gate would have stopped it
    cycle_id = cycle_with_artifacts(store, tmp_path / "bt", backtest=False)
    training = {"accuracy": 0.493, "baseline_accuracy": 0.563, "balanced_accuracy": 0.489, "log_loss": 0.829}
    training |= {"prior_log_loss": 0.692, "n_classes": 2, "chance": 0.5, "skill_pvalue": 0.41}
    store.merge_metadata(
        cycle_id,
        {
            "training_result": training,
            "evaluation": {"folds": 2, "lockbox_fraction": 0.2},
            "training_gate": {"passed": True, "reason": "passed", "bypassed": False},
            "backtest_gate": {"passed": False, "reason": "win_rate_too_low (0% < 45%)", "bypassed": True},
        },
    )
    # When its report page is read
    with TestClient(app) as client:
        page = client.get(f"/api/v1/agent/cycles/{cycle_id}/report").text
    # Then it tells the folds, the classes and chance for them, and the gate as it was
    assert "over 2 walk-forward folds" in page and "(chance 50.0% for 2 classes, p = 0.41)" in page
    assert "33.3%" not in page
    assert "<th>Backtest gate</th><td><pre>bypassed: win_rate_too_low (0% &lt; 45%)</pre>" in page
    assert "no (gates bypassed: the backtest gate would have stopped it)" in page
