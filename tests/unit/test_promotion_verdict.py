"""The promotion step's verdict (issue 25): a pure function from a candidate's tests to candidate, discovery or
rejected, with each test's figure and reason code as data."""

from __future__ import annotations

import pytest

from agent_pipeline.config import get_settings
from agent_pipeline.gates import PromotionStatus, PromotionThresholds, judge_promotion
from agent_pipeline.gates.promotion import (
    PATHS_MEDIAN_NOT_POSITIVE,
    PATHS_PENDING,
    PBO_PENDING,
    PBO_TOO_HIGH,
    PROMOTED,
    TOO_FEW_POSITIVE_PATHS,
)

LIMITS = PromotionThresholds(max_pbo=0.2, min_paths_positive=0.8)
GOOD = {"sharpes": [0.9, 1.1, 1.3, 0.4, 1.2], "groups": 6, "test_groups": 2}


def test_a_candidate_without_a_pbo_stays_a_candidate_and_says_what_it_waits_for() -> None:
    verdict = judge_promotion(
        candidate=True, pbo=None, pbo_reason="too few trials: 5 < 8", paths=GOOD, thresholds=LIMITS
    )
    assert verdict.status == PromotionStatus.CANDIDATE and verdict.codes == (PBO_PENDING,)
    assert verdict.reason == "waiting for PBO: too few trials: 5 < 8"
    assert not verdict.is_discovery


def test_a_pbo_above_the_limit_rejects() -> None:
    verdict = judge_promotion(candidate=True, pbo=0.35, paths=GOOD, thresholds=LIMITS)
    assert verdict.status == PromotionStatus.REJECTED and verdict.codes == (PBO_TOO_HIGH,)
    assert verdict.reason == "pbo_too_high (0.35 > 0.20)"


def test_paths_whose_median_is_not_above_zero_reject_even_before_the_pbo_exists() -> None:
    # A failed test is final (the paths never change), so it rejects at once; a missing PBO only delays a promotion
    weak = {**GOOD, "sharpes": [-0.4, -0.1, 0.0, 0.3, 0.5]}
    verdict = judge_promotion(
        candidate=True, pbo=None, pbo_reason="too few trials: 3 < 8", paths=weak, thresholds=LIMITS
    )
    assert verdict.status == PromotionStatus.REJECTED
    assert verdict.codes == (PATHS_MEDIAN_NOT_POSITIVE, TOO_FEW_POSITIVE_PATHS)
    assert verdict.reason == (
        "paths_median_not_positive (median path Sharpe 0.00 <= 0); too_few_positive_paths (40% < 80% of paths positive)"
    )


def test_a_positive_median_with_too_few_positive_paths_rejects() -> None:
    mixed = {**GOOD, "sharpes": [-0.2, -0.1, 0.6, 0.8, 0.9]}
    verdict = judge_promotion(candidate=True, pbo=0.1, paths=mixed, thresholds=LIMITS)
    assert (verdict.status, verdict.codes) == (PromotionStatus.REJECTED, (TOO_FEW_POSITIVE_PATHS,))


def test_every_test_passing_promotes_and_four_of_five_paths_is_enough() -> None:
    four = {**GOOD, "sharpes": [-0.3, 0.9, 1.1, 1.3, 1.2]}  # 80% positive, exactly the limit
    verdict = judge_promotion(candidate=True, pbo=0.2, paths=four, thresholds=LIMITS)
    assert verdict.status == PromotionStatus.DISCOVERY and verdict.codes == (PROMOTED,) and verdict.is_discovery
    assert verdict.reason == "promoted: PBO 0.20 <= 0.20, median path Sharpe 1.10, 80% of 5 paths positive"


def test_a_candidate_whose_paths_are_missing_or_failed_stays_a_candidate() -> None:
    unsent = judge_promotion(candidate=True, pbo=0.1, paths=None, thresholds=LIMITS)
    assert (unsent.status, unsent.codes, unsent.paths_reason) == (
        PromotionStatus.CANDIDATE,
        (PATHS_PENDING,),
        "not computed",
    )
    failed = judge_promotion(candidate=True, pbo=0.1, paths={"reason": "failed: boom"}, thresholds=LIMITS)
    assert failed.status == PromotionStatus.CANDIDATE and failed.reason == "waiting for paths: failed: boom"


def test_a_cycle_that_is_no_candidate_has_no_status_whatever_its_figures() -> None:
    verdict = judge_promotion(candidate=False, pbo=0.01, paths=GOOD, thresholds=LIMITS)
    assert verdict.status is None and not verdict.is_discovery
    assert verdict.to_record()["status"] is None


def test_the_record_holds_each_tests_figure_and_limit() -> None:
    record = judge_promotion(candidate=True, pbo=0.05, paths=GOOD, thresholds=LIMITS).to_record()
    assert record["status"] == "discovery" and record["codes"] == ["promoted"]
    assert (record["pbo"], record["max_pbo"], record["min_paths_positive"]) == (0.05, 0.2, 0.8)
    assert record["paths"] == {
        "sharpes": GOOD["sharpes"], "median": 1.1, "positive_share": 1.0, "groups": 6, "test_groups": 2,
    }  # fmt: skip


def test_the_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_MAX_PBO", "0.4")
    monkeypatch.setenv("KTRDR_MIN_PATHS_POSITIVE", "1.0")
    get_settings.cache_clear()
    assert PromotionThresholds.from_settings(get_settings()) == PromotionThresholds(0.4, 1.0)
    verdict = judge_promotion(candidate=True, pbo=0.35, paths={**GOOD, "sharpes": [-0.1, 1, 1, 1, 1]})
    assert verdict.codes == (TOO_FEW_POSITIVE_PATHS,)  # PBO 0.35 passes at 0.4; 80% of paths is below 100%
