"""The trainer: a class-weighted MLP classifier (SELL / HOLD / BUY) trained with plain tensor batching.

Losses: every loss this module reports (history, `initial_loss`, `final_loss`) is the same class-weighted
cross-entropy, with inverse-frequency weights from the training labels, so that predicting the majority
class earns no credit: any constant prediction scores at least ln 3 = 1.10. `initial_loss` is the validation
loss of the freshly initialised (seeded) model and `final_loss` the validation loss of the restored best
model, so the training gate's loss decrease compares one quantity before and after learning.

Runs on CUDA when available (chosen at call time; nothing touches CUDA at import), checkpoints each epoch
atomically, resumes from a checkpoint, and stops within one epoch (or 50 batches) of a cancel request.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.files import atomic_write_with
from agent_pipeline.engine.labels import CLASS_NAMES
from agent_pipeline.engine.optim import Adam
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.errors import CancelledError, TrainingError

logger = logging.getLogger(__name__)

N_CLASSES = len(CLASS_NAMES)
# How many batches run between two cancel checks inside an epoch (an epoch boundary always checks).
CANCEL_CHECK_BATCHES = 50
# Rows per forward pass when evaluating; bounds memory on large validation / test sets.
EVAL_CHUNK = 65_536
# Bumped when the model file's layout changes; load_model refuses other versions.
MODEL_FORMAT = 1
CHECKPOINT_FORMAT = 2  # 2: the optimiser state is engine/optim.py's Adam
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model without its strategy."""

    n_features: int
    hidden_layers: list[int]
    activation: str
    dropout: float
    feature_names: list[str]


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch, as reported to `on_epoch`."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    percentage: float


@dataclass
class TrainingResult:
    """What a training run produced; `to_summary()` is the training operation's result_summary."""

    accuracy: float  # test accuracy of the restored best model, 0-1
    final_loss: float  # validation loss of the restored best model
    initial_loss: float  # validation loss of the untrained model
    val_accuracy: float
    val_loss: float
    precision: dict[str, float]  # per class, on the test set
    recall: dict[str, float]
    history: list[dict[str, float]]
    model_path: str
    n_features: int
    n_parameters: int
    epochs_run: int
    stopped_early: bool
    duration_s: float
    device: str
    class_distribution: dict[str, dict[str, int]]  # split -> class -> count
    feature_names: list[str] = field(default_factory=list)

    def to_summary(self) -> dict[str, Any]:
        """A JSON-safe dict (plain floats, ints, strings, lists and dicts)."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class Standardize(nn.Module):
    """(x - mean) / std with the training set's statistics, stored with the weights."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(spec: ModelSpec) -> nn.Sequential:
    """Standardize -> [Linear -> activation -> Dropout] per hidden layer -> Linear to 3 logits."""
    layers: list[nn.Module] = [Standardize(spec.n_features)]
    width = spec.n_features
    for hidden in spec.hidden_layers:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = hidden
    layers.append(nn.Linear(width, N_CLASSES))
    return nn.Sequential(*layers)


def pick_device(requested: str | None = None) -> str:
    """`cuda` when available, else `cpu`; an explicit `cpu` or `cuda[:N]` is honoured.

    Raises:
        TrainingError: CUDA was asked for explicitly and is not available.
    """
    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device {requested} requested but CUDA is not available")
        return requested
    raise TrainingError(f"unknown device {requested!r} (use cpu, cuda or auto)")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Serialise `obj` with torch.save straight into an atomic write (`files.atomic_write_with`)."""
    atomic_write_with(path, lambda handle: torch.save(obj, handle))


def load_model(model_path: Path, device: str = "cpu") -> tuple[nn.Sequential, ModelSpec]:
    """Rebuild a saved model in eval mode, with its spec.

    Raises:
        TrainingError: the file is missing or is not a model file of this format.
    """
    try:
        payload = torch.load(Path(model_path), map_location=device, weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"model file not found: {model_path}") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise TrainingError(f"not a model file of format {MODEL_FORMAT}: {model_path}")
    spec = ModelSpec(**payload["spec"])
    model = build_model(spec).to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, spec


def spec_from(strategy: Strategy, dataset: Dataset) -> ModelSpec:
    return ModelSpec(
        n_features=dataset.n_features,
        hidden_layers=list(strategy.model.hidden_layers),
        activation=strategy.model.activation,
        dropout=float(strategy.model.dropout),
        feature_names=list(dataset.feature_names),
    )


def validate(dataset: Dataset) -> None:
    splits = {
        "train": (dataset.x_train, dataset.y_train),
        "validation": (dataset.x_val, dataset.y_val),
        "test": (dataset.x_test, dataset.y_test),
    }
    for name, (x, y) in splits.items():
        if name == "test" and len(x) == 0:
            continue  # a walk-forward final model has no test rows: the folds are its out-of-sample record
        if x.ndim != 2 or len(x) == 0:
            raise TrainingError(f"{name} split is empty (features shape {x.shape})")
        if len(x) != len(y):
            raise TrainingError(f"{name} split has {len(x)} feature rows but {len(y)} labels")
        if x.shape[1] != dataset.n_features:
            raise TrainingError(f"{name} split has {x.shape[1]} features but the dataset names {dataset.n_features}")
        if not np.isfinite(x).all():
            raise TrainingError(f"{name} features contain NaN or infinite values")
        if len(y) and (y.min() < 0 or y.max() >= N_CLASSES):
            raise TrainingError(f"{name} labels must be 0 (SELL), 1 (HOLD) or 2 (BUY)")
    if len(np.unique(dataset.y_train)) < 2:
        only = CLASS_NAMES[int(dataset.y_train[0])]
        raise TrainingError(f"training labels contain a single class ({only}); nothing to learn")


def class_weights(y: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights n / (k * n_c); a class absent from training gets weight 1."""
    counts = np.bincount(y, minlength=N_CLASSES).astype(np.float64)
    present = counts > 0
    weights = np.ones(N_CLASSES)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def loss_function(y_train: np.ndarray, device: str) -> nn.CrossEntropyLoss:
    """The class-weighted cross-entropy of a model trained on labels `y_train` (see the module docstring)."""
    return nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights(y_train), device=device))


def _distribution(y: np.ndarray) -> dict[str, int]:
    counts = np.bincount(y, minlength=N_CLASSES)
    return {name: int(counts[i]) for i, name in enumerate(CLASS_NAMES)}


@dataclass
class Record:
    """One model's curve and early-stopping state: what its TrainingResult reports besides the scores."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = float("inf")
    since_best: int = 0
    stopped_early: bool = False
    initial_loss: float = float("nan")

    @property
    def epoch(self) -> int:
        return len(self.history)

    def add_epoch(self, train_loss: float, val_loss: float, val_accuracy: float, *, patience: int, epochs: int) -> bool:
        """Append a finished epoch; True when its validation loss is the best so far (keep its weights).

        The model stops early when `patience` epochs in a row did not improve, before the last epoch.
        """
        self.history.append(
            {"epoch": self.epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
        )
        if val_loss < self.best_loss:
            self.best_loss, self.since_best = val_loss, 0
            return True
        self.since_best += 1
        self.stopped_early = patience > 0 and self.since_best >= patience and self.epoch < epochs
        return False


@dataclass(kw_only=True)
class _Run(Record):
    """The mutable state of one training run; what a checkpoint holds."""

    model: nn.Sequential
    optimizer: Adam
    generator: torch.Generator
    best_state: dict[str, torch.Tensor] | None = None


def fingerprint(spec: ModelSpec, strategy: Strategy, dataset: Dataset, seed: int) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this run."""
    return {
        "spec": asdict(spec),
        "training": strategy.training.model_dump(),
        "seed": seed,
        "shapes": [list(a.shape) for a in (dataset.x_train, dataset.x_val, dataset.x_test)],
        "label_sum": int(dataset.y_train.sum()),
    }


def _save_checkpoint(run: _Run, path: Path, fingerprint: dict[str, Any]) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "history": run.history,
        "best_loss": run.best_loss,
        "best_state": run.best_state,
        "since_best": run.since_best,
        "stopped_early": run.stopped_early,
        "initial_loss": run.initial_loss,
        "torch_rng": torch.get_rng_state(),
        "generator": run.generator.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    atomic_torch_save(state, path)


def _resume(run: _Run, path: Path, fingerprint: dict[str, Any], device: str) -> bool:
    """Load a checkpoint into `run`; False (and a fresh start) when it belongs to another run."""
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        logger.warning("checkpoint %s belongs to another run; starting fresh", path)
        return False
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.history = list(state["history"])
    run.best_loss = float(state["best_loss"])
    run.best_state = state["best_state"]
    run.since_best = int(state["since_best"])
    run.stopped_early = bool(state["stopped_early"])
    run.initial_loss = float(state["initial_loss"])
    torch.set_rng_state(state["torch_rng"].cpu())
    run.generator.set_state(state["generator"].cpu())
    if state["cuda_rng"] and device.startswith("cuda"):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    logger.info("resumed from checkpoint at epoch %d", run.epoch, extra={"checkpoint": str(path)})
    return True


def predict_probabilities(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Class probabilities (SELL, HOLD, BUY) of a saved model for feature rows `x`, on the CPU.

    Raises:
        TrainingError: the model file is missing or malformed, or `x` has the wrong number of columns.
    """
    model, spec = load_model(Path(model_path), device="cpu")
    if x.ndim != 2 or x.shape[1] != spec.n_features:
        raise TrainingError(f"features have shape {x.shape}; the model expects {spec.n_features} columns")
    if len(x) == 0:
        return np.empty((0, N_CLASSES), dtype=np.float32)
    logits = _predict_logits(model, torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)))
    return torch.softmax(logits, dim=1).numpy()


@torch.no_grad()
def _predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


def _evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) of `model` on one split."""
    logits = _predict_logits(model, x)
    loss = float(loss_fn(logits, y))
    accuracy = float((logits.argmax(dim=1) == y).float().mean())
    return loss, accuracy


def _train_epoch(
    run: _Run,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    should_cancel: Callable[[], bool] | None,
) -> float:
    """One pass over shuffled batches; returns the mean training loss."""
    run.model.train()
    order = torch.randperm(len(x), generator=run.generator).to(x.device)
    total = torch.zeros((), device=x.device)  # summed on device: no host sync per batch
    for batch, start in enumerate(range(0, len(x), batch_size)):
        if should_cancel is not None and batch and batch % CANCEL_CHECK_BATCHES == 0 and should_cancel():
            raise CancelledError(f"training cancelled during epoch {run.epoch + 1}")
        index = order[start : start + batch_size]
        loss = loss_fn(run.model(x[index]), y[index])
        run.optimizer.zero_grad()
        loss.backward()
        run.optimizer.step()
        total += loss.detach() * len(index)
    return float(total) / len(x)


def _per_class(predicted: np.ndarray, actual: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Precision and recall per class; 0 where a class is never predicted / never present."""
    precision, recall = {}, {}
    for index, name in enumerate(CLASS_NAMES):
        hits = float(np.sum((predicted == index) & (actual == index)))
        predicted_n, actual_n = np.sum(predicted == index), np.sum(actual == index)
        precision[name] = hits / predicted_n if predicted_n else 0.0
        recall[name] = hits / actual_n if actual_n else 0.0
    return precision, recall


def _tensors(x: np.ndarray, y: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device),
        torch.as_tensor(np.ascontiguousarray(y, dtype=np.int64), device=device),
    )


def new_model(spec: ModelSpec, dataset: Dataset, seed: int) -> nn.Sequential:
    """The seeded, untrained model on the CPU, standardising with the training rows' mean and deviation.

    Seeds torch's global RNG (weights here, dropout masks later) and numpy's with `seed`.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = build_model(spec)
    standardize = model[0]
    assert isinstance(standardize, Standardize)
    standardize.mean.copy_(torch.as_tensor(dataset.x_train.mean(axis=0, dtype=np.float64), dtype=torch.float32))
    std = dataset.x_train.std(axis=0, dtype=np.float64)
    standardize.std.copy_(torch.as_tensor(np.where(std > 1e-12, std, 1.0), dtype=torch.float32))
    return model


def _new_run(spec: ModelSpec, strategy: Strategy, dataset: Dataset, seed: int, device: str) -> _Run:
    model = new_model(spec, dataset, seed).to(device)
    optimizer = Adam(
        model.parameters(), lr=strategy.training.learning_rate, weight_decay=strategy.training.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    return _Run(model=model, optimizer=optimizer, generator=generator)


def _inputs(dataset: Dataset, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any]:
    """The training and validation tensors on `device`, and the class-weighted loss of the training labels."""
    x_train, y_train = _tensors(dataset.x_train, dataset.y_train, device)
    x_val, y_val = _tensors(dataset.x_val, dataset.y_val, device)
    return x_train, y_train, x_val, y_val, loss_function(dataset.y_train, device)


def _end_epoch(
    run: Any, train_loss: float, validation: tuple[float, float], epochs: int, patience: int
) -> EpochProgress:
    """Record the epoch on the run, keep the best weights, and say how far the training is."""
    val_loss, val_accuracy = validation
    if run.add_epoch(train_loss, val_loss, val_accuracy, patience=patience, epochs=epochs):
        run.best_state = copy.deepcopy(run.model.state_dict())
    percentage = 100.0 if run.stopped_early else 100.0 * run.epoch / epochs
    return EpochProgress(run.epoch, epochs, train_loss, val_loss, val_accuracy, percentage)


def train(
    strategy: Strategy,
    dataset: Dataset,
    *,
    model_path: Path,
    checkpoint_path: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train the strategy's MLP on `dataset` and write the best model to `model_path`.

    Args:
        strategy: supplies model (hidden_layers, activation, dropout) and training settings.
        dataset: float32 features, int64 labels (SELL=0, HOLD=1, BUY=2), chronological splits.
        model_path: where the model file goes (written atomically, only on success).
        checkpoint_path: written after every epoch; if it exists at start, training resumes from it (kept after
            success, so a redelivered task resumes with nothing left to do).
        seed: seeds torch (weights, dropout) and the batch order; device: `cpu`, `cuda[:N]`, None / `auto`.
        on_epoch: called after every epoch; should_cancel: polled every epoch and every CANCEL_CHECK_BATCHES batches.

    Raises:
        TrainingError: bad input (empty split, NaN, a single class, feature mismatch) or a diverging loss.
        CancelledError: should_cancel() returned True; the last finished epoch's checkpoint is kept.
    """
    started = time.monotonic()
    validate(dataset)
    spec = spec_from(strategy, dataset)
    device = pick_device(device)
    run = _new_run(spec, strategy, dataset, seed, device)
    x_train, y_train, x_val, y_val, loss_fn = _inputs(dataset, device)
    run_id = fingerprint(spec, strategy, dataset, seed)
    if not (checkpoint_path and checkpoint_path.exists() and _resume(run, checkpoint_path, run_id, device)):
        run.initial_loss = _evaluate(run.model, loss_fn, x_val, y_val)[0]
    epochs, patience = strategy.training.epochs, strategy.training.early_stopping_patience
    while run.epoch < epochs and not run.stopped_early:
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"training cancelled before epoch {run.epoch + 1}")
        train_loss = _train_epoch(run, loss_fn, x_train, y_train, strategy.training.batch_size, should_cancel)
        if not np.isfinite(train_loss):
            raise TrainingError(f"training loss diverged at epoch {run.epoch + 1} (loss={train_loss})")
        progress = _end_epoch(run, train_loss, _evaluate(run.model, loss_fn, x_val, y_val), epochs, patience)
        if checkpoint_path is not None:
            _save_checkpoint(run, checkpoint_path, run_id)
        if on_epoch is not None:
            on_epoch(progress)
    if run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    return finish(run.model, run, spec, dataset, model_path=model_path, device=device, started=started)


def finish(
    model: nn.Sequential,
    record: Record,
    spec: ModelSpec,
    dataset: Dataset,
    *,
    model_path: Path,
    device: str,
    started: float,
) -> TrainingResult:
    """Score a trained model (best weights already restored), write its model file, build its result.

    Args:
        started: `time.monotonic()` when its training began; the result's duration counts from it.
    """
    loss_fn = loss_function(dataset.y_train, device)
    x_val, y_val = _tensors(dataset.x_val, dataset.y_val, device)
    x_test, _ = _tensors(dataset.x_test, dataset.y_test, device)
    val_loss, val_accuracy = _evaluate(model, loss_fn, x_val, y_val)
    predicted = _predict_logits(model, x_test).argmax(dim=1).cpu().numpy() if len(x_test) else np.empty(0)
    precision, recall = _per_class(predicted, dataset.y_test)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": MODEL_FORMAT, "spec": asdict(spec), "state_dict": state}, Path(model_path))
    return TrainingResult(
        accuracy=float(np.mean(predicted == dataset.y_test)) if len(predicted) else float("nan"),
        final_loss=val_loss,
        initial_loss=record.initial_loss,
        val_accuracy=val_accuracy,
        val_loss=val_loss,
        precision=precision,
        recall=recall,
        history=record.history,
        model_path=str(model_path),
        n_features=spec.n_features,
        n_parameters=sum(p.numel() for p in model.parameters()),
        epochs_run=record.epoch,
        stopped_early=record.stopped_early,
        duration_s=round(time.monotonic() - started, 3),
        device=device,
        class_distribution={
            "train": _distribution(dataset.y_train),
            "validation": _distribution(dataset.y_val),
            "test": _distribution(dataset.y_test),
        },
        feature_names=list(spec.feature_names),
    )
