"""The calibration record: the power table groups series and counts the discoveries that stand at the end and the
flags withdrawn; series names tell nothing of what is planted; the last run is saved whole."""

from __future__ import annotations

import hashlib
import re
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
from agent_pipeline.insight.evidence import series_evidence
from agent_pipeline.pipeline.calibrate import CalibrationPlan, SeriesSpec, judge_series, series_of
from agent_pipeline.store.operations import Operation, OperationsStore, get_store


def outcome(kind: str, strength: float, seed: int, first: int | None, **extra: object) -> SeriesOutcome:
    values = {"best_sharpe": 1.0, "discovery_lockbox_sharpe": 0.5 if first else None, **extra}
    return SeriesOutcome(
        kind, strength, seed, "offline", f"S{seed}", 20, 1.5, 0.4, first, [first] if first else [],
        outcomes=["passed"], **values,
    )  # fmt: skip


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


def test_flags_withdrawn_by_the_end_judgement_are_counted_per_row_and_in_all_and_never_count_as_found() -> None:
    outcomes = [
        outcome("reversal", 1.5, 1, None, withdrawn_flags=[2]),  # flagged at cycle 2, gone by the end
        outcome("reversal", 1.5, 2, 7, withdrawn_flags=[3, 5]),  # two early flags withdrawn, cycle 7 stands
        outcome("noise", 0.0, 1, None, withdrawn_flags=[4]),
    ]
    record = run_record(outcomes, {}, 1.0)
    rows = {row["kind"]: row for row in record["power"]}
    assert rows["reversal"]["discoveries"] == 1 and rows["reversal"]["withdrawn_flags"] == 3
    assert rows["reversal"]["median_cycles_to_discovery"] == 7.0  # the first lasting discovery, not the flag at 3
    assert record["false_discovery_rate"] == 0.0  # a withdrawn flag on noise is no false discovery
    assert record["withdrawn_flags"] == 4
    assert [s["withdrawn_flags"] for s in record["series"]] == [[2], [3, 5], [4]]


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


def test_a_series_symbol_is_a_stable_hash_that_names_neither_its_kind_nor_strength_nor_seed_nor_designer() -> None:
    specs = series_of(CalibrationPlan(strengths=(1.0, 1.5, 2.0), seeds=(1, 101), designers=("offline", "anthropic")))
    assert all(re.fullmatch(r"CAL_[0-9A-F]{8}", spec.symbol) for spec in specs)  # hex digits spell no kind
    assert len({spec.symbol for spec in specs}) == len(specs)
    assert (
        SeriesSpec("reversal", 1.5, 7, "random").symbol
        == "CAL_" + hashlib.sha256(b"reversal:1.5000:7:random").hexdigest()[:8].upper()
    )


# Paths that pass the promotion step (issue 25); every cycle gets them, only a candidate's are read.
GOOD_PATHS = {"sharpes": [0.9, 1.1, 1.3, 0.4, 1.2], "groups": 6, "test_groups": 2}


def write_returns(folder: Path, edge: float, seed: int) -> str:
    """A backtest folder with `oos_returns.csv`: 640 shared daily bars of noise, plus `edge` per bar."""
    import numpy as np
    import pandas as pd

    returns = edge + 0.01 * np.random.default_rng(seed).standard_normal(640)
    index = pd.bdate_range("2010-01-04", periods=640, name="timestamp")
    folder.mkdir(parents=True)
    pd.DataFrame({"return": returns, "buy_and_hold": 0.0}, index=index).to_csv(folder / "oos_returns.csv")
    return str(folder)


def finished(
    store: OperationsStore, symbol: str, sharpe: float, *, flagged: bool, gate: str | None = None, backtest_dir: str
) -> Operation:
    """A finished cycle on `symbol` with a recorded walk-forward backtest (16 years of daily bars) and its returns."""
    backtest = {"sharpe_ratio": sharpe, "n_bars": 4000, "skewness": 0.0, "kurtosis": 3.0, "deflated_sharpe": 0.99}
    meta = {"symbol": symbol, "timeframe": "1d", "backtest_result": backtest, "training_gate": {"passed": True},
            "backtest_gate": {"passed": not gate, **({"reason": gate} if gate else {})}, "paths": GOOD_PATHS,
            "backtest_dir": backtest_dir}  # fmt: skip
    row = store.create_cycle(max_active=100, metadata=meta)
    store.start(row.operation_id)
    if gate:
        store.fail(row.operation_id, error_message=f"Backtest gate failed: {gate}")
    else:
        store.complete(row.operation_id, result_summary={"discovery": flagged})
    return store.get(row.operation_id)


def test_the_end_judgement_keeps_the_discovery_that_lasts_and_withdraws_the_flag_raised_over_few_trials(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given a series whose second cycle was flagged when it ran (few trials then) with a Sharpe that twenty
    # trials of this spread do not leave standing, and a strong first cycle, whose out-of-sample returns carry the
    # only edge among the series' trials (its PBO is low) and whose paths hold up
    store = get_store(sqlite_url)
    store.upgrade()

    def returns(n: int, edge: float = 0.0) -> str:
        return write_returns(tmp_path / f"trial_{n}", edge, seed=n)

    cycles = [
        finished(store, "CAL_TEST0001", 3.0, flagged=True, backtest_dir=returns(0, edge=0.004)),
        finished(store, "CAL_TEST0001", 1.1, flagged=True, backtest_dir=returns(1)),
        finished(
            store, "CAL_TEST0001", 2.5, flagged=False, gate="win_rate_too_low (30% < 45%)", backtest_dir=returns(2)
        ),
        *(
            finished(store, "CAL_TEST0001", 0.1 * n - 0.5, flagged=False, backtest_dir=returns(3 + n))
            for n in range(17)
        ),
    ]
    finished(store, "CAL_OTHER001", 0.2, flagged=True, backtest_dir=returns(99))  # another series counts for nothing
    # When the series is judged at the end, over all its trials
    lasting, withdrawn, _ = judge_series(store, "CAL_TEST0001", cycles)
    # Then the first cycle stands (promoted), the second's flag is withdrawn, and the gate-stopped one is no discovery
    assert lasting == [1]
    assert withdrawn == [2]
    pbo = series_evidence(store, "CAL_TEST0001", "1d").pbo
    assert pbo is not None and pbo.pbo <= 0.2


def test_the_end_judgement_counts_no_discovery_while_the_series_pbo_is_too_high(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given the same strong first cycle among noise, but no edge in its returns: picking the best trial in sample
    # is a coin flip out of sample (PBO about 0.5 > 0.2)
    store = get_store(sqlite_url)
    store.upgrade()
    cycles = [
        finished(store, "CAL_TEST0002", 3.0 if n == 0 else 0.1 * n - 0.5, flagged=n == 0,
                 backtest_dir=write_returns(tmp_path / f"noise_{n}", 0.0, seed=n))
        for n in range(12)
    ]  # fmt: skip
    # When the series is judged at the end, then its candidate is rejected and its flag counts as withdrawn
    assert judge_series(store, "CAL_TEST0002", cycles)[:2] == ([], [1])
    evidence = series_evidence(store, "CAL_TEST0002", "1d")
    assert evidence.pbo is not None and evidence.pbo.pbo > 0.2
    assert [(t.cycle_id, t.promotion) for t in evidence.candidates] == [(cycles[0].operation_id, "rejected")]


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

    from agent_pipeline.gates import Verdict
    from agent_pipeline.insight.summary import report_rows
    from agent_pipeline.store.models import Operation, OperationStatus, OperationType

    def cycle(dsr: float, reason: str) -> Operation:
        meta = {
            "backtest_result": {"sharpe_ratio": 1.3, "deflated_sharpe": dsr},
            "backtest_gate": Verdict("backtest", False, reason.split(" (")[0], reason).to_record(),
        }
        now = datetime.now(UTC)
        return Operation("op", OperationType.AGENT_RESEARCH, OperationStatus.FAILED, None, now, now, now, now, {}, meta)

    blocked = dict(report_rows(cycle(0.99, "win_rate_too_low (38.2% < 45%)")))
    assert "BACKTEST_GATE_MIN_WIN_RATE" in blocked["Gate note"] and "0.99" in blocked["Gate note"]
    assert "Gate note" not in dict(report_rows(cycle(0.60, "win_rate_too_low (38.2% < 45%)")))  # no edge to hide
    assert "Gate note" not in dict(report_rows(cycle(0.99, "too_few_trades (3 < 10)")))
