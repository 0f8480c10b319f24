"""Experiment tracking, optional: each finished cycle becomes one MLflow run when MLFLOW_TRACKING_URI is set.

Install the extra (`pip install 'ktrdr-agent-pipeline[mlflow]'`; it resolves beside the pinned stack without
changing any of it). A run holds the strategy's fields as params, the training and walk-forward metrics
(per-fold figures as steps), and as artifacts the strategy YAML, the model, the plots and the assessment.
The lockbox is not logged: it is for the cycle's own report only. mlflow is imported only here, when used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agent_pipeline.engine.artifacts import fetch
from agent_pipeline.errors import KtrdrError
from agent_pipeline.store.operations import OperationsStore
from agent_pipeline.store.record import CycleRecord

logger = logging.getLogger(__name__)

# The MLflow experiment every cycle is logged to (override with MLFLOW_EXPERIMENT_NAME, MLflow's own name).
EXPERIMENT = "ktrdr-agent-pipeline"
# MLflow refuses longer param values; JSON of a long list is cut here.
MAX_PARAM_LENGTH = 500
# Params per log_params call (MLflow's batch limit is 100).
PARAM_BATCH = 100


def tracking_enabled() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


def log_cycle(store: OperationsStore, cycle_id: str, plots: Sequence[Path] = ()) -> str | None:
    """Log the cycle as one MLflow run and record `mlflow_run_id` on it; None when tracking is off.

    Raises:
        ImportError: MLFLOW_TRACKING_URI is set but the `[mlflow]` extra is not installed.
    """
    if not tracking_enabled():
        return None
    import mlflow

    cycle = store.get(cycle_id)
    meta = cycle.record
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    with mlflow.start_run(run_name=meta.strategy_name or cycle_id) as run:
        mlflow.set_tags(_tags(cycle.operation_id, cycle.status.value, meta))
        document = _strategy_document(meta.strategy_path)
        params = dict(_flatten(document)) if document else {}
        for start in range(0, len(params), PARAM_BATCH):
            mlflow.log_params(dict(list(params.items())[start : start + PARAM_BATCH]))
        mlflow.log_metrics(_metrics(meta))
        for name, step, value in _fold_metrics(store, meta):
            mlflow.log_metric(name, value, step=step)
        for path, folder in _artifacts(meta, plots):
            mlflow.log_artifact(str(path), artifact_path=folder)
    store.merge_metadata(cycle_id, {"mlflow_run_id": run.info.run_id})
    logger.info("cycle logged to MLflow", extra={"mlflow_run_id": run.info.run_id})
    return str(run.info.run_id)


def _tags(cycle_id: str, status: str, meta: CycleRecord) -> dict[str, str]:
    tags = {"ktrdr.cycle_id": cycle_id, "ktrdr.status": status}
    for key in ("designer", "symbol", "timeframe", "strategy_checksum"):
        if value := meta.get(key):
            tags[f"ktrdr.{key}"] = str(value)
    return tags


def _strategy_document(path: str | None) -> dict[str, Any]:
    import yaml

    if not path or not Path(path).is_file():
        return {}
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return document if isinstance(document, dict) else {}


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """`model.dropout -> 0.2`; lists (indicators, hidden layers) as JSON, cut to MAX_PARAM_LENGTH."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return
    text = value if isinstance(value, str) else json.dumps(value)
    yield prefix, text[:MAX_PARAM_LENGTH]


def _numbers(values: dict[str, Any] | None, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}.{key}": float(value)
        for key, value in (values or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _metrics(meta: CycleRecord) -> dict[str, float]:
    """Every number of the training result and the stitched walk-forward backtest, plus the LLM cost."""
    metrics = {**_numbers(meta.training_result, "training"), **_numbers(meta.backtest_result, "backtest")}
    if isinstance(meta.cost_usd, int | float):
        metrics["cost_usd"] = float(meta.cost_usd)
    return metrics


def _fold_metrics(store: OperationsStore, meta: CycleRecord) -> Iterator[tuple[str, int, float]]:
    """Per-fold figures as (name, fold, value): the backtest's folds and the training op's fold accuracies."""
    folds = list((meta.backtest_result or {}).get("folds") or [])
    training_id = meta.training_op_id
    if training_id:
        folds += [
            {"fold": f.get("fold"), **{f"training_{k}": v for k, v in f.items() if k != "fold"}}
            for f in (store.get(training_id).result_summary or {}).get("folds") or []
        ]
    for fold in folds:
        step = fold.get("fold")
        if not isinstance(step, int):
            continue
        for name, value in _numbers({k: v for k, v in fold.items() if k != "fold"}, "fold").items():
            yield name, step, value


def _artifacts(meta: CycleRecord, plots: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """(file, artifact folder): the strategy, the model, the assessment, the plots; missing files are skipped."""
    for key, folder in (("strategy_path", "strategy"), ("model_path", "model"), ("assessment_path", "assessment")):
        path = _local(meta.get(key))
        if path is not None and path.is_file():
            yield path, folder
    for path in plots:
        if path.is_file():
            yield path, "plots"


def _local(ref: Any) -> Path | None:
    """A host copy of an artifact (a URL, or an older row's path); None when it is gone."""
    if not ref:
        return None
    try:
        return fetch(str(ref))
    except KtrdrError:
        return None
