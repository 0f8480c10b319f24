"""A user's own strategy: checked like a designed one, then run through the same gates and backtest.

`ktrdr strategy validate FILE`, `--strategy FILE` on `ktrdr agent trigger/run` and `"strategy": "<yaml>"` in the
API's trigger body all come through here. The design phase then skips the designer (`use_user_strategy`) and
records `designer: user` with the document's sha256 checksum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import publish_strategy
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.engine.strategy import close_only_problems, load_strategy_text, save_strategy
from agent_pipeline.errors import StrategyValidationError
from agent_pipeline.pipeline.context import MAX_STRATEGY_BYTES, CycleContext

if TYPE_CHECKING:
    from agent_pipeline.engine.strategy import Strategy
    from agent_pipeline.store.operations import OperationsStore

# What the cycle's metadata records as its designer when the user wrote the strategy.
USER_DESIGNER = "user"


def checksum(text: str) -> str:
    """The sha256 hex digest of the document's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_strategy_file(path: Path) -> str:
    """The text of a strategy file, refused before reading when it is too large or not UTF-8.

    Raises:
        StrategyValidationError: the file is larger than MAX_STRATEGY_BYTES or not UTF-8 text.
    """
    size = path.stat().st_size
    if size > MAX_STRATEGY_BYTES:
        raise StrategyValidationError([f"{path}: {size} bytes is larger than the {MAX_STRATEGY_BYTES} byte limit"])
    return decode_strategy(path.read_bytes(), name=str(path))


def decode_strategy(data: bytes, *, name: str) -> str:
    """The text of a strategy document's bytes (a file read, a dashboard upload) named `name` in errors.

    Raises:
        StrategyValidationError: more than MAX_STRATEGY_BYTES, or not UTF-8 text.
    """
    if len(data) > MAX_STRATEGY_BYTES:
        raise StrategyValidationError([f"{name}: {len(data)} bytes is larger than the {MAX_STRATEGY_BYTES} byte limit"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StrategyValidationError([f"{name}: not UTF-8 text"]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as a file read in text mode


def problems(
    text: str,
    available: Iterable[tuple[str, str]] | None = None,
    *,
    close_only: Iterable[tuple[str, str]] = (),
    universes: Iterable[tuple[str, str]] | None = None,
) -> list[str]:
    """Every problem of a strategy document, in document order; empty when it is valid.

    The data check runs on the raw `symbol` (or `universe`) and `timeframe` even when other fields are wrong, so one
    pass reports all it can (pydantic's own cross-field checks run only once the fields are valid). `close_only`: the
    pairs whose series have closes only (`close_only_series`, a close-only universe by its name); an indicator that
    needs more is a problem there. `universes`: the (universe, timeframe) pairs a `universe:` strategy may name.
    """
    import yaml

    size = len(text.encode("utf-8"))
    if size > MAX_STRATEGY_BYTES:
        return [f"{size} bytes is larger than the {MAX_STRATEGY_BYTES} byte limit"]
    try:
        strategy = load_strategy_text(text)
        found: list[str] = []
        if (strategy.symbol.upper(), strategy.timeframe) in {(s.upper(), t) for s, t in close_only}:
            found = close_only_problems(strategy)
    except StrategyValidationError as exc:
        found = list(exc.errors)
        if found and found[0].startswith("not valid YAML"):
            return found
    document = yaml.safe_load(text)
    if isinstance(document, dict):
        found += _data_problems(document, available, universes)
    return found


def _data_problems(
    document: dict[str, Any],
    available: Iterable[tuple[str, str]] | None,
    universes: Iterable[tuple[str, str]] | None,
) -> list[str]:
    field, known = ("universe", universes) if document.get("universe") is not None else ("symbol", available)
    name, timeframe = document.get(field), document.get("timeframe")
    if known is None or not isinstance(name, str) or not isinstance(timeframe, str):
        return []  # unchecked, or already reported as a field error
    pairs = {(s.upper(), t) for s, t in known}
    if (name.upper(), timeframe) in pairs:
        return []
    offered = ", ".join(f"{s} {t}" for s, t in sorted(pairs)) or "none"
    return [f"{field}/timeframe: no data for {name} {timeframe} (available: {offered})"]


def check(
    text: str,
    available: Iterable[tuple[str, str]] | None = None,
    *,
    close_only: Iterable[tuple[str, str]] = (),
    universes: Iterable[tuple[str, str]] | None = None,
) -> Strategy:
    """The validated strategy.

    Raises:
        StrategyValidationError: with every problem `problems` finds.
    """

    found = problems(text, available, close_only=close_only, universes=universes)
    if found:
        raise StrategyValidationError(found)
    return load_strategy_text(text)


def available_series(data_dir: Path | None) -> set[tuple[str, str]]:
    """The (symbol, timeframe) pairs that have data (reads file names only, no bars)."""
    from agent_pipeline.engine.data import available_pairs  # lazy: start-up cost (pandas)

    return available_pairs(data_dir)


def close_only_series(data_dir: Path | None) -> set[tuple[str, str]]:
    """The pairs of `available_series` whose series have closes only, and the close-only universes by name."""
    from agent_pipeline.engine.data import close_only_pairs  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.universe import list_universes  # lazy: start-up cost (pandas)

    universes = {(u.name, u.timeframe) for u in list_universes(data_dir) if u.close_only}
    return close_only_pairs(data_dir) | universes


def available_universes(data_dir: Path | None) -> set[tuple[str, str]]:
    """The (universe, timeframe) pairs a `universe:` strategy may name: the bundled ones and the user's."""
    from agent_pipeline.engine.universe import list_universes  # lazy: start-up cost (pandas)

    return {(u.name, u.timeframe) for u in list_universes(data_dir)}


def use_user_strategy(store: OperationsStore, context: CycleContext) -> dict[str, Any]:
    """The design phase for a user's strategy: check it again, save it, record `designer: user` and its checksum.

    Returns:
        The design operation's result summary.
    """
    from datetime import UTC, datetime

    assert context.strategy is not None
    config = get_settings()
    data_dir = synced_data_dir()
    strategy = check(
        context.strategy,
        available_series(data_dir),
        close_only=close_only_series(data_dir),
        universes=available_universes(data_dir),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path = str(save_strategy(strategy, Path(config.strategies_dir or "."), stamp=stamp).resolve())
    digest = checksum(context.strategy)
    store.merge_metadata(
        context.cycle_id,
        {
            "strategy_name": strategy.name,
            "strategy_path": path,
            "strategy_url": publish_strategy(path),
            "designer": USER_DESIGNER,
            "strategy_checksum": digest,
            "symbol": strategy.symbol,
            "timeframe": strategy.timeframe,
            "cost_usd": 0.0,
        },
    )
    return {
        "strategy_name": strategy.name,
        "strategy_path": path,
        "designer": USER_DESIGNER,
        "checksum": digest,
        "attempts": 0,
        "notes": "the user's strategy, run as given",
        "usage": None,
    }
