"""The promotion step (issue 25): which candidates become discoveries, as a verdict that is data.

A *candidate* completed with both gates passed (not bypassed) and a deflated Sharpe of at least DISCOVERY_DSR over
its series' trials (`verdict.is_candidate`). It is promoted to a *discovery* only when two more tests pass:
- selection: its series' probability of backtest overfitting (CSCV over every trial, `engine.pbo`) is at most
  `max_pbo` (KTRDR_MAX_PBO, default 0.2);
- paths: its purged combinatorial paths (`engine.paths`) have a median Sharpe above 0 and at least
  `min_paths_positive` of them (KTRDR_MIN_PATHS_POSITIVE, default 0.8: 4 of 5) above 0.
A test that failed rejects it at once (`rejected`); a test that has no figure yet (PBO needs enough trials, the
paths are still training or could not be computed) leaves it a `candidate`, judged again at its series' next cycle
end. Both tests passing promotes it (`discovery`). Not a candidate: no status (None).
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent_pipeline.config import Settings, get_settings
from agent_pipeline.gates.checks import format_percent


class PromotionStatus(enum.StrEnum):
    """Where a candidate stands (a cycle that is no candidate has no status)."""

    CANDIDATE = "candidate"  # a test has no figure yet
    DISCOVERY = "discovery"  # promoted: every test passed
    REJECTED = "rejected"  # a test failed


# Reason codes, one per test outcome; `promoted` when all passed, `not_candidate` when there is nothing to judge.
PROMOTED, NOT_CANDIDATE = "promoted", "not_candidate"
PBO_TOO_HIGH, PBO_PENDING = "pbo_too_high", "pbo_pending"
PATHS_MEDIAN_NOT_POSITIVE, TOO_FEW_POSITIVE_PATHS, PATHS_PENDING = (
    "paths_median_not_positive", "too_few_positive_paths", "paths_pending",
)  # fmt: skip
# A share or PBO within this of its limit meets it (4 of 5 paths is 0.8, whatever the float rounding).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PromotionThresholds:
    """The promotion tests' limits."""

    max_pbo: float = 0.2
    min_paths_positive: float = 0.8

    @classmethod
    def from_settings(cls, settings: Settings) -> PromotionThresholds:
        return cls(max_pbo=settings.max_pbo, min_paths_positive=settings.min_paths_positive)


@dataclass(frozen=True)
class Paths:
    """A candidate's path Sharpe ratios (annualised), from the record `engine.paths.measure_paths` returns."""

    sharpes: tuple[float, ...]
    groups: int
    test_groups: int

    @property
    def median(self) -> float:
        return float(statistics.median(self.sharpes))

    @property
    def positive_share(self) -> float:
        return sum(1 for s in self.sharpes if s > 0) / len(self.sharpes)

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> Paths | None:
        """The figures of a paths record; None when it has none (`{"reason": ...}`: not computed, failed)."""
        record = record or {}
        sharpes = record.get("sharpes")
        if not isinstance(sharpes, list) or not sharpes:
            return None
        return cls(
            tuple(float(s) for s in sharpes), int(record.get("groups") or 0), int(record.get("test_groups") or 0)
        )

    def to_record(self) -> dict[str, Any]:
        return {"sharpes": list(self.sharpes), "median": self.median, "positive_share": self.positive_share,
                "groups": self.groups, "test_groups": self.test_groups}  # fmt: skip


@dataclass(frozen=True)
class Promotion:
    """The promotion verdict of one cycle: its status, the reason codes of the tests that decided it (failed ones
    when rejected, missing ones while a candidate), each test's figure and limit, and one readable reason."""

    status: PromotionStatus | None
    codes: tuple[str, ...]
    reason: str
    pbo: float | None = None
    pbo_reason: str | None = None  # why there is no PBO yet
    paths: Paths | None = None
    paths_reason: str | None = None  # why there are no path figures
    thresholds: PromotionThresholds = field(default_factory=PromotionThresholds)

    @property
    def is_discovery(self) -> bool:
        return self.status == PromotionStatus.DISCOVERY

    def to_record(self) -> dict[str, Any]:
        """`result_summary.promotion`: each test's figure and limit, the status and the reason."""
        return {
            "status": self.status.value if self.status else None,
            "codes": list(self.codes),
            "reason": self.reason,
            "pbo": self.pbo,
            "pbo_reason": self.pbo_reason,
            "max_pbo": self.thresholds.max_pbo,
            "paths": self.paths.to_record() if self.paths else None,
            "paths_reason": self.paths_reason,
            "min_paths_positive": self.thresholds.min_paths_positive,
        }


def judge_promotion(
    *,
    candidate: bool,
    pbo: float | None,
    pbo_reason: str | None = None,
    paths: Mapping[str, Any] | None = None,
    thresholds: PromotionThresholds | None = None,
) -> Promotion:
    """The promotion verdict of a cycle (see the module docstring).

    Args:
        candidate: `verdict.is_candidate` over the series' trials now.
        pbo: the series' probability of backtest overfitting now; None with `pbo_reason` until it can be computed.
        paths: the cycle's paths record (`engine.paths.measure_paths`, or `{"reason": ...}`); None: not computed.
    """
    limits = thresholds or PromotionThresholds.from_settings(get_settings())
    figures = Paths.from_record(paths)
    base = Promotion(
        None, (NOT_CANDIDATE,), "not a candidate", pbo=pbo,
        pbo_reason=None if pbo is not None else pbo_reason or "not computed", paths=figures,
        paths_reason=None if figures else str((paths or {}).get("reason") or "not computed"), thresholds=limits,
    )  # fmt: skip
    if not candidate:
        return base
    failed = _failures(pbo, figures, limits)
    if failed:
        return replace(base, status=PromotionStatus.REJECTED, codes=tuple(failed), reason="; ".join(failed.values()))
    pending = {}
    if base.paths_reason is not None:
        pending[PATHS_PENDING] = f"paths: {base.paths_reason}"
    if base.pbo_reason is not None:
        pending[PBO_PENDING] = f"PBO: {base.pbo_reason}"
    if pending:
        reason = "waiting for " + "; ".join(pending.values())
        return replace(base, status=PromotionStatus.CANDIDATE, codes=tuple(pending), reason=reason)
    return replace(base, status=PromotionStatus.DISCOVERY, codes=(PROMOTED,), reason=_promoted(base))


def _promoted(verdict: Promotion) -> str:
    assert verdict.pbo is not None and verdict.paths is not None
    paths, limits = verdict.paths, verdict.thresholds
    return (
        f"promoted: PBO {verdict.pbo:.2f} <= {limits.max_pbo:.2f}, median path Sharpe {paths.median:.2f}, "
        f"{format_percent(paths.positive_share)} of {len(paths.sharpes)} paths positive"
    )


def _failures(pbo: float | None, paths: Paths | None, limits: PromotionThresholds) -> dict[str, str]:
    """The failed tests among those with a figure, code -> `code (figure vs limit)`, in a fixed order."""
    failed = {}
    if pbo is not None and pbo > limits.max_pbo + _TOLERANCE:
        failed[PBO_TOO_HIGH] = f"{PBO_TOO_HIGH} ({pbo:.2f} > {limits.max_pbo:.2f})"
    if paths is not None and paths.median <= 0:
        failed[PATHS_MEDIAN_NOT_POSITIVE] = f"{PATHS_MEDIAN_NOT_POSITIVE} (median path Sharpe {paths.median:.2f} <= 0)"
    if paths is not None and paths.positive_share + _TOLERANCE < limits.min_paths_positive:
        share, needed = format_percent(paths.positive_share), format_percent(limits.min_paths_positive)
        failed[TOO_FEW_POSITIVE_PATHS] = f"{TOO_FEW_POSITIVE_PATHS} ({share} < {needed} of paths positive)"
    return failed
