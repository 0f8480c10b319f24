"""The calibration record: the power table groups series and counts discoveries; the last run is saved whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_pipeline.errors import CalibrationNotFoundError
from agent_pipeline.insight.calibration import (
    SeriesOutcome,
    load_run,
    plot_power_curve,
    power_table,
    run_record,
    save_run,
)
from agent_pipeline.pipeline.calibrate import CalibrationPlan, SeriesSpec, series_of


def outcome(kind: str, strength: float, seed: int, first: int | None, **extra: object) -> SeriesOutcome:
    values = {"best_sharpe": 1.0, "discovery_lockbox_sharpe": 0.5 if first else None, **extra}
    return SeriesOutcome(
        kind, strength, seed, "offline", f"S{seed}", first or 20, 1.5, 0.4, first, outcomes=["passed"], **values
    )


def test_the_power_table_counts_discoveries_and_cycles_to_the_first_per_kind_strength_and_designer() -> None:
    outcomes = [
        outcome("trend", 1.5, 1, 4, best_sharpe=1.2),
        outcome("trend", 1.5, 2, None, best_sharpe=0.4),
        outcome("trend", 1.5, 3, 10, best_sharpe=1.6),
        outcome("noise", 0.0, 1, None),
        outcome("noise", 0.0, 2, None),
    ]
    rows = {(row["kind"], row["strength"]): row for row in power_table(outcomes)}
    trend = rows[("trend", 1.5)]
    assert trend["series"] == 3 and trend["discoveries"] == 2
    assert trend["discovery_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert trend["median_cycles_to_discovery"] == 7.0  # median of 4 and 10; the undiscovered series is left out
    assert trend["median_cycles_to_discovery_all"] == "10"  # 4, 10 and one beyond the budget
    assert rows[("noise", 0.0)]["median_cycles_to_discovery_all"] == ">20"
    assert trend["median_best_sharpe"] == 1.2
    assert trend["median_discovery_lockbox_sharpe"] == 0.5
    assert rows[("noise", 0.0)]["discovery_rate"] == 0.0
    assert run_record(outcomes, {}, 1.0)["false_discovery_rate"] == 0.0


def test_a_discovery_on_noise_is_a_false_discovery() -> None:
    record = run_record([outcome("noise", 0.0, 1, 3), outcome("noise", 0.0, 2, None)], {}, 1.0)
    assert record["false_discovery_rate"] == 0.5
    assert [s["discovered"] for s in record["series"]] == [True, False]


def test_each_series_of_a_plan_has_its_own_symbol_and_noise_has_no_strength() -> None:
    plan = CalibrationPlan(
        kinds=("trend", "noise"), strengths=(0.5, 1.5), seeds=(1, 2), designers=("offline", "random")
    )
    specs = series_of(plan)
    assert len(specs) == 2 * 2 * 2 + 2 * 2  # trend: strengths x seeds x designers; noise: seeds x designers
    assert len({spec.symbol for spec in specs}) == len(specs)
    assert {spec.strength for spec in specs if spec.kind == "noise"} == {0.0}
    assert SeriesSpec("reversal", 1.5, 7, "random").symbol == "CAL_REV150_S7_RAN"


def test_the_last_run_is_saved_whole_and_read_back(tmp_path: Path) -> None:
    with pytest.raises(CalibrationNotFoundError, match="ktrdr agent calibrate"):
        load_run(tmp_path)
    record = run_record([outcome("trend", 1.0, 1, 2), outcome("trend", 2.0, 1, 1)], {"cycles": 3}, 12.0)
    saved = save_run(record, tmp_path)
    assert load_run(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]  # no temporary file left behind
    plot = plot_power_curve(record, tmp_path / "power_curve.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_names_the_setting_when_a_default_gate_stopped_a_discovery() -> None:
    from datetime import UTC, datetime

    from agent_pipeline.insight.summary import report_rows
    from agent_pipeline.store.models import Operation, OperationStatus, OperationType

    def cycle(dsr: float, reason: str) -> Operation:
        meta = {
            "backtest_result": {"sharpe_ratio": 1.3, "deflated_sharpe": dsr},
            "backtest_gate": {"passed": False, "reason": reason},
        }
        now = datetime.now(UTC)
        return Operation("op", OperationType.AGENT_RESEARCH, OperationStatus.FAILED, None, now, now, now, now, {}, meta)

    blocked = dict(report_rows(cycle(0.99, "win_rate_too_low (38.2% < 45%)")))
    assert "BACKTEST_GATE_MIN_WIN_RATE" in blocked["Gate note"] and "0.99" in blocked["Gate note"]
    assert "Gate note" not in dict(report_rows(cycle(0.60, "win_rate_too_low (38.2% < 45%)")))  # no edge to hide
    assert "Gate note" not in dict(report_rows(cycle(0.99, "too_few_trades (3 < 10)")))
