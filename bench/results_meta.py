"""Provenance of a results file: what made it, from which commit, when, and with which settings (issue 23).

Every JSON file in bench/results/ carries these top-level keys, so a figure quoted from it can be reproduced:
`command`, `commit`, `date` and `settings` (`gates`: every gate threshold; `folds`; `lockbox_fraction`;
`cycles`). A bench calls `reset_gate_env()` first, so a gate variable left in the caller's shell never changes a
table unless the bench was asked to keep it (`--keep-gate-env`), then `stamp(record, ...)` before it writes;
`add_options` and `write` do both the same way in every bench. `cycles` is null where a bench runs no research
cycle, and `settings.cycles_note` then says why.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
# The environment variables of the two gates' thresholds (see agent_pipeline/config.py).
GATE_ENV_PREFIXES = ("TRAINING_GATE_", "BACKTEST_GATE_")
PROVENANCE_KEYS = ("command", "commit", "date", "settings")
# Results files differ from the commit whenever a bench has run; they say nothing about the code that ran.
NOT_CODE = ":(exclude)bench/results"
SETTINGS_KEYS = ("gates", "folds", "lockbox_fraction", "cycles")


def reset_gate_env(*, keep: bool = False) -> dict[str, str]:
    """Drop every gate threshold variable from this process's environment (its children inherit that).

    Returns the variables dropped (or kept, with `keep=True`), so the bench can say so.
    """
    found = {k: v for k, v in os.environ.items() if k.startswith(GATE_ENV_PREFIXES)}
    if not keep:
        for name in found:
            del os.environ[name]
        if found:
            print(f"gate variables reset to their defaults: {', '.join(sorted(found))}", file=sys.stderr)
    from agent_pipeline.config import get_settings

    get_settings.cache_clear()
    return found


def gate_thresholds() -> dict[str, dict[str, Any]]:
    """Every gate threshold in force in this process, as the cycle's gates read them."""
    from agent_pipeline.config import get_settings
    from agent_pipeline.gates import BacktestThresholds, TrainingThresholds

    settings = get_settings()
    return {
        "training": dataclasses.asdict(TrainingThresholds.from_settings(settings)),
        "backtest": dataclasses.asdict(BacktestThresholds.from_settings(settings)),
    }


def commit() -> str:
    """The checkout's commit, `+dirty` when tracked files (results files aside) differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", NOT_CODE], cwd=ROOT, check=False).returncode
            != 0
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def uncommitted() -> list[str]:
    """Tracked files that differ from the commit: what `+dirty` means for this run."""
    try:
        names = subprocess.run(
            ["git", "diff", "--name-only", "HEAD", "--", ".", NOT_CODE],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return names.split()


def command_line() -> str:
    """This process's command line, with the script's path relative to the repository."""
    argv = list(sys.argv)
    if argv:
        with contextlib.suppress(ValueError):  # a script outside the repository keeps its path
            argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
    return "python " + shlex.join(argv)


def stamp(
    record: dict[str, Any],
    *,
    cycles: int | None,
    folds: int | None = None,
    lockbox_fraction: float | None = None,
    command: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """`record` with the provenance keys first; folds and lockbox fraction default to the settings in force."""
    from agent_pipeline.config import get_settings

    current = get_settings()
    provenance = {
        "command": command or command_line(),
        "commit": commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "gates": gate_thresholds(),
            "folds": folds if folds is not None else current.walk_forward_folds,
            "lockbox_fraction": lockbox_fraction if lockbox_fraction is not None else current.lockbox_fraction,
            "cycles": cycles,
            **settings,
        },
    }
    if provenance["commit"].endswith("+dirty"):
        provenance["uncommitted"] = uncommitted()
    return provenance | {k: v for k, v in record.items() if k not in provenance}


def add_options(parser: argparse.ArgumentParser, results: Path) -> None:
    """`--results FILE` (default `results`) and `--keep-gate-env`, the same in every bench."""
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    parser.add_argument("--results", type=Path, default=results, help=f"results file (default {shown})")
    parser.add_argument(
        "--keep-gate-env",
        action="store_true",
        help="keep TRAINING_GATE_* / BACKTEST_GATE_* from the environment (default: reset to their defaults)",
    )


def write(path: Path, record: dict[str, Any], *, cycles: int | None, **settings: Any) -> dict[str, Any]:
    """Stamp `record` (see `stamp`) and write it to `path` as indented JSON, atomically; returns what was written.

    Raises:
        ValueError: `cycles` is None and no `cycles_note` says why the bench runs no research cycle.
    """
    if cycles is None and not settings.get("cycles_note"):
        raise ValueError("cycles is None: say why in cycles_note")
    from agent_pipeline.engine.files import atomic_write

    stamped = stamp(record, cycles=cycles, **settings)
    atomic_write(path, (json.dumps(stamped, indent=1, default=str) + "\n").encode())
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    print(f"results: {shown}")
    return stamped
