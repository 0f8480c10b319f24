"""Running ktrdr as a user does: the installed script in a fresh shell's environment, and the spec's scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from click.testing import Result

    from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
# The virtual environment's scripts folder, where `ktrdr` is installed.
BIN = Path(sys.executable).parent
SCRIPTS = Path(__file__).parent / "scripts"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: none of the test stack's settings, no broker, no database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "ANTHROPIC_", "DATABASE_URL"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def ktrdr(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `ktrdr` script as a user would."""
    return subprocess.run(
        [str(BIN / "ktrdr"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def ktrdr_env(stack: Stack) -> dict[str, str]:
    """This process's environment pointed at `stack`, with `ktrdr` on the PATH."""
    return {**os.environ, **stack.env, "PATH": f"{BIN}:{os.environ['PATH']}"}


def run_script(name: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one of the spec's shell scripts (tests/e2e/scripts) with bash."""
    return subprocess.run(
        ["bash", str(SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def invoke(*args: str) -> Result:
    """Run the CLI in-process, settings read afresh from the (monkeypatched) environment."""
    from click.testing import CliRunner

    from agent_pipeline.cli import cli
    from agent_pipeline.config import reset_settings

    reset_settings()
    return CliRunner().invoke(cli, list(args), prog_name="ktrdr")


def data_dir() -> Path:
    """The data folder the settings name now (tests set KTRDR_DATA_DIR)."""
    from agent_pipeline.config import get_settings

    folder = get_settings().data_dir
    assert folder is not None
    return folder
