"""The trainer's Adam makes torch.optim.Adam's updates, and resumes from its state exactly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from agent_pipeline.engine.optim import Adam, StackedAdam


def model_pair() -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    torch.manual_seed(3)
    first = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    second = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_twenty_steps_match_torch_adam_within_float32_rounding(weight_decay: float) -> None:
    ours_model, torch_model = model_pair()
    ours = Adam(ours_model.parameters(), lr=3e-3, weight_decay=weight_decay)
    reference = torch.optim.Adam(torch_model.parameters(), lr=3e-3, weight_decay=weight_decay, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        x, y = torch.randn(16, 5, generator=generator), torch.randint(0, 3, (16,), generator=generator)
        for model, optimizer in ((ours_model, ours), (torch_model, reference)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for mine, theirs in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_a_resumed_optimizer_continues_as_if_never_stopped() -> None:
    whole_model, resumed_model = model_pair()
    whole, first_half = Adam(whole_model.parameters(), lr=1e-2), Adam(resumed_model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 5, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3

    def train(model: torch.nn.Module, optimizer: Adam, steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    train(whole_model, whole, 10)
    train(resumed_model, first_half, 5)
    resumed = Adam(resumed_model.parameters(), lr=1e-2)
    resumed.load_state_dict({k: v for k, v in first_half.state_dict().items()})
    train(resumed_model, resumed, 5)
    for mine, theirs in zip(whole_model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_training_with_it_never_imports_torchdynamo() -> None:
    code = (
        "import sys, torch; from agent_pipeline.engine.optim import Adam\n"
        "m = torch.nn.Linear(3, 3); o = Adam(m.parameters(), lr=0.1)\n"
        "m(torch.randn(4, 3)).sum().backward(); o.step(); print('DYNAMO', 'torch._dynamo' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "DYNAMO False" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_stacked_adam_steps_each_row_as_adam_steps_that_model_and_leaves_idle_rows_exactly(
    weight_decay: float,
) -> None:
    # Given two rows of weights, each also held by a plain Adam of its own
    generator = torch.Generator().manual_seed(2)
    start = torch.randn(2, 7, generator=generator)
    stacked = StackedAdam(start.clone(), lr=1e-2, weight_decay=weight_decay)
    singles = [start[i].clone() for i in range(2)]
    adams = [Adam([torch.nn.Parameter(w)], lr=1e-2, weight_decay=weight_decay) for w in singles]
    # When row 1 sits out every third step (no rows in its batch, or stopped early)
    for step in range(12):
        grad = torch.randn(2, 7, generator=generator)
        active = [True, step % 3 != 0]
        stacked.step(grad, active)
        for i, adam in enumerate(adams):
            if active[i]:
                adam.params[0].grad = grad[i].clone()
                adam.step()
    # Then each row took exactly its own Adam's steps; float32 rounding is the only difference
    assert stacked.steps == [12, 8]
    for i, adam in enumerate(adams):
        torch.testing.assert_close(stacked.param[i], adam.params[0].detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(stacked.exp_avg_sq[i], adam.exp_avg_sq[0], rtol=0, atol=1e-9)


def test_stacked_adam_leaves_an_idle_row_bit_for_bit_unchanged() -> None:
    stacked = StackedAdam(torch.randn(3, 4), lr=0.1, weight_decay=0.1)
    stacked.step(torch.randn(3, 4), [True, True, True])
    before = [t.clone() for t in (stacked.param, stacked.exp_avg, stacked.exp_avg_sq)]
    stacked.step(torch.randn(3, 4), [True, False, True])
    for now, then in zip((stacked.param, stacked.exp_avg, stacked.exp_avg_sq), before, strict=True):
        assert torch.equal(now[1], then[1]) and not torch.equal(now[0], then[0])
    assert stacked.steps == [2, 1, 2]
