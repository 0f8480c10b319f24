"""The paths task reads the cycle's series up to its fixed end (issue 27): a cut copy when bars came after it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from agent_pipeline.engine.data import load_bars, random_walk_bars, store_bars
from agent_pipeline.tasks.paths import _cut_data

DOCUMENT = {
    "name": "cut_demo", "symbol": "RW", "timeframe": "1d", "indicators": [{"type": "rsi", "period": 14}],
    "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 0, 50]}}},
    "labels": {"zigzag_threshold": 0.02, "lookahead": 5},
}  # fmt: skip


def test_the_paths_read_a_copy_cut_at_the_series_end_only_when_bars_came_after_it(tmp_path: Path) -> None:
    frame = random_walk_bars(300, seed=1, start="1999-01-04")
    bars = frame.set_index(pd.DatetimeIndex(frame.pop("timestamp"), name="date"))
    data = tmp_path / "data"
    store_bars(bars, symbol="RW", timeframe="1d", data_dir=data)
    strategy = tmp_path / "s.yaml"
    strategy.write_text(yaml.safe_dump(DOCUMENT))
    end = str(load_bars("RW", "1d", data).index[-1])
    assert _cut_data(strategy, data, None, tmp_path / "scratch") == data
    assert _cut_data(strategy, data, end, tmp_path / "scratch") == data  # nothing after the end: read in place
    stored = load_bars("RW", "1d", data)
    later = stored.tail(20).copy()
    later.index = pd.bdate_range(stored.index[-1] + pd.offsets.BDay(), periods=20, name="date")
    store_bars(pd.concat([stored, later]), symbol="RW", timeframe="1d", data_dir=data)
    folder = _cut_data(strategy, data, end, tmp_path / "scratch")
    assert folder == tmp_path / "scratch"
    assert folder is not None and str(load_bars("RW", "1d", folder).index[-1]) == end
    assert len(load_bars("RW", "1d", folder)) == 300
