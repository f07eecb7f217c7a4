"""The train/val/test rows of one fold (`Splits`; `datamodules.folds` lays them out, purge and embargo
included) and the train-only feature scaler."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAGES = ("train", "val", "test")
PURGED = "purged"


@dataclass(frozen=True)
class Splits:
    n: int  # labelled rows
    train: range
    val: range
    test: range

    def assignment(self) -> np.ndarray:
        """The split of each labelled row: 'train', 'val', 'test' or 'purged' (not used by this fold: the
        purge gaps, and with several folds the rows outside its windows)."""
        out = np.full(self.n, PURGED, dtype=object)
        for stage in STAGES:
            out[getattr(self, stage)] = stage
        return out

    @property
    def purged(self) -> int:
        return self.n - sum(len(getattr(self, stage)) for stage in STAGES)


@dataclass(frozen=True)
class Scaler:
    """Per-feature z-score; a feature constant over train gets std 1 (it is only centred)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x = np.ascontiguousarray(x, dtype=np.float64)  # row-major: the sums' order, so the result, is fixed
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)
