"""The model-ready dataset of a strategy: features, labels and a chronological split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Label encoding shared by labels, trainer and backtester.
SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES = ("SELL", "HOLD", "BUY")


@dataclass(frozen=True)
class Dataset:
    """Arrays ready for the trainer (float32 features, int64 labels) plus the test period's prices."""

    feature_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_bars: pd.DataFrame  # OHLCV rows aligned with x_test, for the backtester

    @property
    def n_features(self) -> int:
        return len(self.feature_names)
