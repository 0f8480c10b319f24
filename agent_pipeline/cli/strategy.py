"""`ktrdr strategy`: check a strategy file of one's own before running it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent_pipeline.cli.app import cli
from agent_pipeline.config import get_settings
from agent_pipeline.errors import StrategyValidationError
from agent_pipeline.pipeline.user_strategy import (
    available_series,
    available_universes,
    checksum,
    close_only_series,
    problems,
    read_strategy_file,
)


@cli.group()
def strategy() -> None:
    """Check strategy files (run one with `ktrdr agent trigger/run --strategy FILE`)."""


@strategy.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print {valid, errors, checksum} as JSON.")
def validate_strategy(file: Path, as_json: bool) -> None:
    """Print every problem of FILE, one per line (exit 1 when there is any), or that it is valid."""

    try:
        text = read_strategy_file(file)
        data_dir = get_settings().data_dir
        found = problems(
            text,
            available_series(data_dir),
            close_only=close_only_series(data_dir),
            universes=available_universes(data_dir),
        )
    except StrategyValidationError as exc:
        text, found = "", list(exc.errors)
    if as_json:
        digest = checksum(text) if text else None
        click.echo(json.dumps({"valid": not found, "errors": found, "checksum": digest}, indent=2))
    elif found:
        for problem in found:
            click.echo(f"{file}: {problem}")
        noun = "problem" if len(found) == 1 else "problems"
        click.echo(f"Error: {file} is not a valid strategy ({len(found)} {noun})", err=True)
    else:
        click.echo(f"{file}: valid (sha256 {checksum(text)})")
    if found:
        sys.exit(1)
