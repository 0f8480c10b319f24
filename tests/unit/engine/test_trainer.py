"""The trainer: learning, determinism, checkpoints and resume, cancellation, early stopping, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.engine.trainer import (
    EpochProgress,
    class_weights,
    load_model,
    pick_device,
    train,
)
from agent_pipeline.errors import CancelledError, TrainingError


def make_strategy(**training):
    document = {
        "name": "unit_mlp",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 30, 50]}}},
        "model": {"hidden_layers": [16, 8], "activation": "relu", "dropout": 0.1},
        "training": {"epochs": 6, "batch_size": 32, "learning_rate": 0.01, "early_stopping_patience": 0} | training,
    }
    return parse_strategy(document)


def make_dataset(n: int = 900, n_features: int = 6, seed: int = 0, noise: float = 0.3) -> Dataset:
    """Labels follow the first feature (SELL low, BUY high, HOLD between), imbalanced towards HOLD."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    score = x[:, 0] + noise * rng.normal(size=n)
    y = np.where(score < -0.8, 0, np.where(score > 0.8, 2, 1)).astype(np.int64)
    a, b = int(n * 0.6), int(n * 0.8)
    bars = pd.DataFrame(
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
        index=pd.date_range("2024-01-01", periods=n - b, freq="h"),
    )
    return Dataset(
        feature_names=[f"f{i}" for i in range(n_features)],
        x_train=x[:a],
        y_train=y[:a],
        x_val=x[a:b],
        y_val=y[a:b],
        x_test=x[b:],
        y_test=y[b:],
        test_bars=bars,
    )


def test_train_learns_a_learnable_signal_and_reports_the_gate_metrics(tmp_path):
    result = train(make_strategy(), make_dataset(), model_path=tmp_path / "m.pt", device="cpu")
    assert result.accuracy > 0.8
    assert result.final_loss < 0.5 < result.initial_loss
    assert result.final_loss == result.val_loss
    assert result.epochs_run == 6 and len(result.history) == 6
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]
    assert set(result.precision) == {"SELL", "HOLD", "BUY"} == set(result.recall)
    assert result.class_distribution["train"]["HOLD"] > result.class_distribution["train"]["BUY"]
    assert result.device == "cpu" and result.n_features == 6
    assert result.n_parameters == (6 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)


def test_initial_loss_is_the_untrained_models_validation_loss_near_ln3(tmp_path):
    result = train(make_strategy(epochs=1), make_dataset(), model_path=tmp_path / "m.pt", device="cpu")
    assert abs(result.initial_loss - np.log(3)) < 0.3


def test_summary_is_json_safe_and_holds_the_gate_keys(tmp_path):
    result = train(make_strategy(epochs=2), make_dataset(), model_path=tmp_path / "m.pt", device="cpu")
    summary = json.loads(json.dumps(result.to_summary(), allow_nan=False))
    for key in ("accuracy", "final_loss", "initial_loss", "model_path", "history", "epochs_run", "device"):
        assert key in summary
    assert summary["model_path"] == str(tmp_path / "m.pt")


def test_training_is_deterministic_under_a_seed(tmp_path):
    dataset = make_dataset()
    first = train(make_strategy(epochs=3), dataset, model_path=tmp_path / "a.pt", seed=3, device="cpu")
    second = train(make_strategy(epochs=3), dataset, model_path=tmp_path / "b.pt", seed=3, device="cpu")
    other = train(make_strategy(epochs=3), dataset, model_path=tmp_path / "c.pt", seed=4, device="cpu")
    assert first.history == second.history
    assert first.history != other.history


def test_saved_model_rebuilds_without_the_strategy_and_predicts_the_same(tmp_path):
    dataset = make_dataset()
    result = train(make_strategy(epochs=3), dataset, model_path=tmp_path / "m.pt", device="cpu")
    model, spec = load_model(tmp_path / "m.pt")
    assert spec.feature_names == dataset.feature_names and spec.hidden_layers == [16, 8]
    with torch.no_grad():
        predicted = model(torch.as_tensor(dataset.x_test)).argmax(dim=1).numpy()
    assert np.mean(predicted == dataset.y_test) == pytest.approx(result.accuracy)
    assert not model.training


def test_cancel_then_resume_continues_the_history_and_matches_an_uninterrupted_run(tmp_path):
    dataset, strategy = make_dataset(), make_strategy(epochs=3)
    checkpoint = tmp_path / "ckpt.pt"
    seen: list[int] = []

    def on_epoch(progress: EpochProgress) -> None:
        seen.append(progress.epoch)

    # Given a run cancelled once its second epoch has finished
    with pytest.raises(CancelledError):
        train(
            strategy,
            dataset,
            model_path=tmp_path / "m.pt",
            checkpoint_path=checkpoint,
            device="cpu",
            on_epoch=on_epoch,
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2] and checkpoint.exists()
    assert not (tmp_path / "m.pt").exists()  # no model file from a cancelled run
    # When it is started again with the same checkpoint
    resumed = train(
        strategy,
        dataset,
        model_path=tmp_path / "m.pt",
        checkpoint_path=checkpoint,
        device="cpu",
        on_epoch=on_epoch,
    )
    # Then only epoch 3 runs, and the result equals an uninterrupted run's
    assert seen == [1, 2, 3]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    straight = train(strategy, dataset, model_path=tmp_path / "s.pt", device="cpu")
    assert resumed.history == straight.history
    assert resumed.initial_loss == straight.initial_loss


def test_a_checkpoint_of_another_run_is_ignored(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    train(make_strategy(epochs=2), make_dataset(), model_path=tmp_path / "a.pt", checkpoint_path=checkpoint)
    result = train(
        make_strategy(epochs=2),
        make_dataset(n_features=5),
        model_path=tmp_path / "b.pt",
        checkpoint_path=checkpoint,
    )
    assert result.epochs_run == 2 and result.n_features == 5


def test_cancel_is_noticed_within_an_epoch(tmp_path):
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # the epoch-start check passes, the first in-epoch check cancels

    strategy = make_strategy(epochs=1, batch_size=1)  # 540 batches: several in-epoch checks
    with pytest.raises(CancelledError, match="during epoch 1"):
        train(strategy, make_dataset(), model_path=tmp_path / "m.pt", device="cpu", should_cancel=should_cancel)


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    # Pure noise: validation loss stops improving quickly.
    dataset = make_dataset(noise=50.0)
    strategy = make_strategy(epochs=40, early_stopping_patience=2, learning_rate=0.05)
    result = train(strategy, dataset, model_path=tmp_path / "m.pt", device="cpu")
    assert result.stopped_early and result.epochs_run < 40
    best = min(h["val_loss"] for h in result.history)
    assert result.final_loss == pytest.approx(best, rel=1e-5)
    assert result.history[-1]["val_loss"] > best


def test_progress_reports_percentages(tmp_path):
    reports: list[EpochProgress] = []
    train(make_strategy(epochs=4), make_dataset(), model_path=tmp_path / "m.pt", on_epoch=reports.append)
    assert [r.percentage for r in reports] == [25.0, 50.0, 75.0, 100.0]
    assert all(r.epochs == 4 for r in reports)


def test_class_weights_are_inverse_frequency():
    weights = class_weights(np.array([1, 1, 1, 1, 0, 2]))
    assert weights.tolist() == pytest.approx([2.0, 0.5, 2.0])
    assert class_weights(np.array([1, 1, 2])).tolist() == pytest.approx([1.0, 0.75, 1.5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: replace(d, x_train=d.x_train[:0], y_train=d.y_train[:0]), "train split is empty"),
        (lambda d: replace(d, x_val=d.x_val[:0], y_val=d.y_val[:0]), "validation split is empty"),
        (lambda d: replace(d, x_train=np.where(np.eye(540, 6, dtype=bool), np.nan, d.x_train)), "NaN"),
        (lambda d: replace(d, y_train=np.ones_like(d.y_train)), "single class"),
        (lambda d: replace(d, feature_names=d.feature_names[:5]), "6 features but the dataset names 5"),
        (lambda d: replace(d, y_test=d.y_test[:-1]), "labels"),
        (lambda d: replace(d, y_val=d.y_val + 5), "labels must be"),
    ],
)
def test_bad_input_is_rejected_with_a_training_error(tmp_path, change, message):
    with pytest.raises(TrainingError, match=message):
        train(make_strategy(epochs=1), change(make_dataset()), model_path=tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_pick_device_falls_back_to_cpu_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == "cpu" and pick_device("auto") == "cpu" and pick_device("cpu") == "cpu"
    with pytest.raises(TrainingError, match="CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(TrainingError, match="unknown device"):
        pick_device("tpu")


def test_load_model_refuses_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(TrainingError, match="not found"):
        load_model(tmp_path / "nope.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="not a model file"):
        load_model(tmp_path / "other.pt")


def test_model_file_write_leaves_no_temp_files(tmp_path: Path):
    train(
        make_strategy(epochs=1),
        make_dataset(),
        model_path=tmp_path / "out" / "m.pt",
        checkpoint_path=tmp_path / "out" / "c.pt",
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.pt", "m.pt"]
