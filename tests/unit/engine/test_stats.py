"""PSR, DSR and the expected maximum Sharpe against the paper's worked example and an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.stats import norm

from agent_pipeline.engine import stats
from agent_pipeline.engine.research import classification_metrics


def test_the_expected_maximum_sharpe_and_dsr_match_the_papers_worked_example() -> None:
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: N = 100 trials whose
    # annualised Sharpe ratios have variance 0.5, the best has an annualised SR of 2.5 over T = 1250 daily
    # returns with skewness -3 and kurtosis 10. The paper gets SR0 = 0.1132 (per day) and DSR = 0.9004.
    per_year = 250
    sr0 = stats.expected_max_sharpe(100, 0.5 / per_year)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(per_year) == pytest.approx(1.7897, abs=5e-4)
    best = stats.SharpeEvidence(sharpe=2.5 / math.sqrt(per_year), skewness=-3.0, kurtosis=10.0, n=1250)
    assert stats.deflated_sharpe(best, trials=100, variance=0.5 / per_year) == pytest.approx(0.9004, abs=5e-4)


def _vectorbt_dsr(est_sharpe, var_sharpe, nb_trials, backtest_horizon, skew, kurtosis):
    """Independent implementation: vectorbt's `vectorbt/returns/metrics.py` (`approx_exp_max_sharpe` with a zero
    mean, then `deflated_sharpe_ratio`), restated here from its formulas."""
    sr0 = np.sqrt(var_sharpe) * (
        (1 - np.euler_gamma) * norm.ppf(1 - 1 / nb_trials) + np.euler_gamma * norm.ppf(1 - 1 / (nb_trials * np.e))
    )
    return norm.cdf(
        (est_sharpe - sr0)
        * np.sqrt(backtest_horizon - 1)
        / np.sqrt(1 - skew * est_sharpe + ((kurtosis - 1) / 4) * est_sharpe**2)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsr_of_real_returns_matches_an_independent_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(df=4, size=800) * 0.01 + 0.0008
    evidence = stats.SharpeEvidence.of(returns)
    expected = _vectorbt_dsr(evidence.sharpe, 0.002, 25, len(returns), evidence.skewness, evidence.kurtosis)
    assert stats.deflated_sharpe(evidence, trials=25, variance=0.002) == pytest.approx(expected, rel=1e-9)
    assert evidence.kurtosis > 3  # Student-t tails: Pearson kurtosis, not excess
    # and the moments are scipy's (biased, Pearson), computed without importing scipy in the engine
    assert evidence.skewness == pytest.approx(scipy_stats.skew(returns), rel=1e-9)
    assert evidence.kurtosis == pytest.approx(scipy_stats.kurtosis(returns, fisher=False), rel=1e-9)


def test_psr_with_normal_moments_is_the_textbook_z_score() -> None:
    evidence = stats.SharpeEvidence(sharpe=0.1, skewness=0.0, kurtosis=3.0, n=401)
    z = 0.1 * math.sqrt(400) / math.sqrt(1 + 0.5 * 0.1**2)
    assert stats.probabilistic_sharpe(evidence) == pytest.approx(norm.cdf(z))


def test_one_trial_is_not_deflated_and_more_trials_deflate_more() -> None:
    evidence = stats.SharpeEvidence(sharpe=0.08, skewness=0.0, kurtosis=3.0, n=500)
    psr = stats.probabilistic_sharpe(evidence)
    assert stats.deflated_sharpe(evidence, trials=1, variance=0.001) == psr
    dsrs = [stats.deflated_sharpe(evidence, trials=n, variance=0.001) for n in (2, 10, 100, 1000)]
    assert dsrs == sorted(dsrs, reverse=True) and dsrs[-1] < psr


def test_a_flat_record_is_no_evidence() -> None:
    assert stats.probabilistic_sharpe(stats.SharpeEvidence.of(np.zeros(300))) == 0.0


def test_the_trials_variance_falls_back_to_the_sampling_variance_of_a_zero_sharpe() -> None:
    assert stats.trials_variance([0.3], 400) == pytest.approx(1 / 400)
    assert stats.trials_variance([0.1, 0.3, float("nan")], 400) == pytest.approx(np.var([0.1, 0.3], ddof=1))


def test_trials_that_agree_closely_are_still_deflated_by_the_noise_of_one_sharpe_estimate() -> None:
    # Ten near-identical trials: their spread (1e-8) is far below what one estimate over 400 bars can resolve
    assert stats.trials_variance([0.05 + 1e-4 * i for i in range(10)], 400) == pytest.approx(1 / 400)


def test_classification_metrics_against_hand_computed_values() -> None:
    # actual: SELL SELL HOLD HOLD HOLD BUY; predicted: SELL HOLD HOLD HOLD SELL BUY
    actual = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    probabilities = np.full((6, 3), 0.1)
    probabilities[np.arange(6), predicted] = 0.8
    metrics = classification_metrics(actual, probabilities)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (3 + 3), 1.0]  # 2 hits / (predicted + actual) per class
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert metrics["baseline_accuracy"] == pytest.approx(3 / 6)
    picked = [0.8 if a == p else 0.1 for a, p in zip(actual, predicted, strict=True)]
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log(picked)))


def test_evidence_deflates_a_recorded_backtest_against_every_trial_on_its_series_now() -> None:
    deflate_now = stats.deflate_recorded

    recorded = {"sharpe_ratio": 1.2, "n_bars": 1500, "skewness": -0.3, "kurtosis": 5.0, "deflated_sharpe": 0.93}
    alone = deflate_now(recorded, trials=1, sharpes=[1.2], timeframe="1d")
    expected = stats.probabilistic_sharpe(stats.SharpeEvidence(1.2 / math.sqrt(252), -0.3, 5.0, 1500))
    assert alone == pytest.approx(expected)
    crowded = deflate_now(recorded, trials=50, sharpes=[1.2, -0.4, 0.3, 0.9], timeframe="1d")
    assert crowded is not None and alone is not None and crowded < alone
    assert deflate_now({"deflated_sharpe": 0.5}, trials=9, sharpes=[], timeframe="1d") == 0.5  # older record


# --- The training gate's skill test (issue 23) -----------------------------------------------------------------


def _random_walk_case(seed: int, lookahead: int, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Two-class labels of a random walk with the given look-ahead, and predictions from its past: the sign of a
    50-bar mean return, which is as persistent as a real model's features. No skill exists by construction."""
    from agent_pipeline.engine.labels import zigzag_labels

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n + lookahead + 60)))
    labels = zigzag_labels(close, 0.02, lookahead, hold=False)
    returns = np.diff(np.log(close), prepend=close[0])
    trend = np.convolve(returns, np.ones(50) / 50, "full")[: len(close)]
    predicted = np.where(trend > 0, 2, 0)
    rows = slice(60, 60 + n)
    return labels[rows], predicted[rows]


def test_the_skill_test_without_blocks_agrees_with_the_exact_binomial_test() -> None:
    rng = np.random.default_rng(3)
    actual = np.repeat([0, 2], 1000)
    rng.shuffle(actual)
    predicted = np.where(rng.random(2000) < 0.52, actual, 2 - actual)  # 52% right
    hits = int(np.sum(predicted == actual))
    exact = scipy_stats.binomtest(hits, 2000, 0.5, alternative="greater").pvalue
    permuted = stats.skill_pvalue(actual, predicted, block=1, permutations=4000)
    assert 0.01 < exact < 0.2
    assert permuted == pytest.approx(exact, abs=0.015)


def test_the_skill_test_holds_its_size_on_overlapping_labels_where_a_plain_permutation_does_not() -> None:
    # 200 random walks, labels over 5 bars: at p <= 0.05 a valid test flags about 5% of them. The plain
    # permutation treats the overlapping labels as independent and flags three to four times as many.
    cases = [_random_walk_case(100 + i, lookahead=5) for i in range(200)]
    blocked = np.mean([stats.skill_pvalue(a, p, block=5, permutations=200) <= 0.05 for a, p in cases])
    plain = np.mean([stats.skill_pvalue(a, p, block=1, permutations=200) <= 0.05 for a, p in cases])
    assert blocked <= 0.08
    assert plain >= 0.12


def test_the_skill_test_finds_real_skill_and_scores_chance_for_any_number_of_classes() -> None:
    rng = np.random.default_rng(5)
    three = rng.integers(0, 3, 3000)
    guessed = rng.integers(0, 3, 3000)
    assert stats.balanced_accuracy(three, guessed) == pytest.approx(1 / 3, abs=0.03)
    assert stats.skill_pvalue(three, guessed, block=3) > 0.05
    skilled = np.where(rng.random(3000) < 0.15, three, guessed)  # right 15% more often than chance
    assert stats.skill_pvalue(three, skilled, block=3) <= 0.001
    assert stats.skill_pvalue(np.zeros(10, dtype=int), np.zeros(10, dtype=int), block=1) == 1.0  # one class
