"""`DataConfig`: the data settings of a run, their defaults and their validation, in one place. The
pipeline (`prepared.prepare`), `TierDataModule` and the `python -m datamodules` flags take it whole;
`training.config.RunConfig` composes it as its `data` section."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from datamodules import tiers
from datamodules.errors import DataError

FRACTION_TOL = 1e-6
WINDOWS = ("expanding", "rolling")


@dataclass(frozen=True)
class DataConfig:
    tier: str = "a20"
    # None: the embedded S&P 500 daily OHLCV shipped by `arch`. `free` (field metadata): a setting that does
    # not change the experiment, so a study resumes and an ablation cell is reused across it
    # (`training.config.FREE`)
    path: str | None = field(default=None, metadata={"free": "where the file lies: its content is in the "
                                                             "data fingerprint"})
    input_size: int = 80  # context length L in trading days
    horizon: int = 1  # label: max(High[t+1 .. t+horizon]) >= Close_t * (1 + threshold)
    threshold: float = 0.01
    train_frac: float = 0.70
    val_frac: float = 0.15
    test_frac: float = 0.15
    embargo: int = 5  # rows dropped after each purge gap, on top of `horizon`
    folds: int = 1  # K walk-forward folds over the val span (`datamodules.folds`); 1: one train/val split
    window: str = "expanding"  # a fold's train rows: all before its block, or `rolling`: the first's length
    batch_size: int = 64

    def check(self) -> DataConfig:
        """Raise `DataError` naming the first unusable setting; return self."""
        tiers.check_tier(self.tier)
        if self.tier == tiers.FILE_TIER and self.path is None:
            raise DataError("tier 'file' needs a processed feature table: pass --data PATH")
        for name, low in (("input_size", 1), ("horizon", 1), ("embargo", 0), ("folds", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.window not in WINDOWS:
            raise DataError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float) or not (
                math.isfinite(self.threshold) and self.threshold > 0):
            raise DataError(f"threshold must be a number > 0, got {self.threshold!r}")
        fractions = {"train": self.train_frac, "val": self.val_frac, "test": self.test_frac}
        for name, value in fractions.items():
            if not 0 < value < 1:
                raise DataError(f"{name} fraction must be in (0, 1), got {value!r}")
        total = sum(fractions.values())
        if abs(total - 1) > FRACTION_TOL:
            raise DataError(f"split fractions must sum to 1, got {self.train_frac} + {self.val_frac} + "
                            f"{self.test_frac} = {total:g}")
        return self


def flag_of(field: str) -> str:
    """The command-line flag of a data setting: `--data-tier`, `--data`, else `--field-name`."""
    return {"tier": "--data-tier", "path": "--data"}.get(field, "--" + field.replace("_", "-"))
