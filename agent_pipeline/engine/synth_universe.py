"""Planted-edge universes (issue 24): N synthetic series, each with its own planted rule, sharing a market factor.

`synth_universe` stores N series `NAME.S00`, `NAME.S01`, ... (the naming of `ktrdr data import --universe`),
each made as `engine.synth` makes one series of that kind and strength, with its sidecar, and registers them as
a universe that owns them (so `--replace` retires them and `ktrdr data list` shows them). Symbol i draws from
its own random stream, spawned from (seed, i); the market draws from the stream (seed, MARKET_STREAM).

How the market factor enters. Every generator is driven by i.i.d. standard-normal shocks e_t: `trend`'s noise
term sigma e_t beside the symbol's drift, `reversal`'s AR(1) innovation s e_t, the whole return of `noise`.
In a universe, symbol i's shocks are

    e_{i,t} = sqrt(w) m_t + sqrt(1 - w) u_{i,t},

with m_t one market shock per bar, shared by every symbol, and u_{i,t} the symbol's own; all independent standard
normals. So e_{i,t} is again i.i.d. N(0, 1) over t, and each symbol taken alone has exactly the law of the
one-series synth: the same return variance, the same planted AR coefficient or drift share, hence the same
expected Sharpe of the planted rule (the strength), whatever the correlation. Only the cross-section changes.
Two symbols' returns correlate by w times q, the share of a return's variance that comes from the shocks:

- `reversal` and `noise`: q = 1. The AR(1) filter is linear and the same for every symbol, so two series
  filtered from shocks correlated w are correlated w at every lag-0 pair. The market part reverts too: the rule
  acts on the symbol's whole last return, so an equal-weight index of the universe carries the same reversal.
- `trend`: q = 1 / (1 + h), h the drift's share of the variance (`synth.trend_signal_share`). The drift stays
  each symbol's own (independent edges), so the index's trend is diluted by averaging.

Hence w = C / q makes the pairwise correlation of returns C. A trend so strong that C / q >= 1 is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent_pipeline.engine.data import dataset_path
from agent_pipeline.engine.synth import (
    DEFAULT_BARS,
    DEFAULT_LOCKBOX_FRACTION,
    RULES,
    Process,
    SynthInfo,
    bar_dates,
    check_request,
    check_timeframe,
    noise_returns,
    ohlcv_from_returns,
    reversal_returns,
    rule_correlation,
    sidecar_path,
    split_sharpes,
    store_synth,
    trend_returns,
    trend_signal_share,
)
from agent_pipeline.engine.universe import UniverseInfo, claim_name, read_registry, register_owned
from agent_pipeline.errors import DataError

# Fewest and most symbols a synthetic universe may have.
MIN_SIZE, MAX_SIZE = 2, 500
# Spawn key of the market's random stream: past every symbol's index, so no symbol shares it.
MARKET_STREAM = MAX_SIZE
Generator = Callable[..., tuple[np.ndarray, Process]]
GENERATORS: dict[str, Generator] = {"trend": trend_returns, "reversal": reversal_returns, "noise": noise_returns}


@dataclass(frozen=True)
class UniverseRecipe:
    """What a synthetic universe is made from: the same recipe gives the same bars."""

    kind: str
    strength: float  # the annualised Sharpe each symbol's planted rule is expected to earn
    seed: int
    size: int
    correlation: float = 0.0  # pairwise correlation of the symbols' returns, in [0, 1)
    bars: int = DEFAULT_BARS
    timeframe: str = "1d"
    lockbox_fraction: float = DEFAULT_LOCKBOX_FRACTION


@dataclass(frozen=True)
class SynthUniverse:
    """A synthesised universe as registered, and each series' record, in symbol order."""

    info: UniverseInfo
    series: tuple[SynthInfo, ...]


def check_recipe(recipe: UniverseRecipe) -> float:
    """The market weight w of the recipe, once every part of it is known to be sound.

    Raises:
        DataError: a bad kind, strength, bar count, timeframe, size, seed or correlation (one line).
    """
    check_request(recipe.kind, recipe.strength, recipe.bars)
    check_timeframe(recipe.timeframe)
    if not MIN_SIZE <= recipe.size <= MAX_SIZE:
        raise DataError(f"a synthetic universe needs {MIN_SIZE} to {MAX_SIZE} symbols, got {recipe.size}")
    if recipe.seed < 0:
        raise DataError(f"the seed must be a non-negative integer, got {recipe.seed}")
    if not 0 <= recipe.correlation < 1:  # NaN fails too
        raise DataError(f"correlation must be in [0, 1), got {recipe.correlation}")
    return market_weight(recipe)


def shock_share(kind: str, strength: float, timeframe: str) -> float:
    """q: the share of a return's variance that comes from the kind's shocks (the module docstring)."""
    if kind != "trend":
        return 1.0
    return 1 / (1 + trend_signal_share(rule_correlation(strength, timeframe)))


def market_weight(recipe: UniverseRecipe) -> float:
    """w = C / q: the share of each shock's variance drawn from the market, so that returns correlate by C.

    Raises:
        DataError: no weight below 1 reaches the correlation (a strong trend: its drifts are independent).
    """
    share = shock_share(recipe.kind, recipe.strength, recipe.timeframe)
    weight = recipe.correlation / share
    if weight >= 1:
        raise DataError(
            f"a trend of strength {recipe.strength:g} cannot reach correlation {recipe.correlation:g} between "
            f"its symbols (each has its own drift): at most {share:.3f}"
        )
    return weight


def universe_symbols(name: str, size: int) -> list[str]:
    """`NAME.S00` ... `NAME.S19`: two digits, three from 101 symbols up, so that names sort in order."""
    width = max(2, len(str(size - 1)))
    return [f"{name}.S{index:0{width}d}" for index in range(size)]


def stream(seed: int, index: int) -> np.random.Generator:
    """The random stream of symbol `index` (or of the market, MARKET_STREAM), independent of the others."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def universe_frames(recipe: UniverseRecipe) -> list[tuple[pd.DataFrame, SynthInfo]]:
    """Every symbol's bars and record, in memory, in symbol order.

    Raises:
        DataError: a bad recipe (`check_recipe`).
    """
    weight = check_recipe(recipe)
    market = stream(recipe.seed, MARKET_STREAM).standard_normal(recipe.bars) if weight > 0 else None
    return [series_frame(recipe, index, market, weight) for index in range(recipe.size)]


def series_frame(
    recipe: UniverseRecipe, index: int, market: np.ndarray | None, weight: float
) -> tuple[pd.DataFrame, SynthInfo]:
    """Symbol `index`'s bars, its shocks mixed from its own stream and the market's with weight w."""
    rng = stream(recipe.seed, index)
    own = rng.standard_normal(recipe.bars)
    shocks = own if market is None else math.sqrt(weight) * market + math.sqrt(1 - weight) * own
    returns, process = GENERATORS[recipe.kind](recipe.strength, rng, recipe.bars, recipe.timeframe, shocks=shocks)
    frame = ohlcv_from_returns(returns, rng, recipe.timeframe)
    frame.index = bar_dates(recipe.bars, recipe.timeframe)
    research, lockbox, cut = split_sharpes(recipe.kind, frame, recipe.timeframe, recipe.lockbox_fraction)
    info = SynthInfo(
        recipe.kind,
        float(recipe.strength),
        recipe.seed,
        recipe.bars,
        recipe.timeframe,
        RULES[recipe.kind],
        research,
        lockbox,
        recipe.lockbox_fraction,
        cut,
        {**process, "market_weight": weight},
        float(recipe.correlation),
    )
    return frame, info


def synth_universe(name: str, recipe: UniverseRecipe, *, data_dir: Path, replace: bool = False) -> SynthUniverse:
    """Make, store and register a planted-edge universe `name` of `recipe.size` OHLCV series with sidecars.

    Every check (the name, whether it is free, the recipe) and every series' generation runs before the first
    write, so a refused request writes nothing.

    Raises:
        DataError: a malformed or taken name (unless `replace`), or a bad recipe; one line.
    """
    name = claim_name(name, data_dir=data_dir, replace=replace)
    symbols = universe_symbols(name, recipe.size)
    dataset_path(symbols[-1], recipe.timeframe, data_dir)  # the longest name and the timeframe, before any write
    made = universe_frames(recipe)
    for symbol, (frame, info) in zip(symbols, made, strict=True):
        store_synth(frame, info, symbol=symbol, data_dir=data_dir)
    old = read_registry(data_dir).get(name)
    registered = register_owned(name, timeframe=recipe.timeframe, symbols=symbols, data_dir=data_dir)
    if old is not None and old.owned:
        keep = set(symbols) if old.timeframe == recipe.timeframe else set()
        for symbol in set(old.symbols) - keep:  # register_owned removed their series; their records go too
            sidecar_path(dataset_path(symbol, old.timeframe, data_dir)).unlink(missing_ok=True)
    return SynthUniverse(registered, tuple(info for _, info in made))
