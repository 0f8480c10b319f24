"""Forward bars for paper trading tests (issue 27): a planted reversal's process continued, turned or switched off,
and a user's strategy that reads the reversal.

`ktrdr data synth --kind reversal` plants an AR(1) of log returns, r_t = -a r_{t-1} + s e_t, and records a and s in
its sidecar (`<SYMBOL>_1d.synth.json`, `process`). `forward_csv` writes the bars after the stored series' end as that
process would go on (`continue`), with the coefficient's sign turned (`reverse`: the contrarian rule now loses what it
earned) or with no memory at all (`off`: a random walk, no edge), in the layout `ktrdr data append` reads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from agent_pipeline.engine.data import load_bars

# Half-spread of a bar's high and low around its open and close, as a fraction of the price.
SPREAD = 0.002


def reversal_strategy(data_dir: Path, folder: Path, symbol: str, *, epochs: int = 6, hidden: int = 16) -> Path:
    """A user's strategy that reads the planted one-day reversal: SMA(2) fuzzy sets, two-class labels over 2 bars."""
    from agent_pipeline.engine.features import PRIMARY
    from agent_pipeline.llm.space import fuzzy_sets, research_bars, volatility

    bars = research_bars(symbol, "1d", data_dir, 0.2)
    values = PRIMARY["sma"](SimpleNamespace(period=2, smooth=3), bars).to_numpy(dtype=float)
    document: dict[str, Any] = {
        "name": f"{symbol.lower()}_reversal_{hidden}", "symbol": symbol, "timeframe": "1d",
        "indicators": [{"type": "sma", "period": 2}],
        "fuzzy_sets": {"sma_2": fuzzy_sets(values[np.isfinite(values)], 2, 0.3)},
        "model": {"type": "mlp", "hidden_layers": [hidden], "activation": "relu", "dropout": 0.1},
        "labels": {"zigzag_threshold": round(0.05 * volatility(bars) * math.sqrt(2), 6), "lookahead": 2, "hold": False},
        "training": {"epochs": epochs, "batch_size": 64, "learning_rate": 0.01},
    }  # fmt: skip
    path = folder / f"{symbol.lower()}_{hidden}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def forward_bars(data_dir: Path, symbol: str, bars: int, *, change: str = "continue", seed: int = 11) -> pd.DataFrame:
    """`bars` business days of OHLCV after the stored series' end, its planted process `change`d (module docstring)."""
    stored = load_bars(symbol, "1d", data_dir)
    process = json.loads((data_dir / f"{symbol}_1d.synth.json").read_text())["process"]
    coefficient = {"continue": 1.0, "reverse": -1.0, "off": 0.0}[change] * float(process["ar_coefficient"])
    volatility = float(process["innovation_sd"]) / math.sqrt(1 - float(process["ar_coefficient"]) ** 2)
    innovation = volatility * math.sqrt(1 - coefficient**2)
    rng = np.random.default_rng(seed)
    closes = stored["close"].to_numpy(dtype=float)
    previous, price = math.log(closes[-1] / closes[-2]), closes[-1]
    rows = []
    for _ in range(bars):
        previous = coefficient * previous + innovation * rng.normal()
        close = price * math.exp(previous)
        spread = 1 + abs(rng.normal(0.0, SPREAD))
        rows.append(
            (price, max(price, close) * spread, min(price, close) / spread, close, float(rng.integers(1000, 9000)))
        )
        price = close
    dates = pd.bdate_range(stored.index[-1] + pd.offsets.BDay(), periods=bars, name="date")
    return pd.DataFrame(rows, index=dates, columns=["open", "high", "low", "close", "volume"])


def forward_csv(data_dir: Path, symbol: str, bars: int, path: Path, **options: Any) -> Path:
    """`forward_bars` written as a CSV that `ktrdr data append` reads."""
    forward_bars(data_dir, symbol, bars, **options).to_csv(path, index_label="date")
    return path


def trained_cycle(store: Any, data_dir: Path, work: Path, symbol: str, *, discovery: bool = True) -> str:
    """A completed research cycle of `reversal_strategy` on `symbol`, trained and backtested in this process (two
    folds, three epochs): its row holds what a paper account reads (model, backtest folder, trials). Returns its id."""
    from agent_pipeline.engine import research
    from agent_pipeline.store.operations import OperationType

    strategy = reversal_strategy(data_dir, work, symbol, epochs=3)
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=2)
    trained = research.train_walk_forward(strategy, model_dir=work / "models", evaluation=evaluation, data_dir=data_dir)
    folder = Path(trained["model_path"]).parent
    backtest = research.backtest_walk_forward(
        strategy, model_dir=folder, evaluation=evaluation, out_dir=work / "backtest", data_dir=data_dir
    )
    figures = {key: backtest[key] for key in ("sharpe_ratio", "trials", "sharpe_variance", "n_bars")}
    meta = {
        "symbol": symbol, "timeframe": "1d", "strategy_name": strategy.stem, "strategy_path": str(strategy),
        "model_path": trained["model_path"], "backtest_dir": str(work / "backtest"), "backtest_result": figures,
    }  # fmt: skip
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    store.start(cycle.operation_id)
    store.complete(cycle.operation_id, result_summary={"discovery": discovery})
    return str(cycle.operation_id)


def data_copy(source: Path, tmp_path: Path, monkeypatch: Any) -> Path:
    """A test's own copy of the data folder `source`, named by the settings (KTRDR_DATA_DIR); returns it."""
    import shutil

    from agent_pipeline.config import reset_settings

    folder = tmp_path / "data"
    shutil.copytree(source, folder)
    monkeypatch.setenv("KTRDR_DATA_DIR", str(folder))
    reset_settings()
    return folder
