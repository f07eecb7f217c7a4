"""Chronological train/val/test with purge and embargo, and the train-only feature scaler.

Over n labelled rows: train = [0, a - gap), purged, val = [a, b - gap), purged, test = [b, n), where
a = round(n * train_frac), b = round(n * (train_frac + val_frac)) and gap = horizon + embargo. A train
label (which looks at rows up to t + horizon) therefore ends `embargo + 1` rows before val starts, and
the same holds between val and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.config import DataConfig

STAGES = ("train", "val", "test")
PURGED = "purged"


@dataclass(frozen=True)
class Splits:
    n: int  # labelled rows
    train: range
    val: range
    test: range

    def assignment(self) -> np.ndarray:
        """The split of each labelled row: 'train', 'val', 'test' or 'purged'."""
        out = np.full(self.n, PURGED, dtype=object)
        for stage in STAGES:
            out[getattr(self, stage)] = stage
        return out

    @property
    def purged(self) -> int:
        return self.n - sum(len(getattr(self, stage)) for stage in STAGES)


def chronological_splits(n: int, cfg: DataConfig) -> Splits:
    """The splits of `n` labelled rows under `cfg`'s fractions, horizon and embargo (checked settings)."""
    gap = cfg.horizon + cfg.embargo
    a, b = round(n * cfg.train_frac), round(n * (cfg.train_frac + cfg.val_frac))
    return Splits(n, range(0, max(a - gap, 0)), range(a, max(b - gap, a)), range(b, n))


@dataclass(frozen=True)
class Scaler:
    """Per-feature z-score; a feature constant over train gets std 1 (it is only centred)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)
