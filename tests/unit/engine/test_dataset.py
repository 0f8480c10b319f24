"""Dataset assembly: shapes and dtypes, no warm-up rows, purged chronological splits, too little data."""

from __future__ import annotations

import numpy as np
import pytest

from agent_pipeline.engine.dataset import MIN_ROWS, build_dataset, split_positions
from agent_pipeline.engine.features import compute_features
from agent_pipeline.engine.labels import zigzag_labels
from agent_pipeline.errors import DataError


@pytest.fixture(scope="module")
def built(eurusd, make_strategy):
    strategy = make_strategy()
    return strategy, build_dataset(strategy, eurusd)


def test_arrays_have_trainer_dtypes_and_matching_lengths(built):
    _, dataset = built
    for x, y in (
        (dataset.x_train, dataset.y_train),
        (dataset.x_val, dataset.y_val),
        (dataset.x_test, dataset.y_test),
    ):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert len(x) == len(y) > 0 and x.shape[1] == dataset.n_features
        assert not np.isnan(x).any()
        assert set(np.unique(y)) <= {0, 1, 2}


def test_feature_names_follow_the_fuzzy_sets(built):
    _, dataset = built
    assert dataset.feature_names == ["rsi_14.low", "rsi_14.high", "macd.flat", "bollinger_20.inside"]


def test_split_sizes_follow_the_fractions(built):
    _, dataset = built
    sizes = np.array([len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)])
    np.testing.assert_allclose(sizes / sizes.sum(), [0.7, 0.15, 0.15], atol=0.01)


def test_test_bars_are_the_rows_of_x_test(built, eurusd):
    strategy, dataset = built
    assert len(dataset.test_bars) == len(dataset.x_test)
    assert list(dataset.test_bars.columns) == ["open", "high", "low", "close", "volume"]
    features = compute_features(strategy, eurusd).loc[dataset.test_bars.index]
    np.testing.assert_array_equal(features.to_numpy(dtype=np.float32), dataset.x_test)
    labels = zigzag_labels(eurusd["close"].to_numpy(), 0.003, 10)
    positions = eurusd.index.get_indexer(dataset.test_bars.index)
    np.testing.assert_array_equal(labels[positions], dataset.y_test)
    assert dataset.test_bars.index.is_monotonic_increasing


def test_no_label_look_ahead_crosses_into_the_next_split():
    # Given 1,000 usable rows and a look-ahead of 10 bars
    valid = np.arange(50, 1050)
    train, val, test = split_positions(valid, (0.7, 0.15), lookahead=10)
    # Then each split's last label window (t+1 .. t+10) ends before the next split's first bar
    assert train[-1] + 10 < val[0]
    assert val[-1] + 10 < test[0]
    assert train[-1] + 10 == val[0] - 1  # and the purge drops no more than it must
    assert test[-1] == valid[-1] and train[0] == valid[0]


def test_built_splits_are_chronological_and_purged(eurusd, make_strategy):
    # Given continuous memberships, so each row's features identify its bar
    fuzzy_sets = {
        "rsi_14": {"wide": {"type": "gaussian", "parameters": [50, 40]}},
        "bollinger_20": {"wide": {"type": "gaussian", "parameters": [0.5, 3]}},
    }
    strategy = make_strategy(indicators=[{"type": "rsi"}, {"type": "bollinger"}], fuzzy_sets=fuzzy_sets)
    dataset = build_dataset(strategy, eurusd)
    lookahead = strategy.labels.lookahead
    # Given the positions of each split's first and last rows, recovered from their features
    features = compute_features(strategy, eurusd).to_numpy(dtype=np.float32)
    last_train = _position(features, dataset.x_train[-1])
    first_val, last_val = _position(features, dataset.x_val[0]), _position(features, dataset.x_val[-1])
    first_test = eurusd.index.get_loc(dataset.test_bars.index[0])
    # Then no look-ahead window reaches the next split
    assert last_train + lookahead < first_val
    assert last_val + lookahead < first_test


def _position(features: np.ndarray, row: np.ndarray) -> int:
    matches = np.flatnonzero((features == row).all(axis=1))
    assert len(matches) == 1
    return int(matches[0])


def test_too_few_rows_raise_with_the_count_and_the_minimum(eurusd, make_strategy):
    with pytest.raises(DataError, match=rf"too few usable rows: \d+ .*minimum {MIN_ROWS}"):
        build_dataset(make_strategy(), eurusd.iloc[:150])


def test_a_tiny_split_raises(eurusd, make_strategy):
    strategy = make_strategy(labels={"zigzag_threshold": 0.003, "lookahead": 100})
    with pytest.raises(DataError, match=r"train/validation/test \d+/\d+/\d+ rows"):
        build_dataset(strategy, eurusd.iloc[:600])
