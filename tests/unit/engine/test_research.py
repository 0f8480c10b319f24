"""The glue on the bundled data: a strategy file is trained, then its model trades the test period."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_pipeline.engine.research import backtest_strategy, prepare, train_strategy
from agent_pipeline.errors import StrategyValidationError

STRATEGY = """
name: glue_test
symbol: {symbol}
timeframe: {timeframe}
indicators:
  - {{type: rsi, period: 14}}
fuzzy_sets:
  rsi_14:
    oversold: {{type: triangular, parameters: [0, 20, 40]}}
    neutral: {{type: triangular, parameters: [30, 50, 70]}}
    overbought: {{type: triangular, parameters: [60, 80, 100]}}
model: {{hidden_layers: [8]}}
training: {{epochs: 2, batch_size: 128}}
"""


def write_strategy(folder: Path, symbol: str = "EURUSD", timeframe: str = "1h") -> Path:
    path = folder / "glue_test.yaml"
    path.write_text(STRATEGY.format(symbol=symbol, timeframe=timeframe), encoding="utf-8")
    return path


def test_train_then_backtest_a_strategy_on_bundled_data(tmp_path):
    path = write_strategy(tmp_path)
    epochs: list[int] = []
    trained = train_strategy(
        path, model_dir=tmp_path / "models", device="cpu", on_epoch=lambda p: epochs.append(p.epoch)
    )
    model_path = tmp_path / "models" / "glue_test" / "model.pt"
    assert trained.model_path == str(model_path) and model_path.exists()
    assert (tmp_path / "models" / "glue_test" / "checkpoint.pt").exists()
    assert epochs == [1, 2] and 0 <= trained.accuracy <= 1
    summary = json.loads(json.dumps(trained.to_summary(), allow_nan=False))
    assert {"accuracy", "final_loss", "initial_loss", "model_path"} <= set(summary)

    result = backtest_strategy(path, model_path=model_path, out_dir=tmp_path / "bt")
    _, dataset = prepare(path)
    assert result.n_bars == len(dataset.test_bars)
    assert (tmp_path / "bt" / "equity.csv").exists() and (tmp_path / "bt" / "metrics.json").exists()
    assert 0 <= result.max_drawdown <= 1 and 0 <= result.win_rate <= 1


def test_a_daily_index_strategy_trains(tmp_path):
    path = write_strategy(tmp_path, "SP500", "1d")
    result = train_strategy(path, model_dir=tmp_path / "models", device="cpu")
    assert result.epochs_run == 2


def test_a_pair_without_data_is_refused_before_training(tmp_path):
    path = write_strategy(tmp_path, "GBPJPY", "1h")
    with pytest.raises(StrategyValidationError, match="no data for GBPJPY 1h"):
        train_strategy(path, model_dir=tmp_path / "models")
    assert not (tmp_path / "models").exists()
