"""`celery -A agent_pipeline worker` and `ktrdr worker` start real workers that `inspect` can reach."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent_pipeline.cli import worker_argv
from tests.stack import use_stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def test_inspect_registered_reaches_a_plain_celery_worker(make_stack, monkeypatch) -> None:
    stack = make_stack()
    use_stack_env(stack, monkeypatch)
    stack.start_worker("plain", "research,gpu")
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "agent_pipeline", "inspect", "registered", "--timeout", "5"],
        env={**stack.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "plain@" in done.stdout
    for name in ("ktrdr.cycle.design", "ktrdr.cycle.train", "ktrdr.gpu.train_model", "ktrdr.cycle.record_failure"):
        assert name in done.stdout


def test_worker_argv_gives_the_gpu_queue_one_training_per_child_process() -> None:
    gpu = worker_argv("gpu", 1, "INFO")
    assert gpu[gpu.index("-Q") + 1] == "gpu"
    assert gpu[gpu.index("--pool") + 1] == "prefork"
    assert gpu[gpu.index("--max-tasks-per-child") + 1] == "1"
    research = worker_argv("research", 2, "INFO")
    assert "--max-tasks-per-child" not in research
    assert research[research.index("-c") + 1] == "2"


def test_worker_rejects_an_unknown_queue_with_a_usage_error() -> None:
    from click.testing import CliRunner

    from agent_pipeline.cli import cli

    result = CliRunner().invoke(cli, ["worker", "--queues", "cpu"])
    assert result.exit_code == 2
    assert "unknown queue(s) cpu" in result.output
