"""Adam, as `torch.optim.Adam` computes it, without TorchDynamo; and its stacked form for models trained together.

`torch.optim`'s `step` imports `torch._dynamo` on its first call (torch/optim/optimizer.py, `_use_grad`), only to
place a graph break for `torch.compile`, which the trainer never uses. That import costs 2-4 s of every process
that trains, and the GPU worker trains each model in a fresh child process (`--max-tasks-per-child 1`): measured
here, the first `torch.optim.Adam` step cost 3.8 s against 0.0 s for the second. This is the same update, in the
same order of operations as torch's single-tensor path (Kingma & Ba, 2015, with L2 weight decay added to the
gradient as `torch.optim.Adam(weight_decay=...)` does); a test holds it to torch's within float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """Adam over a model's parameters: `zero_grad`, `step`, `state_dict`, `load_state_dict`."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.steps)
        correction2_sqrt = math.sqrt(1 - beta2**self.steps)
        for param, exp_avg, exp_avg_sq in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if param.grad is None:
                continue
            grad = param.grad if not self.weight_decay else param.grad.add(param, alpha=self.weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "exp_avg": list(self.exp_avg), "exp_avg_sq": list(self.exp_avg_sq)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq, [*state["exp_avg"], *state["exp_avg_sq"]], strict=True):
            mine.copy_(saved)


class StackedAdam:
    """Adam over one `(models, parameters)` tensor: each row is one model's weights, with its own step count.

    Each step names the models that take it. A model left out (no rows in this batch, or stopped early) keeps
    its weights, moments and step count exactly: its coefficients make every update an exact no-op (a `lerp`
    weight of 0, a decay of 1, a step size of 0), so no `where` over the whole tensor is needed. For the models
    that step, the arithmetic is `Adam.step`'s, operation for operation, with the per-model scalars (the bias
    corrections) as a column instead of a Python float.
    """

    def __init__(
        self,
        param: torch.Tensor,
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param = param
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.steps = [0] * param.shape[0]
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)

    def _coefficients(self, active: list[bool]) -> torch.Tensor:
        """Per model: lerp weight, second-moment decay and weight, sqrt bias correction, negative step size."""
        beta1, beta2 = self.betas
        rows = []
        for model, stepping in enumerate(active):
            if not stepping:
                rows.append((0.0, 1.0, 0.0, 1.0, 0.0))
                continue
            self.steps[model] += 1
            steps = self.steps[model]
            step_size = self.lr / (1 - beta1**steps)
            rows.append((1 - beta1, beta2, 1 - beta2, math.sqrt(1 - beta2**steps), -step_size))
        # float32 like the Python scalars Adam.step passes, which torch casts to the tensor's dtype.
        table = torch.tensor(rows, dtype=self.param.dtype).T.unsqueeze(2)
        return table.to(self.param.device, non_blocking=True)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, active: list[bool]) -> None:
        """One Adam step with gradient `grad` (shaped like the parameters) for the models flagged in `active`."""
        weight1, decay2, weight2, correction2_sqrt, step = self._coefficients(active)
        if self.weight_decay:
            grad = grad.add(self.param, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, weight1)
        self.exp_avg_sq.mul_(decay2).addcmul_(grad * weight2, grad)
        denom = (self.exp_avg_sq.sqrt() / correction2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg * step, denom)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = [int(s) for s in state["steps"]]
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
