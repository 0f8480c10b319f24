"""Planted-edge synthetic series: the rule earns the Sharpe asked for, noise has no edge, bars are valid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.data import load_bars
from agent_pipeline.engine.synth import (
    read_sidecar,
    rule_correlation,
    rule_positions,
    rule_sharpe,
    sidecar_path,
    synth_bars,
    trend_signal_share,
    write_synth,
)
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.errors import DataError

SEEDS = range(20)
# How far the mean research Sharpe over SEEDS may land from the strength asked (one seed's sd is about 0.3).
TOLERANCE = 0.15


def research(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[: lockbox_start(len(frame), 0.2)]


@pytest.mark.parametrize("kind", ["trend", "reversal"])
@pytest.mark.parametrize("strength", [1.0, 1.5])
def test_the_rule_earns_the_strength_asked_on_average(kind: str, strength: float) -> None:
    sharpes = [synth_bars(kind, strength, seed)[1].research_sharpe for seed in SEEDS]
    assert abs(np.mean(sharpes) - strength) < TOLERANCE, sharpes


@pytest.mark.parametrize("kind", ["trend", "reversal"])
def test_strength_zero_plants_no_edge(kind: str) -> None:
    sharpes = [synth_bars(kind, 0.0, seed)[1].research_sharpe for seed in SEEDS]
    assert abs(np.mean(sharpes)) < TOLERANCE


@pytest.mark.parametrize("rule", ["trend", "reversal"])
def test_neither_rule_has_an_edge_on_noise(rule: str) -> None:
    sharpes = [rule_sharpe(rule, research(synth_bars("noise", 0.0, seed)[0])) for seed in SEEDS]
    assert abs(np.mean(sharpes)) < TOLERANCE


def test_the_info_matches_rule_sharpe_on_the_research_slice() -> None:
    frame, info = synth_bars("reversal", 1.0, 4)
    assert info.research_sharpe == pytest.approx(rule_sharpe("reversal", research(frame)))
    assert info.lockbox_start == lockbox_start(len(frame), 0.2)
    assert info.process["ar_coefficient"] == pytest.approx(-rule_correlation(1.0))


@pytest.mark.parametrize("kind", ["trend", "reversal", "noise"])
def test_the_same_seed_gives_the_same_bars(kind: str) -> None:
    strength = 0.0 if kind == "noise" else 1.0
    first, _ = synth_bars(kind, strength, 7)
    pd.testing.assert_frame_equal(first, synth_bars(kind, strength, 7)[0])
    assert not first["close"].equals(synth_bars(kind, strength, 8)[0]["close"])


@pytest.mark.parametrize("kind", ["trend", "reversal", "noise"])
def test_bars_are_valid_business_day_ohlcv(kind: str) -> None:
    frame, _ = synth_bars(kind, 0.0 if kind == "noise" else 2.0, 1)
    assert len(frame) == 5031 and frame["open"].iloc[0] == 100.0
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["low"] > 0).all() and (frame["volume"] > 0).all()
    assert frame.index.equals(pd.bdate_range("1999-01-04", periods=5031))


@pytest.mark.parametrize(
    ("kind", "strength", "message"),
    [
        ("trend", -0.5, "between 0 and 4"),
        ("reversal", 4.5, "between 0 and 4"),
        ("trend", math.nan, "between 0 and 4"),
        ("noise", 1.0, "noise has no edge"),
        ("sideways", 1.0, "unknown kind"),
    ],
)
def test_a_bad_request_is_refused(kind: str, strength: float, message: str) -> None:
    with pytest.raises(DataError, match=message):
        synth_bars(kind, strength, 1)


def test_positions_are_decided_at_the_close_from_past_bars_only() -> None:
    frame, _ = synth_bars("trend", 1.0, 2, bars=300)
    positions = rule_positions("trend", frame)
    assert (positions[:20] == 0).all() and set(np.unique(positions[20:])) <= {-1.0, 1.0}
    changed = frame.copy()
    changed.iloc[150:, changed.columns.get_loc("close")] *= 1.5  # the future moves; earlier positions do not
    np.testing.assert_array_equal(rule_positions("trend", changed)[:150], positions[:150])
    returns = np.log(frame["close"]).diff().to_numpy()
    np.testing.assert_array_equal(rule_positions("reversal", frame)[1:], -np.sign(returns[1:]))


def test_the_trend_calibration_solves_its_quadratic() -> None:
    rho, phi, window = rule_correlation(2.0), 0.98, 20
    share = trend_signal_share(rho, phi, window)
    lags = np.arange(window)
    cov = share * np.sum(phi ** (lags + 1))
    var_sum = window + share * np.sum(phi ** np.abs(lags[:, None] - lags[None, :]))
    assert cov / math.sqrt(var_sum * (1 + share)) == pytest.approx(rho)
    assert trend_signal_share(0.0) == 0.0


def test_the_per_bar_sharpe_formula_inverts() -> None:
    rho = rule_correlation(1.5)
    per_bar = math.sqrt(2 / math.pi) * rho / math.sqrt(1 - 2 * rho**2 / math.pi)
    assert per_bar * math.sqrt(252) == pytest.approx(1.5)


def test_write_synth_stores_the_series_and_a_sidecar_that_a_reimport_voids(tmp_path) -> None:
    stored, info = write_synth("trend", 1.0, 3, symbol="syn", timeframe="1d", data_dir=tmp_path, bars=400)
    assert stored.path == tmp_path / "SYN_1d.csv.gz" and stored.bars == 400
    assert sidecar_path(stored.path) == tmp_path / "SYN_1d.synth.json"
    assert read_sidecar(stored.path) == info
    loaded = load_bars("SYN", "1d", tmp_path)
    assert rule_sharpe("trend", research(loaded)) == pytest.approx(info.research_sharpe)
    write_synth("noise", 0.0, 3, symbol="other", timeframe="1d", data_dir=tmp_path, bars=400)
    stored.path.write_bytes((tmp_path / "OTHER_1d.csv.gz").read_bytes())  # a different series now
    assert read_sidecar(stored.path) is None


def test_a_bad_name_writes_nothing(tmp_path) -> None:
    with pytest.raises(DataError, match="invalid symbol"):
        write_synth("trend", 1.0, 3, symbol="../x", timeframe="1d", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
