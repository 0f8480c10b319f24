"""The optional MLflow extra: one run per finished cycle, against a local tracking store (SQLite + files)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from agent_pipeline.insight.report import publish
from agent_pipeline.store.operations import OperationsStore
from tests.e2e.test_report import cycle_with_artifacts, store  # noqa: F401 - the SQLite store fixture

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "eurusd_rsi_atr.yaml"
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None


def cycle_for_tracking(store: OperationsStore, tmp_path: Path) -> str:  # noqa: F811
    cycle_id = cycle_with_artifacts(store, tmp_path / "bt")
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    meta = {
        "strategy_path": str(EXAMPLE),
        "model_path": str(model),
        "designer": "user",
        "training_result": {"accuracy": 0.41, "balanced_accuracy": 0.38},
        "backtest_result": {
            "sharpe_ratio": 0.7,
            "folds": [{"fold": 1, "sharpe_ratio": 0.5}, {"fold": 2, "sharpe_ratio": 0.9}],
        },
    }
    store.merge_metadata(cycle_id, meta)
    return cycle_id


@pytest.mark.skipif(not HAS_MLFLOW, reason="the [mlflow] extra is not installed (pip install '.[mlflow]')")
def test_a_finished_cycle_becomes_one_mlflow_run(
    store: OperationsStore,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the local store keeps artifacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cycle_id = cycle_for_tracking(store, tmp_path)
    plots = publish(store, cycle_id)
    run_id = store.get(cycle_id).metadata["mlflow_run_id"]
    run = MlflowClient().get_run(run_id)
    assert run.data.params["model.dropout"] == "0.2" and run.data.params["symbol"] == "EURUSD"
    assert run.data.metrics["training.balanced_accuracy"] == 0.38 and run.data.metrics["backtest.sharpe_ratio"] == 0.7
    history = MlflowClient().get_metric_history(run_id, "fold.sharpe_ratio")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.9)]
    assert run.data.tags["ktrdr.cycle_id"] == cycle_id and run.data.tags["ktrdr.designer"] == "user"
    folders = {a.path: a for a in MlflowClient().list_artifacts(run_id)}
    assert {"strategy", "model", "plots"} <= set(folders)
    assert len(MlflowClient().list_artifacts(run_id, "plots")) == len(plots) == 6
    assert not any("lockbox" in key for key in run.data.metrics)


def test_without_a_tracking_uri_nothing_is_logged(store: OperationsStore, tmp_path: Path) -> None:  # noqa: F811
    cycle_id = cycle_for_tracking(store, tmp_path)
    assert len(publish(store, cycle_id)) == 6
    assert "mlflow_run_id" not in store.get(cycle_id).metadata


@pytest.mark.skipif(HAS_MLFLOW, reason="checks the message when the extra is missing")
def test_a_tracking_uri_without_the_extra_is_logged_and_the_plots_still_drawn(
    store: OperationsStore,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cycle_id = cycle_for_tracking(store, tmp_path)
    with caplog.at_level(logging.ERROR, logger="agent_pipeline.insight.report"):
        assert len(publish(store, cycle_id)) == 6
    assert "cycle report not published" in caplog.text and "mlflow" in caplog.text
