"""What each dashboard page shows, read through the same store and insight functions as the JSON API and CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel

from agent_pipeline.config import Settings
from agent_pipeline.insight import overview
from agent_pipeline.insight.report import PLOT_NAMES, require_cycle, stored_plots
from agent_pipeline.insight.summary import report_rows
from agent_pipeline.llm.choice import IMPLEMENTATIONS
from agent_pipeline.pipeline.user_strategy import MAX_STRATEGY_BYTES, available_series
from agent_pipeline.store.history import SortKey, leaderboard
from agent_pipeline.store.operations import Operation, OperationsStore

# Leaderboard rows per page.
PAGE_SIZE = 25
# The designers a trigger may name (the API's and the CLI's choices).
DESIGNERS = ("auto", *IMPLEMENTATIONS)
# Labels of the gates the cycle's metadata records.
GATES = {"training_gate": "Training gate", "backtest_gate": "Backtest gate"}


class Phase(BaseModel):
    """One child operation of a cycle (design, training, backtest, assessment) with its timing."""

    operation_id: str
    kind: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    seconds: float | None
    error: str | None


def when(value: datetime | None) -> str:
    """A time as the pages print it (UTC, to the second)."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def duration(seconds: float | None) -> str:
    """`42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`."""
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if s >= size:
            return f"{s // size} {unit} {(s % size) // small_size} {small}"
    return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"


def overview_view(store: OperationsStore, settings: Settings) -> dict[str, Any]:
    """The overview's running cycles, last finished ones, spend and workers."""
    return {"overview": overview.collect(store, settings)}


def trigger_options(settings: Settings) -> dict[str, Any]:
    """The trigger form's choices: every series with data, every universe in both portfolio modes, the designers."""
    from agent_pipeline.engine.universe import universe_names  # lazy: start-up cost (pandas)

    pairs = sorted(available_series(settings.data_dir))
    universes = [
        f"universe {name} {timeframe} {mode}" for name, timeframe in universe_names(settings.data_dir)
        for mode in ("timing", "rank")
    ]  # fmt: skip
    return {
        "series_choices": [f"{symbol} {timeframe}" for symbol, timeframe in pairs],
        "universe_choices": universes,
        "designers": DESIGNERS,
    }


def history_view(
    store: OperationsStore, *, symbol: str | None, timeframe: str | None, sort: SortKey, page: int
) -> dict[str, Any]:
    """One leaderboard page (`ktrdr agent history`'s filters and sorts), and the links to its neighbours."""
    offset = (page - 1) * PAGE_SIZE
    found = leaderboard(
        store, symbol=symbol, timeframe=timeframe, sort=sort, limit=PAGE_SIZE + 1, offset=offset
    )  # one row more than shown: is there a next page?

    def link(to: int) -> str:
        query = {"symbol": symbol or "", "timeframe": timeframe or "", "sort": sort.value, "page": to}
        return "/ui/history?" + urlencode(query)

    return {
        "results": found[:PAGE_SIZE],
        "symbol": symbol or "",
        "timeframe": timeframe or "",
        "sort": sort.value,
        "sorts": [key.value for key in SortKey],
        "page": page,
        "first_rank": offset + 1,
        "previous_url": link(page - 1) if page > 1 else None,
        "next_url": link(page + 1) if len(found) > PAGE_SIZE else None,
    }


def cycle_view(store: OperationsStore, cycle_id: str) -> dict[str, Any]:
    """A cycle's page: the report's rows, its phases with timing, gates, assessment, strategy, plots, artifacts.

    Raises:
        OperationNotFoundError: unknown id, or not a research cycle.
    """
    cycle = require_cycle(store, cycle_id)
    meta = cycle.record
    # A finished cycle's plots are drawn once if missing; a running one shows what it has drawn so far.
    plots = stored_plots(store, cycle_id) if cycle.status.is_finished else []
    return {
        "cycle": cycle,
        "active": not cycle.status.is_finished,
        "rows": report_rows(cycle),
        "phases": phases_of(store, cycle),
        "gates": [(label, gate) for key, label in GATES.items() if (gate := meta.get(key))],
        "assessment": meta.assessment,
        "strategy_yaml": strategy_text(meta.strategy_path),
        "plots": [path.name for path in plots if path.name in PLOT_NAMES],
        "artifacts": [(label, where) for key, label in ARTIFACTS.items() if (where := meta.get(key))],
    }


# Artifact paths a cycle records, and their labels.
ARTIFACTS = {
    "strategy_path": "Strategy file",
    "model_path": "Model",
    "backtest_dir": "Backtest files",
    "assessment_path": "Assessment file",
    "report_dir": "Report folder",
}


def phases_of(store: OperationsStore, cycle: Operation) -> list[Phase]:
    """The cycle's child operations, oldest first, with how long each ran."""
    children = sorted(store.list(parent_operation_id=cycle.operation_id, limit=50), key=lambda op: op.created_at)
    return [
        Phase(
            operation_id=child.operation_id,
            kind=child.operation_type.value,
            status=child.status.value,
            started_at=child.started_at,
            completed_at=child.completed_at,
            seconds=(child.completed_at - child.started_at).total_seconds()
            if child.started_at and child.completed_at
            else None,
            error=child.error_message,
        )
        for child in children
    ]


def strategy_text(path: str | None) -> str | None:
    """The strategy file's YAML when it is readable from here (the API may run on another host than the worker)."""
    if not path:
        return None
    file = Path(path)
    if file.suffix not in (".yaml", ".yml") or not file.is_file() or file.stat().st_size > MAX_STRATEGY_BYTES:
        return None
    return file.read_text(encoding="utf-8", errors="replace")
