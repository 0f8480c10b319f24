"""The leaderboard: a cycle_results row written when a cycle finishes, read as an indexed page (CLI and API)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent_pipeline.cli import cli
from agent_pipeline.store.history import SortKey, leaderboard, outcome_counts
from agent_pipeline.store.migrations import upgrade_database
from agent_pipeline.store.operations import OperationsStore, OperationType
from tests.cycles import finished_cycle


def test_a_finished_cycle_gets_one_typed_row_with_its_outcome_family(store: OperationsStore) -> None:
    passed = finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "training_gate")
    finished_cycle(store, "cancelled")
    finished_cycle(store, "error")
    store.create_cycle(max_active=1000)  # still pending: not on the leaderboard
    rows = {r.operation_id: r for r in leaderboard(store, sort=SortKey.CREATED)}
    assert len(rows) == 4
    best = rows[passed]
    assert (best.outcome, best.symbol, best.timeframe, best.designer) == ("passed", "EURUSD", "1h", "offline")
    assert best.excess_return == pytest.approx(0.03) and best.num_trades == 14 and best.lockbox_return == -0.03
    assert outcome_counts(store) == {"passed": 1, "training_gate": 1, "cancelled": 1, "error": 1}
    gate = next(r for r in rows.values() if r.outcome == "training_gate")
    assert gate.reason == "no_skill (balanced accuracy 50.4% vs chance 50.0%, p = 0.41)"


def test_leaderboard_sorts_best_first_missing_figures_last_and_pages(store: OperationsStore) -> None:
    low, high, none = (finished_cycle(store, "passed", dsr=d) for d in (0.2, 0.9, None))
    other = finished_cycle(store, "passed", dsr=0.99, symbol="SP500")
    assert [r.operation_id for r in leaderboard(store, symbol="EURUSD", timeframe="1h")] == [high, low, none]
    assert [r.operation_id for r in leaderboard(store)] == [other, high, low, none]
    assert [r.operation_id for r in leaderboard(store, limit=2, offset=1)] == [high, low]
    assert leaderboard(store, symbol="eurusd", timeframe="1d") == []


def test_upgrade_backfills_cycles_that_finished_before_the_table(sqlite_url: str) -> None:
    store = OperationsStore(sqlite_url)
    upgrade_database(store.engine, "0001")
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"strategy_name": "old"})
    from sqlalchemy import update

    from agent_pipeline.store.models import OperationRow

    with store.engine.begin() as connection:  # finished under revision 0001: no history hook then
        connection.execute(update(OperationRow).values(status="failed", error_message="Backtest gate failed: x"))
    store.upgrade()
    (row,) = leaderboard(store)
    assert (row.operation_id, row.outcome, row.reason, row.strategy_name) == (
        cycle.operation_id,
        "backtest_gate",
        "x",
        "old",
    )


def test_cli_history_shows_the_leaderboard_with_a_marked_lockbox_column(store: OperationsStore) -> None:
    passed = finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "training_gate")
    result = CliRunner().invoke(cli, ["agent", "history"], prog_name="ktrdr")
    assert result.exit_code == 0, result.output
    for text in (passed, "EURUSD 1h", "offline", "training gate: no_skill", "Lockbox†", "-3.0%", "† lockbox"):
        assert text in result.stdout, text
    as_json = CliRunner().invoke(cli, ["agent", "history", "--json", "--sort", "sharpe", "--limit", "1"])
    data = json.loads(as_json.stdout)["data"]
    assert len(data) == 1 and data[0]["sharpe_ratio"] == 1.2


def test_api_history_pages_and_refuses_an_unknown_sort(store: OperationsStore) -> None:
    from agent_pipeline.api.app import app

    finished_cycle(store, "passed", dsr=0.7)
    finished_cycle(store, "error")
    with TestClient(app) as client:
        body = client.get("/api/v1/agent/history", params={"sort": "return", "limit": 1}).json()
        assert body["success"] is True and len(body["data"]) == 1 and body["limit"] == 1
        assert client.get("/api/v1/agent/history", params={"sort": "luck"}).status_code == 422


def test_odd_figures_never_block_a_cycle_from_finishing(store: OperationsStore) -> None:
    cycle = store.create_cycle(max_active=10)
    store.start(cycle.operation_id)
    odd = {"symbol": "X" * 100, "backtest_result": {"deflated_sharpe": "n/a", "num_trades": True}}
    store.merge_metadata(cycle.operation_id, odd)
    assert store.complete(cycle.operation_id)
    ranked = finished_cycle(store, "passed", dsr=0.1)
    (row, other) = leaderboard(store)  # the odd one has no DSR: it sorts after the one that has
    assert other.operation_id == cycle.operation_id and row.operation_id == ranked
    assert other.symbol == "X" * 32 and other.deflated_sharpe is None and other.num_trades is None


# --- Verdicts without holes (issue 23) ---------------------------------------------------------------------------

GATE_PASSED = {"passed": True, "reason": "passed", "bypassed": False}
WIN_RATE = {"passed": False, "reason": "win_rate_too_low (0% < 45%)", "bypassed": True}
# A strong walk-forward record: annualised Sharpe 1.5 over 750 daily bars, normal moments (PSR about 0.99).
STRONG = {"sharpe_ratio": 1.5, "n_bars": 750, "skewness": 0.0, "kurtosis": 3.0, "num_trades": 40}


# Purged combinatorial paths that pass the promotion step, and a series PBO under its limit (issue 25).
GOOD_PATHS = {"sharpes": [0.9, 1.1, 1.3, 0.4, 1.2], "groups": 6, "test_groups": 2}
LOW_PBO = 0.05


def judged_cycle(store: OperationsStore, *, backtest_gate: dict[str, Any], backtest: dict[str, Any]) -> str:
    """A cycle on SP500 1d that completed, through finalize's own judgement (`tasks.cycle.finalize` stores it), with
    paths that hold up and a series PBO under its limit: a candidate of it is promoted."""
    from agent_pipeline.gates import is_candidate, judge_promotion
    from agent_pipeline.store.discoveries import SeriesOverfitting, refresh_discoveries

    cycle = store.create_cycle(max_active=1000)
    store.start(cycle.operation_id)
    meta = {"symbol": "SP500", "timeframe": "1d", "designer": "offline", "strategy_name": "s", "paths": GOOD_PATHS,
            "training_gate": GATE_PASSED, "backtest_gate": backtest_gate, "backtest_result": backtest}  # fmt: skip
    store.merge_metadata(cycle.operation_id, meta)
    candidate = is_candidate(meta, backtest.get("deflated_sharpe"), completed=True)
    promotion = judge_promotion(candidate=candidate, pbo=LOW_PBO, paths=GOOD_PATHS)
    summary = {"discovery": promotion.is_discovery, "discovery_at_run": promotion.is_discovery}
    store.complete(cycle.operation_id, result_summary=summary | {"promotion": promotion.to_record()})
    refresh_discoveries(store, "SP500", "1d", overfitting=lambda _: SeriesOverfitting(LOW_PBO))
    return cycle.operation_id


def test_a_bypassed_cycle_is_never_passed_nor_a_discovery_whatever_its_sharpe(store: OperationsStore) -> None:
    from agent_pipeline.insight.evidence import series_evidence

    bypassed = judged_cycle(store, backtest_gate=WIN_RATE, backtest={**STRONG, "deflated_sharpe": 0.99})
    (row,) = leaderboard(store)
    assert (row.operation_id, row.outcome, row.discovery) == (bypassed, "bypassed", False)
    assert row.reason == "backtest gate: win_rate_too_low (0% < 45%)"
    assert outcome_counts(store) == {"bypassed": 1}
    evidence = series_evidence(store, "SP500", "1d")
    assert evidence.discoveries == [] and evidence.best[0].outcome == "bypassed"
    result = CliRunner().invoke(cli, ["agent", "history"], prog_name="ktrdr")
    assert "bypassed" in result.stdout and "passed" not in result.stdout.replace("bypassed", "")
    from agent_pipeline.api.app import app

    with TestClient(app) as client:
        (api_row,) = client.get("/api/v1/agent/history").json()["data"]
        assert (api_row["outcome"], api_row["discovery"]) == ("bypassed", False)
        (recent,) = client.get("/api/v1/agent/overview").json()["recent"]
        assert recent["outcome"] == "bypassed"


def test_a_discovery_over_few_trials_is_withdrawn_when_its_series_grows(store: OperationsStore) -> None:
    from agent_pipeline.insight.evidence import series_evidence

    # Given one strong cycle that passed both gates and the promotion step: a discovery over its one trial
    first = judged_cycle(store, backtest_gate=GATE_PASSED, backtest={**STRONG, "deflated_sharpe": 0.99})
    assert store.get(first).result_summary["discovery"] is True
    assert store.get(first).result_summary["promotion"]["status"] == "discovery"
    # (the evidence measures the series' PBO itself: with no trial's returns on file there is none, so it is a
    # candidate there, waiting for the PBO)
    (trial,) = series_evidence(store, "SP500", "1d").candidates
    assert (trial.cycle_id, trial.promotion, trial.discovery) == (first, "candidate", False)
    # When twenty more trials of widely spread Sharpe ratios are made on the series
    for i in range(20):
        spread = {**STRONG, "sharpe_ratio": -2.0 + 0.2 * i, "deflated_sharpe": 0.0}
        judged_cycle(store, backtest_gate=GATE_PASSED, backtest=spread)
    # Then it is no candidate any more: the evidence, the leaderboard and the cycle's own summary withdraw it, and
    # keep what it was at run
    assert series_evidence(store, "SP500", "1d").candidates == []
    row = next(r for r in leaderboard(store, limit=50) if r.operation_id == first)
    assert (row.discovery, row.promotion) == (False, None)
    summary = store.get(first).result_summary
    assert summary["discovery"] is False and summary["discovery_at_run"] is True and "promotion" not in summary


def test_upgrade_judges_old_rows_again_so_an_old_bypassed_cycle_stops_being_a_discovery(sqlite_url: str) -> None:
    store = OperationsStore(sqlite_url)
    upgrade_database(store.engine, "0002")
    cycle = store.create_cycle(max_active=10)
    store.start(cycle.operation_id)
    meta = {"symbol": "SP500", "timeframe": "1d", "training_gate": GATE_PASSED, "backtest_gate": WIN_RATE,
            "backtest_result": {**STRONG, "deflated_sharpe": 0.99}}  # fmt: skip
    store.merge_metadata(cycle.operation_id, meta)
    store.complete(cycle.operation_id, result_summary={"discovery": True})  # the old rule: the DSR alone
    store.upgrade()
    (row,) = leaderboard(store)
    assert (row.outcome, row.discovery) == ("bypassed", False)
    assert store.get(cycle.operation_id).result_summary == {"discovery": False, "discovery_at_run": True}
