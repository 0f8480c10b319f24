"""The batch trainer: every model of a walk-forward plan trained in one run, with stacked weights (issue 15).

These MLPs are small: on a CPU their training time is per-step Python and kernel-launch overhead, not arithmetic.
Trained one after another, K fold models and the final model pay that overhead once per model and step; trained
together, once per step.

**Stacked weights.** Every model's parameters are one row of a single `(models, parameters)` tensor, and each
layer is a grouped linear layer, `torch.baddbmm` over the leading model axis. One optimiser step
(`optim.StackedAdam`) updates every model. We chose this over `torch.func` (`stack_module_state`, `vmap` over
`functional_call`): the grouped layer is a handful of plain ops under ordinary autograd, so the per-step cost that
batching is meant to remove stays small (vmap adds its own per-call Python dispatch), it works with our own Adam
(`torch.optim` imports TorchDynamo, see `optim.py`), and per-model masks are plain tensors. One flat row per model
also makes the optimiser step a few ops in all, not a few per layer.

**Different fold sizes: padding and masks, not per-model sampling.** An epoch has as many steps as the largest
model needs (ceil(rows / batch size)). At step s, each model takes rows s*B..(s+1)*B of its own shuffled order,
exactly the batch it would take alone; a model whose epoch is over (a smaller fold) gets an empty, fully masked
batch, and the optimiser leaves it untouched that step. The last, partial batch is padded with masked rows.
Each model's loss is the class-weighted mean over its own real rows (masked rows weigh 0), and the models' losses
are summed, so each model's gradient is exactly its own loss's gradient. So every model sees each of its rows once
per epoch, in the order, batch size, batch count and optimiser steps it would see alone: its training is not
merely statistically the same as alone, it is the same computation, up to float reduction order. Per-model
sampling with a common step count would instead give small folds more (resampled) steps per epoch, changing their
learning-rate schedule and early-stopping clock.

**Same seeds, same runs.** Each model is initialised by `trainer.new_model` from the same seed as the one-by-one
trainer, draws its batch order from its own generator seeded alike, and draws its dropout masks from its own
generator started where `nn.Dropout` would start (the global RNG right after the model's initialisation), with
the same `bernoulli_` calls. On the CPU the two trainers therefore agree to float rounding; on CUDA, dropout
masks come from different kernels (statistically the same, not bitwise).

Each model keeps its own validation split, early stopping (a stopped model takes no more steps and records no
more epochs) and best weights (restored before it is scored). The checkpoint holds the whole batched state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.optim import StackedAdam
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.engine.trainer import (
    ACTIVATIONS,
    CANCEL_CHECK_BATCHES,
    EVAL_CHUNK,
    N_CLASSES,
    EpochProgress,
    ModelSpec,
    Record,
    TrainingResult,
    atomic_torch_save,
    class_weights,
    fingerprint,
    finish,
    new_model,
    pick_device,
    spec_from,
    validate,
)
from agent_pipeline.errors import CancelledError, TrainingError

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1  # bumped when the batched checkpoint's layout changes


def _padded(arrays: list[np.ndarray], dtype: torch.dtype, device: str) -> torch.Tensor:
    """Stack arrays of different lengths along a new leading axis, zero-padded to the longest."""
    longest = max(len(a) for a in arrays)
    out = torch.zeros((len(arrays), longest, *arrays[0].shape[1:]), dtype=dtype)
    for i, array in enumerate(arrays):
        out[i, : len(array)] = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)
    return out.to(device)


@dataclass
class _Data:
    """Every model's rows, stacked and zero-padded; features already standardised with each model's statistics.

    Standardising once here is the same elementwise `(x - mean) / std` the single model's first layer computes.
    """

    x_train: torch.Tensor  # (models, rows, features)
    y_train: torch.Tensor  # (models, rows)
    n_train: list[int]
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_weight: torch.Tensor  # (models, rows): the class weight of each real validation row, 0 for padding
    val_rows: torch.Tensor  # (models,) real validation rows
    class_weight: torch.Tensor  # (models, 3)

    @property
    def x_rows(self) -> torch.Tensor:
        """The training features flattened to (models * rows, features), for one `index_select` per batch."""
        return self.x_train.view(-1, self.x_train.shape[2])

    @classmethod
    def of(cls, datasets: list[Dataset], models: list[nn.Sequential], device: str) -> _Data:
        def standardised(split: str) -> list[np.ndarray]:
            out = []
            for dataset, model in zip(datasets, models, strict=True):
                x = torch.as_tensor(np.ascontiguousarray(getattr(dataset, split), dtype=np.float32))
                with torch.no_grad():
                    out.append(model[0](x).numpy())
            return out

        class_weight = torch.as_tensor(np.stack([class_weights(d.y_train) for d in datasets])).to(device)
        y_val = _padded([d.y_val for d in datasets], torch.int64, device)
        n_val = [len(d.y_val) for d in datasets]
        real = torch.arange(y_val.shape[1], device=device) < torch.as_tensor(n_val, device=device).unsqueeze(1)
        return cls(
            x_train=_padded(standardised("x_train"), torch.float32, device),
            y_train=_padded([d.y_train for d in datasets], torch.int64, device),
            n_train=[len(d.y_train) for d in datasets],
            x_val=_padded(standardised("x_val"), torch.float32, device),
            y_val=y_val,
            val_weight=class_weight.gather(1, y_val) * real,
            val_rows=torch.as_tensor(n_val, dtype=torch.float32, device=device),
            class_weight=class_weight,
        )


def _row(model: nn.Sequential) -> torch.Tensor:
    """A model's weights as one row: per linear layer, its weight transposed to (in, out), then its bias."""
    parts = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            parts += [layer.weight.detach().T.reshape(-1), layer.bias.detach()]
    return torch.cat(parts)


def _load_row(model: nn.Sequential, row: torch.Tensor) -> None:
    """The inverse of `_row`: copy a row's weights into a single model's linear layers."""
    offset = 0
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                out_features, in_features = layer.weight.shape
                size = in_features * out_features
                layer.weight.copy_(row[offset : offset + size].view(in_features, out_features).T)
                layer.bias.copy_(row[offset + size : offset + size + out_features])
                offset += size + out_features


class _Stack:
    """The models as one: stacked weights, optimiser, generators, records; forward, epoch and checkpoint.

    `flat` holds every model's weights, one row each. The layers' parameters are views into it, made leaves of
    their own: autograd then never sees the flat tensor (no split or view in every step's graph), while the
    optimiser's in-place update of `flat` is what the views read at the next step.
    """

    def __init__(self, spec: ModelSpec, strategy: Strategy, models: list[nn.Sequential], device: str, seed: int):
        self.flat = torch.stack([_row(m) for m in models]).to(device)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        offset, width = 0, spec.n_features
        for out_features in [*spec.hidden_layers, N_CLASSES]:
            size = width * out_features
            weight = self.flat[:, offset : offset + size].view(len(models), width, out_features)
            bias = self.flat[:, offset + size : offset + size + out_features].unsqueeze(1)
            self.layers.append((weight.requires_grad_(True), bias.requires_grad_(True)))
            offset, width = offset + size + out_features, out_features
        self.best = self.flat.clone()
        self.has_best = [False] * len(models)
        training = strategy.training
        self.optimizer = StackedAdam(self.flat, lr=training.learning_rate, weight_decay=training.weight_decay)
        self.activation = ACTIVATIONS[spec.activation]()
        self.keep = 1.0 - spec.dropout
        self.records = [Record() for _ in models]
        self.orders = [torch.Generator().manual_seed(seed) for _ in models]
        self.dropouts: list[torch.Generator] = []
        self.device = device

    @property
    def n_models(self) -> int:
        return len(self.records)

    def forward(self, x: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """Logits (models, rows, 3); with `rows` (real rows per model in this batch), training-mode dropout."""
        for depth, (weight, bias) in enumerate(self.layers):
            x = torch.baddbmm(bias, x, weight)
            if depth < len(self.layers) - 1:
                x = self.activation(x)
                if rows is not None and self.keep < 1.0:
                    x = x * self._dropout_noise(x.shape, rows)
        return x

    def _dropout_noise(self, shape: torch.Size, rows: list[int]) -> torch.Tensor:
        """nn.Dropout's mask per model, drawn from its own generator on its real rows only (padding gets 0)."""
        noise = torch.zeros(shape, device=self.device)
        for model, count in enumerate(rows):
            if count:
                noise[model, :count].bernoulli_(self.keep, generator=self.dropouts[model])
        return noise.div_(self.keep)

    def backward_and_step(self, loss: torch.Tensor, active: list[bool]) -> None:
        loss.backward()
        grads = []
        for weight, bias in self.layers:
            assert weight.grad is not None and bias.grad is not None
            grads += [weight.grad.view(self.n_models, -1), bias.grad.view(self.n_models, -1)]
            weight.grad = bias.grad = None
        self.optimizer.step(torch.cat(grads, dim=1), active)

    def active(self, epochs: int) -> list[bool]:
        return [not r.stopped_early and r.epoch < epochs for r in self.records]

    def train_epoch(
        self, data: _Data, batch_size: int, active: list[bool], should_cancel: Callable[[], bool] | None
    ) -> list[float]:
        """One epoch of every active model; returns each model's mean training loss (NaN where inactive)."""
        epoch = _Epoch.of(self, data, batch_size, active)
        losses = torch.empty((epoch.steps, self.n_models), device=self.device)  # on device: no host sync per batch
        for step in range(epoch.steps):
            if should_cancel is not None and step and step % CANCEL_CHECK_BATCHES == 0 and should_cancel():
                raise CancelledError(f"training cancelled during epoch {max(r.epoch for r in self.records) + 1}")
            loss = epoch.losses(self, data, step)
            self.backward_and_step(loss.sum(), epoch.stepping(step))
            losses[step] = loss.detach()
        means = ((losses * epoch.counts).sum(0).cpu() / torch.as_tensor(data.n_train)).tolist()
        return [loss if on else float("nan") for loss, on in zip(means, active, strict=True)]

    @torch.no_grad()
    def evaluate(self, data: _Data) -> tuple[list[float], list[float]]:
        """Each model's class-weighted validation loss and accuracy, over its own real rows."""
        nll, hits = [], []
        for start in range(0, data.x_val.shape[1], EVAL_CHUNK):
            logits = self.forward(data.x_val[:, start : start + EVAL_CHUNK])
            y = data.y_val[:, start : start + EVAL_CHUNK]
            weight = data.val_weight[:, start : start + EVAL_CHUNK]
            picked = torch.log_softmax(logits, dim=2).gather(2, y.unsqueeze(2)).squeeze(2)
            nll.append(-(picked * weight).sum(1))
            hits.append(((logits.argmax(dim=2) == y) & (weight > 0)).sum(1))
        loss = torch.stack(nll).sum(0) / data.val_weight.sum(1)
        accuracy = torch.stack(hits).sum(0) / data.val_rows
        return loss.cpu().tolist(), accuracy.cpu().tolist()

    def keep_best(self, improved: list[bool]) -> None:
        if any(improved):
            mask = torch.as_tensor(improved, device=self.device).unsqueeze(1)
            self.best = torch.where(mask, self.flat, self.best)
            self.has_best = [had or now for had, now in zip(self.has_best, improved, strict=True)]

    def state_dict(self, run_id: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": run_id,
            "flat": self.flat,
            "best": self.best,
            "has_best": self.has_best,
            "optimizer": self.optimizer.state_dict(),
            "records": [asdict(r) for r in self.records],
            "orders": [g.get_state() for g in self.orders],
            "dropouts": [g.get_state() for g in self.dropouts],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.flat.copy_(state["flat"])  # in place: the layers are views of it
        self.best = state["best"].to(self.device)
        self.has_best = list(state["has_best"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.records = [Record(**r) for r in state["records"]]
        for generator, saved in zip(self.orders + self.dropouts, state["orders"] + state["dropouts"], strict=True):
            generator.set_state(saved.cpu())


@dataclass
class _Epoch:
    """One epoch's batches for every model: each model's own shuffled order, padded to the longest, with masks.

    The tables are laid out (steps, models, batch) so that each step reads one contiguous block.
    """

    steps: int
    index: torch.Tensor  # rows into the flattened (models * rows) training set; padding points at a real row
    labels: torch.Tensor
    weight: torch.Tensor  # the row's class weight, 0 in padding
    denominator: torch.Tensor  # (steps, models): each model's summed weight per batch, 1 where it has no rows
    rows: np.ndarray  # (steps, models): real rows of each model in each batch
    counts: torch.Tensor  # (steps, models) the same on the device, as float

    @classmethod
    def of(cls, stack: _Stack, data: _Data, batch_size: int, active: list[bool]) -> _Epoch:
        n = np.array([rows if on else 0 for rows, on in zip(data.n_train, active, strict=True)])
        steps, models, longest = int(np.ceil(n.max() / batch_size)), stack.n_models, data.x_train.shape[1]
        index = torch.zeros((models, steps * batch_size), dtype=torch.int64)
        for model in np.flatnonzero(n):
            # The same call, on the same generator, as trainer._train_epoch: the same order as alone.
            index[model, : n[model]] = torch.randperm(int(n[model]), generator=stack.orders[model])
        index = index.to(stack.device)
        real = torch.arange(steps * batch_size, device=stack.device) < torch.as_tensor(n, device=stack.device)[:, None]
        labels = data.y_train.gather(1, index)
        weight = data.class_weight.gather(1, labels) * real
        index += torch.arange(models, device=stack.device).unsqueeze(1) * longest

        def by_step(table: torch.Tensor) -> torch.Tensor:
            return table.view(models, steps, batch_size).transpose(0, 1).contiguous()

        weight = by_step(weight)
        denominator = weight.sum(2)
        rows = np.clip(n[None, :] - batch_size * np.arange(steps)[:, None], 0, batch_size)
        return cls(
            steps=steps,
            index=by_step(index),
            labels=by_step(labels),
            weight=weight,
            denominator=torch.where(denominator > 0, denominator, torch.ones_like(denominator)),
            rows=rows,
            counts=torch.as_tensor(rows, dtype=torch.float32, device=stack.device),
        )

    def stepping(self, step: int) -> list[bool]:
        return (self.rows[step] > 0).tolist()

    def losses(self, stack: _Stack, data: _Data, step: int) -> torch.Tensor:
        """Each model's class-weighted mean cross-entropy over its real rows of batch `step` (0 without rows)."""
        index = self.index[step]
        x = data.x_rows.index_select(0, index.view(-1)).view(*index.shape, -1)
        logits = stack.forward(x, rows=self.rows[step].tolist())
        picked = torch.log_softmax(logits, dim=2).gather(2, self.labels[step].unsqueeze(2)).squeeze(2)
        return -(picked * self.weight[step]).sum(1) / self.denominator[step]


def _new_stack(
    strategy: Strategy, datasets: list[Dataset], seed: int, device: str
) -> tuple[ModelSpec, list[nn.Sequential], _Stack]:
    spec = spec_from(strategy, datasets[0])
    models, dropouts = [], []
    for dataset in datasets:
        models.append(new_model(spec, dataset, seed))
        # nn.Dropout on the CPU draws from the global RNG, which new_model has just advanced past the weights.
        generator = torch.Generator(device=device)
        if device == "cpu":
            generator.set_state(torch.get_rng_state())
        else:
            generator.manual_seed(seed)
        dropouts.append(generator)
    stack = _Stack(spec, strategy, models, device, seed)
    stack.dropouts = dropouts
    return spec, models, stack


def _resume(stack: _Stack, path: Path, run_id: dict[str, Any], device: str) -> bool:
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != run_id:
        logger.warning("checkpoint %s belongs to another run; starting fresh", path)
        return False
    stack.load_state_dict(state)
    return True


def _progress(stack: _Stack, epochs: int) -> EpochProgress:
    """The epoch's progress: its percentage spans every model; the losses are the last model's (the final)."""
    done = [1.0 if r.stopped_early else r.epoch / epochs for r in stack.records]
    last = stack.records[-1].history[-1]
    return EpochProgress(
        epoch=max(r.epoch for r in stack.records),
        epochs=epochs,
        train_loss=last["train_loss"],
        val_loss=last["val_loss"],
        val_accuracy=last["val_accuracy"],
        percentage=100.0 * sum(done) / len(done),
    )


def _record(stack: _Stack, active: list[bool], train_losses: list[float], data: _Data, strategy: Strategy) -> None:
    """Score the epoch on validation, extend each active model's curve, keep the best weights."""
    val_losses, val_accuracies = stack.evaluate(data)
    epochs, patience = strategy.training.epochs, strategy.training.early_stopping_patience
    improved = [False] * stack.n_models
    for model in np.flatnonzero(active):
        if not np.isfinite(train_losses[model]):
            epoch = stack.records[model].epoch + 1
            raise TrainingError(f"training loss of model {model + 1} diverged at epoch {epoch}")
        improved[model] = stack.records[model].add_epoch(
            train_losses[model], val_losses[model], val_accuracies[model], patience=patience, epochs=epochs
        )
    stack.keep_best(improved)


def train_together(
    strategy: Strategy,
    datasets: list[Dataset],
    *,
    model_paths: list[Path],
    checkpoint_path: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[TrainingResult]:
    """Train one model per dataset, all at once, and write each best model to its path (as `trainer.train` does).

    Args:
        strategy: supplies the model and training settings shared by every model.
        datasets: one per model (fold models, then the final model); all with the strategy's features.
        model_paths: one per dataset; each is a normal single-model file, written only on success.
        checkpoint_path: the batched state, written after every epoch; resumed from when it matches.
        seed: each model's seed, as `trainer.train` uses it.
        device: `cpu`, `cuda[:N]`, or None / `auto`.
        on_epoch: called after every epoch; its percentage spans every model.
        should_cancel: polled every epoch and every CANCEL_CHECK_BATCHES batches.

    Raises:
        TrainingError: bad input in any dataset, or a diverging loss.
        CancelledError: should_cancel() returned True; the last finished epoch's checkpoint is kept.
    """
    started = time.monotonic()
    for dataset in datasets:
        validate(dataset)
    device = pick_device(device)
    spec, models, stack = _new_stack(strategy, datasets, seed, device)
    data = _Data.of(datasets, models, device)
    run_id = {"models": [fingerprint(spec, strategy, d, seed) for d in datasets]}
    if checkpoint_path and checkpoint_path.exists() and _resume(stack, checkpoint_path, run_id, device):
        logger.info("resumed the batched training from its checkpoint", extra={"checkpoint": str(checkpoint_path)})
    else:
        for record, loss in zip(stack.records, stack.evaluate(data)[0], strict=True):
            record.initial_loss = loss
    epochs = strategy.training.epochs
    while any(active := stack.active(epochs)):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"training cancelled before epoch {max(r.epoch for r in stack.records) + 1}")
        train_losses = stack.train_epoch(data, strategy.training.batch_size, active, should_cancel)
        _record(stack, active, train_losses, data, strategy)
        if checkpoint_path is not None:
            atomic_torch_save(stack.state_dict(run_id), checkpoint_path)
        if on_epoch is not None:
            on_epoch(_progress(stack, epochs))
    return _finish(stack, spec, models, datasets, model_paths, device, started)


def _finish(
    stack: _Stack,
    spec: ModelSpec,
    models: list[nn.Sequential],
    datasets: list[Dataset],
    model_paths: list[Path],
    device: str,
    started: float,
) -> list[TrainingResult]:
    """Each model back into a normal single model with its best weights, scored and saved by `trainer.finish`."""
    results = []
    for i, (model, dataset, path) in enumerate(zip(models, datasets, model_paths, strict=True)):
        _load_row(model, (stack.best[i] if stack.has_best[i] else stack.flat[i]).cpu())
        model.to(device)
        results.append(finish(model, stack.records[i], spec, dataset, model_path=path, device=device, started=started))
    return results
