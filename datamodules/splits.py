"""Chronological train/val/test with purge and embargo, and the train-only feature scaler.

Over n labelled rows: train = [0, a - gap), purged, val = [a, b - gap), purged, test = [b, n), where
a = round(n * train_frac), b = round(n * (train_frac + val_frac)) and gap = horizon + embargo. A train
label (which looks at rows up to t + horizon) therefore ends `embargo + 1` rows before val starts, and
the same holds between val and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.sources import DataError

STAGES = ("train", "val", "test")
PURGED = "purged"
FRACTION_TOL = 1e-6


def check_fractions(train_frac: float, val_frac: float, test_frac: float) -> None:
    fractions = {"train": train_frac, "val": val_frac, "test": test_frac}
    for name, value in fractions.items():
        if not 0 < value < 1:
            raise DataError(f"{name} fraction must be in (0, 1), got {value!r}")
    total = sum(fractions.values())
    if abs(total - 1) > FRACTION_TOL:
        raise DataError(f"split fractions must sum to 1, got {train_frac} + {val_frac} + {test_frac} = {total:g}")


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


def chronological_splits(
    n: int, horizon: int, embargo: int = 5, train_frac: float = 0.70, val_frac: float = 0.15,
    test_frac: float = 0.15,
) -> Splits:
    check_fractions(train_frac, val_frac, test_frac)
    if embargo < 0:
        raise DataError(f"embargo must be >= 0, got {embargo}")
    gap = horizon + embargo
    a, b = round(n * train_frac), round(n * (train_frac + val_frac))
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
