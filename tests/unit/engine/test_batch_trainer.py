"""The batch trainer: a plan trained together equals the same plan trained one model at a time, resumes exactly.

Tolerances. Both trainers run float32 on the CPU from the same seeds: the same initial weights per model, the same
batch order, the same dropout masks and the same Adam arithmetic. What differs is the order of float reductions (a
batched matrix product against one per model, a masked sum against cross_entropy's), each a few ulp (float32
epsilon 1.2e-7). Measured over these runs the curves differ by at most 3e-7; we allow 1e-5 on a loss near 1,
thirty times that and still a hundred times below a difference anyone would read off a curve (1e-3). Accuracies
count predictions: a logit pair within 1e-5 of a tie could flip one row, so they may differ by one test row.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agent_pipeline.engine.batch_trainer import train_together
from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.engine.trainer import EpochProgress, TrainingResult, load_model, train
from agent_pipeline.errors import CancelledError

LOSS_TOLERANCE = 1e-5  # see the module docstring


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_strategy(**training):
    document = {
        "name": "unit_batch",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 30, 50]}}},
        "model": {"hidden_layers": [16, 8], "activation": "relu", "dropout": 0.2},
        "training": {"epochs": 6, "batch_size": 32, "learning_rate": 0.01, "early_stopping_patience": 0} | training,
    }
    return parse_strategy(document)


def make_plan(noisy_last: bool = False) -> list[Dataset]:
    """Three expanding windows of one learnable series (SELL low, BUY high): 240, 420 and 600 training rows.

    With `noisy_last`, the last model's labels are pure noise, so its validation loss stops improving early.
    """
    rng = np.random.default_rng(0)
    n, n_features = 1000, 6
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    score = x[:, 0] + 0.3 * rng.normal(size=n)
    y = np.where(score < -0.8, 0, np.where(score > 0.8, 2, 1)).astype(np.int64)
    bars = pd.DataFrame(
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
        index=pd.date_range("2024-01-01", periods=100, freq="h"),
    )
    plan = []
    for train_end in (240, 420, 600):
        val_end = train_end + 100
        plan.append(
            Dataset(
                [f"f{i}" for i in range(n_features)],
                x[:train_end],
                y[:train_end],
                x[train_end:val_end],
                y[train_end:val_end],
                x[val_end : val_end + 100],
                y[val_end : val_end + 100],
                bars,
            )
        )
    if noisy_last:
        last = plan[-1]
        plan[-1] = replace(last, y_train=rng.integers(0, 3, len(last.y_train)), y_val=rng.integers(0, 3, 100))
    return plan


def one_by_one(strategy, plan: list[Dataset], folder: Path) -> list[TrainingResult]:
    return [train(strategy, d, model_path=folder / f"one_{i}.pt", device="cpu") for i, d in enumerate(plan)]


def together(strategy, plan: list[Dataset], folder: Path, **kwargs) -> list[TrainingResult]:
    paths = [folder / f"together_{i}.pt" for i in range(len(plan))]
    return train_together(strategy, plan, model_paths=paths, device="cpu", **kwargs)


def curve(result: TrainingResult, key: str) -> np.ndarray:
    return np.array([h[key] for h in result.history])


@pytest.mark.parametrize("noisy_last", [False, True], ids=["all_learn", "one_stops_early"])
def test_each_model_trained_together_has_the_curve_and_accuracy_it_has_alone(tmp_path, noisy_last) -> None:
    # Given a plan of three windows of different sizes, with dropout and early stopping
    strategy = make_strategy(epochs=12, early_stopping_patience=2)
    plan = make_plan(noisy_last)
    # When it is trained one model at a time and together, from the same seed
    alone, batched = one_by_one(strategy, plan, tmp_path), together(strategy, plan, tmp_path)
    # Then each model stops at the same epoch, with the same curves, losses and accuracy
    for single, stacked in zip(alone, batched, strict=True):
        assert (stacked.epochs_run, stacked.stopped_early) == (single.epochs_run, single.stopped_early)
        for key in ("train_loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(curve(stacked, key), curve(single, key), rtol=0, atol=LOSS_TOLERANCE)
        assert stacked.initial_loss == pytest.approx(single.initial_loss, abs=LOSS_TOLERANCE)
        assert stacked.final_loss == pytest.approx(single.final_loss, abs=LOSS_TOLERANCE)
        assert abs(stacked.accuracy - single.accuracy) <= 1 / len(plan[0].y_test) + 1e-12
    if noisy_last:
        assert batched[-1].stopped_early and batched[-1].epochs_run < batched[0].epochs_run


def test_each_model_file_is_a_normal_single_model_that_scores_its_reported_accuracy(tmp_path) -> None:
    plan = make_plan()
    results = together(make_strategy(epochs=3), plan, tmp_path)
    for dataset, result in zip(plan, results, strict=True):
        model, spec = load_model(Path(result.model_path))
        assert spec.n_features == 6 and spec.hidden_layers == [16, 8]
        with torch.no_grad():
            predicted = model(torch.as_tensor(dataset.x_test)).argmax(dim=1).numpy()
        assert np.mean(predicted == dataset.y_test) == pytest.approx(result.accuracy)
        assert result.final_loss == pytest.approx(min(curve(result, "val_loss")), rel=1e-5)


def test_cancel_then_resume_mid_plan_equals_an_uninterrupted_run(tmp_path) -> None:
    strategy, plan = make_strategy(epochs=4), make_plan()
    checkpoint = tmp_path / "batch.pt"
    seen: list[EpochProgress] = []
    # Given a plan cancelled once its second epoch has finished
    with pytest.raises(CancelledError, match="before epoch 3"):
        together(
            strategy,
            plan,
            tmp_path,
            checkpoint_path=checkpoint,
            on_epoch=seen.append,
            should_cancel=lambda: len(seen) >= 2,
        )
    assert checkpoint.exists() and not (tmp_path / "together_0.pt").exists()
    # When it is started again from the checkpoint
    resumed = together(strategy, plan, tmp_path, checkpoint_path=checkpoint, on_epoch=seen.append)
    # Then only epochs 3 and 4 run, and every model equals an uninterrupted run's, bit for bit
    assert [p.epoch for p in seen] == [1, 2, 3, 4]
    (tmp_path / "straight").mkdir()
    straight = together(strategy, plan, tmp_path / "straight")
    for a, b in zip(resumed, straight, strict=True):
        assert a.history == b.history and a.initial_loss == b.initial_loss and a.accuracy == b.accuracy


def test_a_finished_plan_resumes_with_nothing_left_to_train(tmp_path) -> None:
    strategy, plan, checkpoint = make_strategy(epochs=2), make_plan(), tmp_path / "batch.pt"
    first = together(strategy, plan, tmp_path, checkpoint_path=checkpoint)
    seen: list[EpochProgress] = []
    again = together(strategy, plan, tmp_path, checkpoint_path=checkpoint, on_epoch=seen.append)
    assert seen == [] and [r.history for r in again] == [r.history for r in first]


def test_a_checkpoint_of_another_plan_is_ignored(tmp_path) -> None:
    checkpoint = tmp_path / "batch.pt"
    together(make_strategy(epochs=2), make_plan(), tmp_path, checkpoint_path=checkpoint)
    results = together(make_strategy(epochs=2), make_plan()[:2], tmp_path, checkpoint_path=checkpoint)
    assert [r.epochs_run for r in results] == [2, 2]


def test_progress_spans_every_model_and_reports_the_last_models_losses(tmp_path) -> None:
    reports: list[EpochProgress] = []
    results = together(make_strategy(epochs=4), make_plan(), tmp_path, on_epoch=reports.append)
    assert [r.percentage for r in reports] == [25.0, 50.0, 75.0, 100.0]
    assert reports[-1].val_loss == results[-1].history[-1]["val_loss"]


def test_cancel_is_noticed_within_an_epoch(tmp_path) -> None:
    calls: list[int] = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # the epoch-start check passes, the first in-epoch check cancels

    with pytest.raises(CancelledError, match="during epoch 1"):
        together(make_strategy(epochs=1, batch_size=1), make_plan(), tmp_path, should_cancel=should_cancel)
