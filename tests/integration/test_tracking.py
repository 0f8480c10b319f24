"""The optional MLflow extra, seen from a cycle without it: nothing logged, and a tracking URI only logs why.

The CI environment does not install the `[mlflow]` extra (it adds about 365 MB: pyarrow, scikit-learn, mlflow), so
the tracking run itself has no test here; what every install meets is tested.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from agent_pipeline.insight.report import publish
from agent_pipeline.store.operations import OperationsStore
from tests.cycles import cycle_with_artifacts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "eurusd_rsi_atr.yaml"
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None


def cycle_for_tracking(store: OperationsStore, tmp_path: Path) -> str:
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


def test_without_a_tracking_uri_nothing_is_logged(sqlite_store: OperationsStore, tmp_path: Path) -> None:
    cycle_id = cycle_for_tracking(sqlite_store, tmp_path)
    assert len(publish(sqlite_store, cycle_id)) == 6
    assert "mlflow_run_id" not in sqlite_store.get(cycle_id).metadata


# Skips only where a developer installed the extra by hand; CI never does, so there it always runs.
@pytest.mark.skipif(HAS_MLFLOW, reason="checks the message when the extra is missing")
def test_a_tracking_uri_without_the_extra_is_logged_and_the_plots_still_drawn(
    sqlite_store: OperationsStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cycle_id = cycle_for_tracking(sqlite_store, tmp_path)
    with caplog.at_level(logging.ERROR, logger="agent_pipeline.insight.report"):
        assert len(publish(sqlite_store, cycle_id)) == 6
    assert "cycle report not published" in caplog.text and "mlflow" in caplog.text
