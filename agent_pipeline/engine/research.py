"""The engine's two entry points for the pipeline: train a strategy file, backtest its model.

Each reads the strategy YAML (checked against the data on hand), loads its bars, builds the dataset and
hands over to the trainer or the backtester. Torch loads with this module: only the GPU training task and
the backtest task import it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent_pipeline.engine.backtest import BacktestResult, run_backtest
from agent_pipeline.engine.data import available_pairs, load_bars
from agent_pipeline.engine.dataset import Dataset, build_dataset
from agent_pipeline.engine.strategy import Strategy, load_strategy
from agent_pipeline.engine.trainer import EpochProgress, TrainingResult, train

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"


def prepare(strategy_path: Path, data_dir: Path | None = None) -> tuple[Strategy, Dataset]:
    """The validated strategy and its dataset.

    Raises:
        StrategyValidationError: the file breaks the grammar or names a pair without data.
        DataError: the bars cannot be read.
    """
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    return strategy, build_dataset(strategy, load_bars(strategy.symbol, strategy.timeframe, data_dir))


def train_strategy(
    strategy_path: Path,
    *,
    model_dir: Path,
    data_dir: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_path: Path | None = None,
) -> TrainingResult:
    """Train the strategy in `strategy_path`; the model goes to `model_dir/<strategy name>/model.pt`.

    Args:
        checkpoint_path: defaults to `model_dir/<strategy name>/checkpoint.pt`, so a redelivered task
            resumes from its last finished epoch.

    Raises:
        StrategyValidationError, DataError, TrainingError, CancelledError: see `prepare` and `trainer.train`.
    """
    strategy, dataset = prepare(strategy_path, data_dir)
    folder = Path(model_dir) / strategy.name
    return train(
        strategy,
        dataset,
        model_path=folder / MODEL_FILE,
        checkpoint_path=checkpoint_path or folder / CHECKPOINT_FILE,
        seed=seed,
        device=device,
        on_epoch=on_epoch,
        should_cancel=should_cancel,
    )


def backtest_strategy(
    strategy_path: Path, *, model_path: Path, data_dir: Path | None = None, out_dir: Path
) -> BacktestResult:
    """Trade the strategy's test period with its trained model; equity.csv and metrics.json go to `out_dir`.

    Raises:
        StrategyValidationError, DataError, BacktestError: see `prepare` and `backtest.run_backtest`.
    """
    strategy, dataset = prepare(strategy_path, data_dir)
    return run_backtest(strategy, dataset, Path(model_path), out_dir=Path(out_dir))
