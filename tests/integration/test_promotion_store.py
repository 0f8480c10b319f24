"""The promotion step in the store (issue 25), on SQLite and Postgres: a candidate waits for its series' PBO, each
later cycle end promotes or rejects it, the leaderboard and `ktrdr agent history --json` carry its status, the report
shows its tests and draws its paths, and migration 0005 demotes an old DSR-only discovery to a candidate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from agent_pipeline.cli import cli
from agent_pipeline.store.discoveries import SeriesOverfitting, refresh_discoveries
from agent_pipeline.store.history import leaderboard
from agent_pipeline.store.migrations import upgrade_database
from agent_pipeline.store.operations import OperationsStore

PASSED = {"passed": True, "reason": "passed", "bypassed": False}
# A strong walk-forward record: annualised Sharpe 1.5 over 750 daily bars, normal moments (DSR about 0.99 alone).
STRONG = {
    "sharpe_ratio": 1.5,
    "n_bars": 750,
    "skewness": 0.0,
    "kurtosis": 3.0,
    "num_trades": 40,
    "deflated_sharpe": 0.99,
}
PATHS = {"sharpes": [0.9, 1.1, 1.3, 0.4, 1.2], "median": 1.1, "positive_share": 1.0, "groups": 6, "test_groups": 2}


def completed_candidate(store: OperationsStore, **extra: Any) -> str:
    """A completed cycle on SP500 1d with both gates passed, a strong record and paths that hold up."""
    cycle = store.create_cycle(max_active=100)
    store.start(cycle.operation_id)
    meta = {"symbol": "SP500", "timeframe": "1d", "strategy_name": "strong", "designer": "user", "paths": PATHS,
            "training_gate": PASSED, "backtest_gate": PASSED, "backtest_result": STRONG, **extra}  # fmt: skip
    store.merge_metadata(cycle.operation_id, meta)
    store.complete(cycle.operation_id, result_summary={"discovery": False, "lockbox": {}})
    return cycle.operation_id


def judge_with(store: OperationsStore, pbo: float | None, reason: str | None = None) -> None:
    refresh_discoveries(store, "SP500", "1d", overfitting=lambda _: SeriesOverfitting(pbo, reason))


def history_json() -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["agent", "history", "--json"], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["data"])


def test_a_candidate_waits_for_its_series_pbo_then_a_later_cycle_end_promotes_or_rejects_it(
    store: OperationsStore,
) -> None:
    # Given a candidate whose series has too few trials for a PBO
    cycle_id = completed_candidate(store)
    judge_with(store, None, "too few trials: 1 < 8")
    summary = store.get(cycle_id).result_summary or {}
    assert summary["discovery"] is False and summary["promotion"]["status"] == "candidate"
    assert summary["promotion"]["reason"] == "waiting for PBO: too few trials: 1 < 8"
    assert [(r["operation_id"], r["promotion"], r["discovery"]) for r in history_json()] == [
        (cycle_id, "candidate", False)
    ]
    # When a later cycle end measures a low PBO, then it is promoted: the leaderboard and history say discovery
    judge_with(store, 0.05)
    (row,) = leaderboard(store)
    assert (row.promotion, row.discovery) == ("discovery", True)
    summary = store.get(cycle_id).result_summary or {}
    assert summary["promotion"]["pbo"] == 0.05 and summary["promotion"]["paths"]["sharpes"] == PATHS["sharpes"]
    assert summary["discovery_at_run"] is False  # it was no discovery when it ran
    # And when the series' PBO later rises above the limit, it is rejected again, and history says so
    judge_with(store, 0.45)
    assert [(r["promotion"], r["discovery"]) for r in history_json()] == [("rejected", False)]
    assert store.get(cycle_id).result_summary["promotion"]["codes"] == ["pbo_too_high"]


def test_a_cycle_that_is_no_candidate_has_no_promotion(store: OperationsStore) -> None:
    weak = completed_candidate(store, backtest_result={**STRONG, "sharpe_ratio": 0.1, "deflated_sharpe": 0.3})
    judge_with(store, 0.05)
    (row,) = leaderboard(store)
    assert (row.operation_id, row.promotion, row.to_dict()["promotion"]) == (weak, None, None)
    assert "promotion" not in (store.get(weak).result_summary or {})


def test_the_report_shows_each_promotion_test_and_draws_the_path_sharpes(store: OperationsStore, tmp_path) -> None:
    from agent_pipeline.insight.report import write_plots
    from agent_pipeline.insight.summary import report_rows

    cycle_id = completed_candidate(store)
    judge_with(store, 0.05)
    rows = dict(report_rows(store.get(cycle_id)))
    assert rows["Discovery"] == "yes (a candidate promoted: its series' PBO and its paths hold up; see Promotion)"
    assert (
        rows["Promotion"] == "discovery: promoted: PBO 0.05 <= 0.20, median path Sharpe 1.10, 100% of 5 paths positive"
    )
    assert rows["  PBO"] == "0.05 (at most 0.20)"
    assert rows["  paths"] == (
        "Sharpe 0.90, 1.10, 1.30, 0.40, 1.20 over 5 paths (6 groups, 2 held out): median 1.10, 100.0% positive "
        "(at least 80.0%)"
    )
    judge_with(store, 0.45)  # a later PBO above the limit
    rows = dict(report_rows(store.get(cycle_id)))
    assert rows["Discovery"] == "no, a candidate rejected by the promotion step (see Promotion)"
    assert (rows["Promotion"], rows["  PBO"]) == ("rejected: pbo_too_high (0.45 > 0.20)", "0.45 (at most 0.20)")
    plots = write_plots(store, cycle_id, tmp_path)
    (drawn,) = [p for p in plots if p.name == "paths.png"]
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upgrade_turns_an_old_dsr_only_discovery_into_a_candidate(
    request: pytest.FixtureRequest, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from agent_pipeline.store.history import CycleResultRow
    from agent_pipeline.store.models import OperationRow

    # Given a database at 0004 holding a discovery by the old rule (the deflated Sharpe alone, no paths, no PBO)
    url = request.getfixturevalue(f"{database}_url")
    store = OperationsStore(url)
    upgrade_database(store.engine, "0004")
    cycle_id = completed_candidate(store, paths=None)
    with store.engine.begin() as connection:
        old = {"discovery": True, "lockbox": {}}
        connection.execute(update(OperationRow).where(OperationRow.operation_id == cycle_id).values(result_summary=old))
        connection.execute(update(CycleResultRow).values(discovery=True))
    # When it is upgraded
    store.upgrade()
    # Then it is a candidate waiting for its paths and its series' PBO, flagged no more
    (row,) = leaderboard(store)
    assert (row.discovery, row.promotion) == (False, "candidate")
    after = store.get(cycle_id).result_summary or {}
    assert after["discovery"] is False and after["discovery_at_run"] is True
    assert after["promotion"]["codes"] == ["paths_pending", "pbo_pending"]
    store.engine.dispose()
