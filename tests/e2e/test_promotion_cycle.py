"""The promotion step on the real stack (issue 25): a candidate's purged combinatorial paths train on the gpu worker,
it stays a candidate until its series has a PBO, and the next cycle's end promotes or rejects it, as
`ktrdr agent history --json` and `ktrdr agent report` show.

The PBO needs KTRDR_PBO_MIN_TRIALS trials (8 by default); this test lowers it to 2, so that a second cycle on the
series is enough.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from tests.e2e.shell import ktrdr, ktrdr_env
from tests.stack import OPEN_GATES, Stack, finished, start_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

SYMBOL = "PROMO"
# Epochs of every training here: three (tests/stack.py QUICK) leave this model at chance; six find the edge.
EPOCHS = 6


def reversal_strategy(data_dir: Path, folder: Path) -> Path:
    """A user's strategy that reads the planted one-day reversal: SMA(2) fuzzy sets, two-class labels over 2 bars."""
    from agent_pipeline.engine.features import PRIMARY
    from agent_pipeline.llm.space import fuzzy_sets, research_bars, volatility

    bars = research_bars(SYMBOL, "1d", data_dir, 0.2)
    values = PRIMARY["sma"](SimpleNamespace(period=2, smooth=3), bars).to_numpy(dtype=float)
    document: dict[str, Any] = {
        "name": "promo_reversal", "symbol": SYMBOL, "timeframe": "1d", "indicators": [{"type": "sma", "period": 2}],
        "fuzzy_sets": {"sma_2": fuzzy_sets(values[np.isfinite(values)], 2, 0.3)},
        "model": {"type": "mlp", "hidden_layers": [16], "activation": "relu", "dropout": 0.1},
        "labels": {"zigzag_threshold": round(0.05 * volatility(bars) * math.sqrt(2), 6), "lookahead": 2, "hold": False},
        "training": {"epochs": EPOCHS, "batch_size": 64, "learning_rate": 0.01},
    }  # fmt: skip
    path = folder / "promo.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def trigger(stack: Stack, cwd: Path, *args: str) -> str:
    done = ktrdr("agent", "trigger", "--json", *args, env=ktrdr_env(stack), cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(json.loads(done.stdout)["operation_id"])


def test_a_candidates_paths_train_on_the_gpu_worker_and_a_later_cycle_end_decides_its_promotion(
    make_stack, monkeypatch, tmp_path: Path
) -> None:
    from agent_pipeline.store.operations import OperationStatus, OperationType, get_store

    # Given the full stack, a strong planted reversal, and a user's strategy that reads it
    stack = start_stack(
        make_stack, monkeypatch, **OPEN_GATES, KTRDR_TRAINING_EPOCHS=str(EPOCHS), KTRDR_PBO_MIN_TRIALS="2"
    )
    synth = ("data", "synth", "--kind", "reversal", "--strength", "3.0", "--seed", "5", "--symbol", SYMBOL)
    made = ktrdr(*synth, "--timeframe", "1d", "--bars", "3000", env=ktrdr_env(stack), cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    strategy = reversal_strategy(stack.home / "data", tmp_path)
    # When its cycle runs
    first = trigger(stack, tmp_path, "--strategy", str(strategy))
    done = wait_until(finished(first), timeout=120)
    # Then it is a candidate: its 15 split models trained on the gpu worker as one task, its 5 paths recorded, and
    # it waits for its series' PBO (one trial so far)
    assert done.status == OperationStatus.COMPLETED, (done.error_message, stack.log("research")[-3000:])
    paths = done.record.paths or {}
    assert len(paths.get("sharpes") or []) == 5 and paths["splits"] == 15, (paths, stack.log("gpu")[-3000:])
    child = get_store().get(str(done.record.paths_op_id))
    assert (child.operation_type, child.status, child.parent_operation_id) == (
        OperationType.TRAINING, OperationStatus.COMPLETED, first,
    )  # fmt: skip
    ran = f"Task ktrdr.gpu.train_paths[{child.operation_id}-paths] succeeded"
    assert ran in stack.log("gpu") and "Task ktrdr.gpu.train_paths[" not in stack.log("research")
    promotion = (done.result_summary or {})["promotion"]
    assert (promotion["status"], promotion["pbo_reason"]) == ("candidate", "too few trials: 1 < 2")
    # When a second cycle on the series (the offline designer's) ends
    second = trigger(stack, tmp_path, "--symbol", SYMBOL, "--timeframe", "1d")
    later = wait_until(finished(second), timeout=120)
    assert later.record.backtest_result, (later.status, later.error_message, later.result_summary)
    # Then the series has a PBO, and the candidate is promoted or rejected by it and by its paths
    promotion = (get_store().get(first).result_summary or {})["promotion"]
    assert promotion["status"] in ("discovery", "rejected") and isinstance(promotion["pbo"], float), promotion
    assert promotion["paths"]["sharpes"] == paths["sharpes"] and promotion["max_pbo"] == 0.2
    # And the user sees it: history's row, and the report's promotion line and path Sharpe plot
    history = ktrdr("agent", "history", "--json", "--symbol", SYMBOL, env=ktrdr_env(stack), cwd=tmp_path)
    rows = {row["operation_id"]: row for row in json.loads(history.stdout)["data"]}
    assert rows[first]["promotion"] == promotion["status"]
    assert rows[first]["discovery"] is (promotion["status"] == "discovery")
    report = ktrdr("agent", "report", first, env=ktrdr_env(stack), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert re.search(rf"Promotion\s+{promotion['status']}: ", report.stdout), report.stdout
    assert re.search(r"paths\s+Sharpe( -?\d+\.\d\d,){4} -?\d+\.\d\d over 5 paths", report.stdout), report.stdout
    assert re.search(r"Plot: \S+/paths\.png", report.stdout), report.stdout


def test_the_embedded_run_trains_a_candidates_paths_in_process(tmp_path: Path) -> None:
    # Given a fresh home with the planted reversal, and no servers
    from tests.e2e.shell import clean_env

    home = tmp_path / "home"
    env = clean_env(KTRDR_HOME=str(home), KTRDR_TRAINING_EPOCHS=str(EPOCHS))
    synth = ("data", "synth", "--kind", "reversal", "--strength", "3.0", "--seed", "5", "--symbol", SYMBOL)
    assert ktrdr(*synth, "--timeframe", "1d", "--bars", "3000", env=env, cwd=tmp_path).returncode == 0
    strategy = reversal_strategy(home / "data", tmp_path)
    # When `ktrdr agent run` runs the user's strategy in one process
    run = ktrdr("agent", "run", "--strategy", str(strategy), "--home", str(home), env=env, cwd=tmp_path, timeout=120)
    # Then its in-process gpu queue trained the paths, and the candidate waits for its series' PBO
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"Promotion\s+candidate: waiting for PBO: too few trials: 1 < 8", run.stdout), run.stdout
    assert re.search(r"paths\s+Sharpe( -?\d+\.\d\d,){4} -?\d+\.\d\d over 5 paths", run.stdout), run.stdout
