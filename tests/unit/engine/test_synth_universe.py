"""Planted-edge universes: returns correlate as asked, each rule still earns the strength, nothing half-written."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.data import dataset_path
from agent_pipeline.engine.synth import read_sidecar, rule_sharpe, sidecar_path
from agent_pipeline.engine.synth_universe import (
    UniverseRecipe,
    synth_universe,
    universe_frames,
    universe_symbols,
)
from agent_pipeline.engine.universe import REGISTRY, read_registry
from agent_pipeline.errors import DataError

SIZE, BARS = 20, 5000
# How far the mean pairwise correlation of 20 symbols' returns may land from C. Over 40 seeds its sd is 0.005
# at C = 0.3 (0.001 at C = 0): 0.02 is four of those, and still catches a trend whose own drifts were left out
# of the weight (at strength 3 it would land at C / (1 + h) = 0.268).
CORRELATION_TOLERANCE = 0.02
# How far the rule's Sharpe averaged over 20 symbols may land from the strength. One symbol's Sharpe on 5000 bars
# scatters by about sqrt(252 / 5000) = 0.22 (0.30 for trend: its drift persists); the mean of 20 by 0.045 to
# 0.075 over 40 seeds (the shared factor correlates the symbols' rule returns a little): 0.25 is over 3 of those.
SHARPE_TOLERANCE = 0.25


def returns(frame: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def mean_pairwise_correlation(frames: list[pd.DataFrame]) -> float:
    matrix = np.corrcoef(np.array([returns(frame) for frame in frames]))
    return float(matrix[np.triu_indices(len(frames), 1)].mean())


@pytest.mark.parametrize("correlation", [0.0, 0.3])
@pytest.mark.parametrize(("kind", "strength"), [("reversal", 1.5), ("trend", 3.0), ("noise", 0.0)])
def test_the_symbols_returns_correlate_by_the_correlation_asked(kind: str, strength: float, correlation: float) -> None:
    made = universe_frames(UniverseRecipe(kind, strength, 11, SIZE, correlation, BARS))
    measured = mean_pairwise_correlation([frame for frame, _ in made])
    assert abs(measured - correlation) < CORRELATION_TOLERANCE, measured


@pytest.mark.parametrize("correlation", [0.0, 0.3])
@pytest.mark.parametrize("kind", ["reversal", "trend"])
def test_each_symbols_rule_still_earns_the_strength_on_average(kind: str, correlation: float) -> None:
    made = universe_frames(UniverseRecipe(kind, 1.5, 11, SIZE, correlation, BARS))
    sharpes = [rule_sharpe(kind, frame) for frame, _ in made]
    assert abs(np.mean(sharpes) - 1.5) < SHARPE_TOLERANCE, sharpes


def test_each_symbol_keeps_the_one_series_volatility_and_reversal() -> None:
    made = universe_frames(UniverseRecipe("reversal", 2.0, 3, 4, 0.6, BARS))
    for frame, info in made:
        r = returns(frame)
        assert np.std(r) == pytest.approx(0.01, rel=0.05)
        assert np.corrcoef(r[:-1], r[1:])[0, 1] == pytest.approx(info.process["ar_coefficient"], abs=0.05)
        assert info.correlation == 0.6 and info.process["market_weight"] == 0.6


def test_the_same_recipe_gives_the_same_bars_and_a_symbols_bars_do_not_depend_on_the_size() -> None:
    small = universe_frames(UniverseRecipe("trend", 1.0, 5, 2, 0.3, 300))
    large = universe_frames(UniverseRecipe("trend", 1.0, 5, 3, 0.3, 300))
    for (first, _), (second, _) in zip(small, large[:2], strict=True):
        pd.testing.assert_frame_equal(first, second)
    assert not small[0][0]["close"].equals(small[1][0]["close"])


def test_symbols_are_numbered_so_that_they_sort() -> None:
    assert universe_symbols("U", 3) == ["U.S00", "U.S01", "U.S02"]
    assert universe_symbols("U", 100)[-1] == "U.S99"
    assert universe_symbols("U", 101)[-1] == "U.S100" and universe_symbols("U", 101)[0] == "U.S000"


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (UniverseRecipe("reversal", 1.0, 1, 1), "needs 2 to 500 symbols, got 1"),
        (UniverseRecipe("reversal", 1.0, 1, 501), "needs 2 to 500 symbols, got 501"),
        (UniverseRecipe("reversal", 1.0, 1, 3, 1.0), r"correlation must be in \[0, 1\)"),
        (UniverseRecipe("reversal", 1.0, 1, 3, -0.1), r"correlation must be in \[0, 1\)"),
        (UniverseRecipe("reversal", 1.0, 1, 3, math.nan), r"correlation must be in \[0, 1\)"),
        (UniverseRecipe("reversal", 1.0, -1, 3), "non-negative"),
        (UniverseRecipe("sideways", 1.0, 1, 3), "unknown kind"),
        (UniverseRecipe("trend", 4.0, 1, 3, 0.9), "cannot reach correlation 0.9"),
        (UniverseRecipe("trend", 1.0, 1, 3, bars=300, timeframe="2d"), "invalid timeframe"),
    ],
)
def test_a_bad_recipe_is_refused(recipe: UniverseRecipe, message: str) -> None:
    with pytest.raises(DataError, match=message):
        universe_frames(recipe)


def test_synth_universe_stores_registers_and_records_each_series(tmp_path) -> None:
    made = synth_universe("planted", UniverseRecipe("reversal", 1.0, 2, 3, 0.3, 300), data_dir=tmp_path)
    assert made.info.name == "PLANTED" and made.info.symbols == ("PLANTED.S00", "PLANTED.S01", "PLANTED.S02")
    assert made.info.common_bars == 300 and made.info.close_only is False
    universe = read_registry(tmp_path)["PLANTED"]
    assert universe.owned and universe.symbols == made.info.symbols
    for symbol, info in zip(made.info.symbols, made.series, strict=True):
        assert read_sidecar(dataset_path(symbol, "1d", tmp_path)) == info
        assert (info.kind, info.strength, info.seed, info.correlation) == ("reversal", 1.0, 2, 0.3)


def test_a_taken_name_is_refused_and_replace_retires_what_the_new_universe_drops(tmp_path) -> None:
    synth_universe("planted", UniverseRecipe("trend", 1.0, 2, 3, bars=300), data_dir=tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(DataError, match="universe PLANTED exists already .*pass --replace"):
        synth_universe("planted", UniverseRecipe("trend", 1.0, 9, 2, bars=300), data_dir=tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    synth_universe("planted", UniverseRecipe("noise", 0.0, 9, 2, bars=300), data_dir=tmp_path, replace=True)
    dropped = dataset_path("PLANTED.S02", "1d", tmp_path)
    assert not dropped.exists() and not sidecar_path(dropped).exists()
    assert json.loads((tmp_path / REGISTRY).read_text())["PLANTED"]["symbols"] == ["PLANTED.S00", "PLANTED.S01"]
    kept = read_sidecar(dataset_path("PLANTED.S01", "1d", tmp_path))
    assert kept is not None and kept.kind == "noise"


@pytest.mark.parametrize(
    ("name", "recipe", "message"),
    [
        ("a.b", UniverseRecipe("trend", 1.0, 1, 3, bars=300), "invalid universe name"),
        ("SP500_20", UniverseRecipe("trend", 1.0, 1, 3, bars=300), "bundled universe"),
        ("ok", UniverseRecipe("trend", 1.0, 1, 3, 0.98, bars=300), "cannot reach correlation"),
        ("ok", UniverseRecipe("trend", 1.0, 1, 3, bars=100), "at least 200 bars"),
    ],
)
def test_a_refused_request_writes_nothing(tmp_path, name: str, recipe: UniverseRecipe, message: str) -> None:
    with pytest.raises(DataError, match=message):
        synth_universe(name, recipe, data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
