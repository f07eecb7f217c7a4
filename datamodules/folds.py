"""Walk-forward folds: where train, val and test lie over the labelled rows, for K >= 1 folds.

Over n labelled rows, with gap = horizon + embargo, a = round(n * train_frac) and
b = round(n * (train_frac + val_frac)):

- test is [b, n), the same for every K (promotion alone reads it);
- the val span is [a, b - gap): the rows after the first training window, less the purge gap before test.
  It is cut into K consecutive blocks: block k is [s_k, s_(k+1)) with s_k = a + floor(k * m / K) and
  m = b - gap - a (block lengths differ by at most one row);
- fold k validates on block k and trains on the rows [0, s_k - gap) (`window` "expanding"), or on the
  last a - gap of them ("rolling": the length of the first fold's train). A train label looks at rows
  up to t + horizon, so the last one ends `embargo + 1` rows before the block starts.

K = 1 is the single split train [0, a - gap), val [a, b - gap), test [b, n). A fold's samples are the
rows of its ranges past the features' warm-up where a window of L rows fits (row >= L - 1), in dataset
rows (labelled row - warm-up). Its block's samples are cut in date order into `select` (the first half,
rounded down: it chooses the epoch and a study's trial) and `report` (the rest less its first `gap`
samples: a select label ends before the first report sample starts). Later folds' train rows contain
earlier folds' blocks, never the reverse; report parts of different folds never share a sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from datamodules.config import DataConfig
from datamodules.splits import Scaler, Splits

PARTS = ("train", "select", "report")


@dataclass(frozen=True)
class Fold:
    """One fold: its ranges of labelled rows and its samples (the dataset rows where each ends, date
    order)."""

    rows: Splits  # train, val (the fold's block) and test, as labelled rows
    train: np.ndarray
    val: np.ndarray  # the block's samples: select, the gap, report
    select: np.ndarray
    report: np.ndarray
    train_rows: range  # dataset rows of train, context rows included: what the scaler sees

    def scaler(self, features: np.ndarray) -> Scaler:
        """The scaler of this fold: fit on its train rows of `features` ([N, F] unscaled dataset)."""
        return Scaler.fit(features[self.train_rows.start:self.train_rows.stop])


def fold_rows(n: int, cfg: DataConfig) -> list[Splits]:
    """The K folds of `n` labelled rows under `cfg` (checked settings), in date order."""
    gap = cfg.horizon + cfg.embargo
    a, b, stop = _val_span(n, cfg)
    starts = [a + k * (stop - a) // cfg.folds for k in range(cfg.folds + 1)]
    first = max(a - gap, 0)  # the first fold's train rows
    out = []
    for start, end in pairwise(starts):
        train_stop = max(start - gap, 0)
        train_start = train_stop - first if cfg.window == "rolling" else 0
        out.append(Splits(n, range(train_start, train_stop), range(start, end), range(b, n)))
    return out


def _val_span(n: int, cfg: DataConfig) -> tuple[int, int, int]:
    """(a, b, b - gap): the first row after the first training window, the first test row, and the end of
    the val span."""
    a, b = round(n * cfg.train_frac), round(n * (cfg.train_frac + cfg.val_frac))
    return a, b, max(b - cfg.horizon - cfg.embargo, a)


def dataset_rows(rows: range, warmup: int) -> range:
    """Labelled rows as rows of the dataset, which starts after the warm-up."""
    return range(max(rows.start - warmup, 0), max(rows.stop - warmup, 0))


def sample_ends(rows: range, warmup: int, input_size: int) -> np.ndarray:
    """The dataset rows of `rows` (labelled) where a window of `input_size` rows ends."""
    data = dataset_rows(rows, warmup)
    return np.arange(max(data.start, input_size - 1), data.stop, dtype=np.int64)


def val_parts(val: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """A block's samples in date order -> (select, report)."""
    half = len(val) // 2
    return val[:half], val[half + gap:]


def walk_forward(n: int, warmup: int, cfg: DataConfig) -> list[Fold]:
    """The folds of `n` labelled rows, for a dataset that starts after `warmup` of them."""
    out = []
    for rows in fold_rows(n, cfg):
        val = sample_ends(rows.val, warmup, cfg.input_size)
        out.append(Fold(rows, sample_ends(rows.train, warmup, cfg.input_size), val,
                        *val_parts(val, cfg.horizon + cfg.embargo), dataset_rows(rows.train, warmup)))
    return out


def misfit(folds: list[Fold], y: np.ndarray) -> str | None:
    """Why `folds` do not fit: the first fold with an empty or one-class train, select or report part
    (`y`: the dataset's labels); None if they fit."""
    for k, fold in enumerate(folds, start=1):
        for part in PARTS:
            ends = getattr(fold, part)
            if len(ends) == 0:
                return f"fold {k}'s {part} part has no sample (its val block has {len(fold.rows.val)} rows)"
            if np.unique(y[ends]).size < 2:
                return f"fold {k}'s {part} part ({len(ends)} samples) holds one class only"
    return None


def largest_fit(n: int, warmup: int, cfg: DataConfig, y: np.ndarray) -> int:
    """The largest number of folds up to `cfg.folds` that fits; 0 if not even one. A block needs
    2 * gap + 1 samples (a select sample, the gap, a report sample), which bounds the search."""
    a, _, stop = _val_span(n, cfg)
    bound = min(cfg.folds, max((stop - a) // (2 * (cfg.horizon + cfg.embargo) + 1), 1))
    return next((k for k in range(bound, 0, -1)
                 if misfit(walk_forward(n, warmup, replace(cfg, folds=k)), y) is None), 0)
