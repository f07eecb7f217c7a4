"""Labels against a direct loop; the last `horizon` rows have none; each label's end index."""

import numpy as np
import pytest

from datamodules.config import DataConfig
from datamodules.errors import DataError
from datamodules.labels import make_labels
from tests.test_data_support import synthetic_ohlcv


def reference(high, close, horizon, threshold):
    return [int(max(high[t + 1 : t + horizon + 1]) >= close[t] * (1 + threshold))
            for t in range(len(close) - horizon)]


@pytest.mark.parametrize("horizon, threshold", [(1, 0.01), (1, 0.002), (3, 0.01), (5, 0.02), (10, 0.005)])
def test_labels_match_a_python_loop(horizon, threshold):
    frame = synthetic_ohlcv(120, seed=horizon)
    high, close = frame["High"].to_numpy(), frame["Close"].to_numpy()
    labels = make_labels(high, close, horizon, threshold)
    assert labels.y.tolist() == reference(high, close, horizon, threshold)
    assert 0 < labels.y.mean() < 1
    assert len(labels) == len(close) - horizon  # the last `horizon` rows have no label
    np.testing.assert_array_equal(labels.end, np.arange(len(close) - horizon) + horizon)


def test_label_boundary_and_window():
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    high = np.array([100.0, 101.0, 100.5, 100.0, 103.0])
    assert make_labels(high, close, 1, 0.01).y.tolist() == [1, 0, 0, 1]  # 101 >= 100 * 1.01 counts
    assert make_labels(high, close, 2, 0.01).y.tolist() == [1, 0, 1]
    assert make_labels(high, close, 4, 0.025).y.tolist() == [1]


@pytest.mark.parametrize("horizon, threshold, message", [
    (0, 0.01, "horizon must be an integer >= 1"),
    (-2, 0.01, "horizon must be an integer >= 1"),
    (1.5, 0.01, "horizon must be an integer >= 1"),
    (1, 0.0, "threshold must be a number > 0"),
    (1, -0.01, "threshold must be a number > 0"),
    (1, float("nan"), "threshold must be a number > 0"),
])
def test_bad_target_settings(horizon, threshold, message):
    with pytest.raises(DataError, match=message):
        DataConfig(horizon=horizon, threshold=threshold).check()


def test_too_short_for_the_horizon():
    with pytest.raises(DataError, match="leave no label"):
        make_labels(np.ones(3), np.ones(3), 3, 0.01)
