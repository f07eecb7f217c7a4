"""The binary target: y_t = 1 if max(High[t+1 .. t+horizon]) >= Close_t * (1 + threshold), else 0.

The last `horizon` rows have no label. Label t looks at rows up to `end[t] = t + horizon`, which is what
the splits purge on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from datamodules.errors import DataError


@dataclass(frozen=True)
class Labels:
    y: np.ndarray  # int8 [n - horizon]: label of rows 0 .. n-horizon-1
    end: np.ndarray  # int64 [n - horizon]: the last row each label looks at

    def __len__(self) -> int:
        return len(self.y)


def make_labels(high: np.ndarray, close: np.ndarray, horizon: int, threshold: float) -> Labels:
    """`horizon` and `threshold` as checked by `DataConfig.check`."""
    high, close = np.asarray(high, dtype=np.float64), np.asarray(close, dtype=np.float64)
    n = len(close) - horizon
    if n < 1:
        raise DataError(f"{len(close)} rows leave no label at horizon {horizon}")
    future_high = sliding_window_view(high[1:], horizon).max(axis=1)[:n]
    y = (future_high >= close[:n] * (1 + threshold)).astype(np.int8)
    return Labels(y, np.arange(n, dtype=np.int64) + horizon)
