"""`ktrdr agent lockbox-log`: every read of a series' lockbox, oldest first (issue 25; see store/lockbox.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from agent_pipeline.cli.agent import agent
from agent_pipeline.cli.app import console, echo_json, open_store
from agent_pipeline.store.lockbox import LockboxRead, list_reads

# Hex digits of a checksum the table shows (the JSON has them whole).
SHORT_DIGEST = 12


@agent.command("lockbox-log")
@click.option("--symbol", help="Only reads of this symbol's lockbox.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def lockbox_log(symbol: str | None, as_json: bool) -> None:
    """Every read of a lockbox: which cycle's strategy and model traded it, and when.

    A strategy document and model read before are refused: the cycle shows the first read's result again
    (`repeat_of`), and no read is logged.
    """
    reads = list_reads(open_store(), symbol=symbol)
    if as_json:
        echo_json([read.to_dict() for read in reads])
    else:
        console().print(reads_table(reads))


def reads_table(reads: Sequence[LockboxRead]) -> Any:
    """The log as a table; checksums shortened, a null one (a read from before the log) shown as `-`."""
    from rich.table import Table  # lazy: start-up cost

    if not reads:
        return "No lockbox reads yet."
    table = Table(title=f"Lockbox reads: {len(reads)}", title_justify="left")
    for header in ("At (UTC)", "Series", "Cycle", "Strategy sha256", "Model sha256"):
        table.add_column(header, no_wrap=True)
    for read in reads:
        table.add_row(
            read.at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{read.symbol} {read.timeframe}",
            read.cycle_id,
            (read.strategy_checksum or "-")[:SHORT_DIGEST],
            (read.model_sha256 or "-")[:SHORT_DIGEST],
        )
    return table
