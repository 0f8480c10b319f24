"""The evidence's probability of backtest overfitting: read from each trial's `oos_returns.csv`, aligned on the bars
the trials share, null with a reason until there are enough trials."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.cli.render import overfitting_line
from agent_pipeline.engine.pbo import measure_overfitting
from agent_pipeline.insight.evidence import PBO_MIN_TRIALS, aligned_returns, collect, oos_returns
from agent_pipeline.store.operations import OperationsStore

START = pd.Timestamp("2020-01-01")


def backtested_cycle(store: OperationsStore, folder: Path, symbol: str, returns: np.ndarray, offset: int = 0) -> str:
    """A completed cycle on (symbol, 1h) whose backtest folder holds `returns` from START + offset hours."""
    folder.mkdir(parents=True)
    index = pd.date_range(START + pd.Timedelta(hours=offset), periods=len(returns), freq="h", name="timestamp")
    pd.DataFrame({"return": returns, "buy_and_hold": np.zeros(len(returns))}, index=index).to_csv(
        folder / "oos_returns.csv"
    )
    cycle = store.create_cycle(max_active=100)
    store.merge_metadata(
        cycle.operation_id,
        {
            "symbol": symbol,
            "timeframe": "1h",
            "strategy_name": folder.name,
            "backtest_result": {"sharpe_ratio": 0.5, "num_trades": 20},
            "backtest_dir": str(folder),
        },
    )
    store.start(cycle.operation_id)
    store.complete(cycle.operation_id, result_summary={})
    return cycle.operation_id


def test_evidence_gives_pbo_null_with_its_reason_below_eight_trials_and_a_figure_from_eight(
    store: OperationsStore, tmp_path: Path
) -> None:
    # Given 5 backtested trials on EURUSD and 9 on GBPUSD, whose records start an hour apart
    rng = np.random.default_rng(3)
    few = [backtested_cycle(store, tmp_path / f"e{k}", "EURUSD", rng.normal(0, 0.01, 400)) for k in range(5)]
    returns = rng.normal(0, 0.01, (400, 9))
    for k in range(9):
        backtested_cycle(store, tmp_path / f"g{k}", "GBPUSD", returns[k:, k], offset=k)
    # When the evidence is collected and printed as JSON
    body = json.loads(collect(store).model_dump_json())
    eurusd, gbpusd = body["series"]
    # Then EURUSD has no figure and says why; GBPUSD's is CSCV over the 392 hours all nine share
    assert len(few) == 5 and eurusd["symbol"] == "EURUSD"
    assert eurusd["pbo"] is None and eurusd["pbo_reason"] == f"too few trials: 5 < {PBO_MIN_TRIALS}"
    expected = measure_overfitting(returns[8:], 16)
    pbo = gbpusd["pbo"]
    assert gbpusd["pbo_reason"] is None
    assert 0.0 <= gbpusd["spa_pvalue"] <= 1.0 and gbpusd["spa_models"] == 9  # SPA reads the same aligned bars
    assert pbo["pbo"] == expected.pbo and pbo["probability_of_loss"] == expected.probability_of_loss
    assert (pbo["n_trials"], pbo["blocks"], pbo["bars"], pbo["splits"]) == (9, 16, 384, 12870)
    assert pbo["degradation_slope"] == pytest.approx(expected.degradation_slope, rel=1e-9)
    assert set(pbo["logit_quantiles"]) == {"q05", "q25", "q50", "q75", "q95"}
    assert overfitting_line(collect(store, symbol="GBPUSD").series[0]).startswith(
        "Probability of backtest overfitting (CSCV, 9 trials, 16 blocks): "
    )


def test_evidence_gives_pbo_null_when_the_trials_share_too_few_bars(store: OperationsStore, tmp_path: Path) -> None:
    # Given 8 trials of 100 hours each, each starting 6 hours after the one before: 58 hours shared by all
    rng = np.random.default_rng(4)
    for k in range(8):
        backtested_cycle(store, tmp_path / f"s{k}", "EURUSD", rng.normal(0, 0.01, 100), offset=6 * k)
    (series,) = collect(store).series
    # Then no figure: 16 blocks of at least 4 bars need 64
    assert series.pbo is None and series.pbo_reason == "too few shared bars: 58 < 64"
    assert overfitting_line(series) == "Probability of backtest overfitting: - (too few shared bars: 58 < 64)"


def test_aligned_returns_keep_the_shared_bars_in_time_order(tmp_path: Path) -> None:
    # Given two records over different, overlapping hours, one written out of order
    rng = np.random.default_rng(5)
    for name, offset in (("a", 0), ("b", 3)):
        index = pd.date_range(START + pd.Timedelta(hours=offset), periods=10, freq="h", name="timestamp")
        frame = pd.DataFrame({"return": rng.normal(size=10), "buy_and_hold": 0.0}, index=index)
        (tmp_path / name).mkdir()
        (frame.iloc[::-1] if name == "b" else frame).to_csv(tmp_path / name / "oos_returns.csv")
    # When they are read (a folder without the file is skipped) and aligned
    matrix = aligned_returns(oos_returns([str(tmp_path / "a"), None, str(tmp_path / "missing"), str(tmp_path / "b")]))
    # Then the matrix holds the 7 shared hours, earliest first, one column per record
    assert matrix.shape == (7, 2) and matrix.index.is_monotonic_increasing
    assert matrix.index[0] == START + pd.Timedelta(hours=3)
