"""The decay alarm (issue 27): the CUSUM against Siegmund's run lengths, its false alarms, its delay, its state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agent_pipeline.engine.decay import (
    DEFAULT_ARL0,
    DecayBaseline,
    DecayMonitor,
    DecayReason,
    DecayState,
    cusum_threshold,
    siegmund_arl,
)

# A discovery like the bench's at strength 2.0: a per-bar Sharpe of 0.1 over 4,000 bars, the best of 20 trials.
BASELINE = DecayBaseline(backtest_mean=0.001, backtest_std=0.01, trials=20, backtest_bars=4000)
FORWARD_BARS = 600


def run_length(monitor: DecayMonitor, rng: np.random.Generator, mean: float, std: float) -> int:
    """Bars until `monitor` fires on i.i.d. N(mean, std) returns, fed in chunks as an account's steps would."""
    while not monitor.state.fired:
        monitor.update(rng.normal(mean, std, 500), first=monitor.state.bars)
    assert monitor.state.fired_bar is not None
    return monitor.state.fired_bar + 1


def test_the_recursion_has_siegmunds_in_control_run_length_at_k_half_h_five() -> None:
    # Given a monitor whose log-likelihood CUSUM is the tabular one in sigma units (d = 1: k = 0.5) at h = 5
    unit = DecayBaseline(backtest_mean=1.0, backtest_std=1.0, trials=1, backtest_bars=100)
    assert siegmund_arl(-0.5, 5.0) == pytest.approx(938.2, abs=0.1)  # Montgomery's two-sided 465, times two
    rng = np.random.default_rng(1954)
    # When it watches in-control returns (mean exactly mu0 = 1) until it fires, 1,000 times
    lengths = [run_length(DecayMonitor(unit, state=DecayState(threshold=5.0)), rng, 1.0, 1.0) for _ in range(1000)]
    # Then the mean run length is Siegmund's 938 (the Monte Carlo's standard error is about 3%)
    assert np.mean(lengths) == pytest.approx(938.2, rel=0.1)


def test_the_threshold_designed_for_an_arl0_gives_that_run_length_on_a_small_edge() -> None:
    # d = 0.2 (k = 0.1): a threshold of about 22 standard deviations for 1,000 bars between false alarms
    unit = DecayBaseline(backtest_mean=0.2, backtest_std=1.0, trials=1, backtest_bars=100)
    assert siegmund_arl(-0.1, cusum_threshold(0.1, 1000.0)) == pytest.approx(1000.0)
    rng = np.random.default_rng(7)
    lengths = [run_length(DecayMonitor(unit, arl0=1000.0), rng, 0.2, 1.0) for _ in range(400)]
    assert np.mean(lengths) == pytest.approx(1000.0, rel=0.15)


def test_false_alarms_under_h0_stay_within_the_bound_of_an_accounts_600_bars() -> None:
    # Given forward returns drawn from H0 itself: the shrunk mean, the backtest's standard deviation
    rng = np.random.default_rng(27)
    fired = 0
    for _ in range(500):
        returns = rng.normal(BASELINE.shrunk_mean, BASELINE.backtest_std, FORWARD_BARS)
        fired += DecayMonitor(BASELINE).update(returns).fired
    # Then the alarm rate is below an exponential run length's 1 - exp(-600 / arl0) (14%), with 3 standard errors
    bound = 1 - math.exp(-FORWARD_BARS / DEFAULT_ARL0)
    assert 0 < fired / 500 <= bound + 3 * math.sqrt(bound * (1 - bound) / 500)


def test_a_continuing_edge_almost_never_raises_the_alarm() -> None:
    rng = np.random.default_rng(3)
    runs = [DecayMonitor(BASELINE).update(rng.normal(0.001, 0.01, FORWARD_BARS)).fired for _ in range(200)]
    assert sum(runs) / 200 <= 0.10  # Siegmund: a run length near 14,000 bars here, 4% within 600


def test_a_reversed_edge_fires_within_a_bound() -> None:
    # The edge turns the other way: the forward mean is minus the backtest's. The CUSUM climbs by
    # d (mu0 + 0.001) / sigma - d^2 / 2 = 0.0095 per bar to h = 2.5: about 265 bars, plus noise.
    rng = np.random.default_rng(11)
    states = [DecayMonitor(BASELINE).update(rng.normal(-0.001, 0.01, FORWARD_BARS)) for _ in range(200)]
    delays = [state.fired_bar for state in states if state.fired_bar is not None]
    assert len(delays) >= 0.95 * len(states)
    assert 150 <= np.median(delays) <= 350
    fired = [state for state in states if state.fired]
    assert all(state.reason is DecayReason.DECAY for state in fired)
    assert all(state.fired_statistic is not None and state.fired_statistic >= state.threshold for state in fired)


def test_feeding_the_same_bars_again_counts_none_twice() -> None:
    returns = np.random.default_rng(5).normal(-0.002, 0.01, 300)
    monitor = DecayMonitor(BASELINE)
    once = monitor.update(returns)
    assert once.fired and once.bars == 300
    assert monitor.update(returns) == once  # the whole history again: nothing new
    assert monitor.update(returns[100:], first=100) == once  # a step redelivered: nothing new
    assert monitor.update([]) == once


def test_bars_one_at_a_time_give_the_state_of_all_at_once() -> None:
    returns = np.random.default_rng(6).normal(0.0, 0.01, 400)
    whole = DecayMonitor(BASELINE).update(returns)
    monitor = DecayMonitor(BASELINE)
    for bar, value in enumerate(returns):
        monitor.update([value], first=bar)
    assert monitor.state == whole


def test_a_hole_in_the_bars_is_refused() -> None:
    monitor = DecayMonitor(BASELINE)
    monitor.update([0.001, 0.002])
    with pytest.raises(ValueError, match="forward bar 2 is missing"):
        monitor.update([0.001], first=3)
    with pytest.raises(ValueError, match="finite"):
        monitor.update([0.001, math.nan], first=2)
    assert monitor.state.bars == 2


def test_the_monitor_round_trips_through_json_and_goes_on_the_same() -> None:
    returns = np.random.default_rng(8).normal(-0.001, 0.01, 500)
    monitor = DecayMonitor(BASELINE, arl0=2500.0)
    monitor.update(returns[:200])
    record = json.loads(json.dumps(monitor.to_dict()))
    restored = DecayMonitor.from_dict(record)
    assert restored.state == monitor.state and restored.baseline == monitor.baseline and restored.arl0 == 2500.0
    assert restored.update(returns) == monitor.update(returns)
    fired = json.loads(json.dumps(restored.to_dict()))
    assert fired["state"]["reason"] == "decay" and DecayMonitor.from_dict(fired).state == restored.state


def test_the_shrunk_mean_takes_the_expected_maximum_sharpe_of_the_trials_off_the_backtests() -> None:
    # SR = 0.001 / 0.01 = 0.1 per bar; V = 1 / 4000 (no trial Sharpes given: the floor)
    # SR0 = sqrt(1/4000) ((1 - 0.5772157) Phi^-1(0.95) + 0.5772157 Phi^-1(1 - 1/(20 e)))
    #     = 0.0158114 (0.4227843 x 1.6448536 + 0.5772157 x 2.0881097) = 0.0158114 x 1.9007071 = 0.0300528
    assert BASELINE.sharpe == pytest.approx(0.1)
    assert BASELINE.haircut == pytest.approx(0.0300528, rel=1e-5)
    assert BASELINE.shrunk_sharpe == pytest.approx(0.0699472, rel=1e-5)
    assert BASELINE.shrunk_mean == pytest.approx(0.000699472, rel=1e-5)
    # the trials' own variance, when larger, cuts deeper; one trial cuts nothing
    wide = DecayBaseline(0.001, 0.01, 20, 4000, trial_variance=0.001)
    assert wide.haircut == pytest.approx(math.sqrt(0.001) * 1.9007071, rel=1e-5)
    assert DecayBaseline(0.001, 0.01, 1, 4000).shrunk_mean == pytest.approx(0.001)


def test_nothing_left_after_the_haircut_fires_at_the_first_bar_as_no_edge() -> None:
    weak = DecayBaseline(backtest_mean=0.0002, backtest_std=0.01, trials=20, backtest_bars=4000)
    assert weak.shrunk_mean == 0.0
    state = DecayMonitor(weak).update([0.01, 0.01, 0.01], first=0)
    assert state.fired and state.fired_bar == 0 and state.reason is DecayReason.NO_EDGE and state.bars == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backtest_std": 0.0}, "backtest_std"),
        ({"backtest_mean": math.inf}, "backtest_mean"),
        ({"trials": 0}, "at least 1"),
        ({"decay_to": 1.0}, "decay_to"),
    ],
)
def test_a_baseline_that_cannot_be_tested_is_refused(fields: dict, message: str) -> None:
    values = {"backtest_mean": 0.001, "backtest_std": 0.01, "trials": 20, "backtest_bars": 4000} | fields
    with pytest.raises(ValueError, match=message):
        DecayBaseline(**values)
