"""Tier registry (a20 ⊂ a50 ⊂ a200, plus `file` for a processed table) and the processed-feature cache.

Building a tier twice for the same OHLCV reads `<cache dir>/<tier>-<key>.parquet`, where the key is a
sha256 of the data and of the tier definition (feature names + `features.VERSION`). The cache dir is
`cache_dir`, else `$DIRECTION_CACHE_DIR`, else `./.cache/features`. Files are written under a temporary
name and renamed, so a failed build never leaves a partial file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from datamodules import features
from datamodules.sources import DataError, fingerprint, load_feature_table

TIERS: dict[str, tuple[str, ...]] = {
    "a20": tuple(f.name for f in features.CORE),
    "a50": tuple(f.name for f in (*features.CORE, *features.EXTENDED)),
    "a200": tuple(f.name for f in (*features.CORE, *features.EXTENDED, *features.ALPHA)),
}
FILE_TIER = "file"
KNOWN_TIERS = (*TIERS, FILE_TIER)
CACHE_ENV = "DIRECTION_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(".cache") / "features"


def check_tier(tier: str) -> str:
    if tier not in KNOWN_TIERS:
        raise DataError(f"unknown tier {tier!r}; known tiers: {', '.join(KNOWN_TIERS)}")
    return tier


def feature_names(tier: str, path: str | Path | None = None) -> list[str]:
    """The tier's feature columns in order; for `file`, the numeric columns of the table at `path`."""
    if check_tier(tier) != FILE_TIER:
        return list(TIERS[tier])
    if path is None:
        raise DataError("tier 'file' takes its features from a file: pass --data PATH")
    return [str(c) for c in load_feature_table(path).features.columns]


def tier_fingerprint(tier: str) -> str:
    spec = "\x1f".join((features.VERSION, tier, *feature_names(tier)))
    return hashlib.sha256(spec.encode()).hexdigest()


def cache_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


@dataclass
class TierBuild:
    tier: str
    features: pd.DataFrame  # one row per OHLCV row, NaN during warm-up
    path: Path  # where the cache file is (or goes)
    from_cache: bool

    def save(self) -> None:
        """Write the cache file (no-op after a cache hit); a cache that cannot be written only warns."""
        if self.from_cache:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.features.to_parquet(tmp)
            os.replace(tmp, self.path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"feature cache not written ({err})", stacklevel=2)


def build_tier(ohlcv: pd.DataFrame, tier: str, cache: str | Path | None = None, save: bool = True) -> TierBuild:
    """The tier's features of a validated OHLCV frame, read from the cache when built before.

    `save=False` leaves writing to the caller (`TierBuild.save()`), which the datamodule does only after
    every other check passed.
    """
    names = feature_names(tier)
    key = hashlib.sha256(f"{fingerprint(ohlcv)}:{tier_fingerprint(tier)}".encode()).hexdigest()
    path = cache_dir(cache) / f"{tier}-{key[:32]}.parquet"
    cached = _read_cache(path, ohlcv.index, names)
    if cached is not None:
        return TierBuild(tier, cached, path, from_cache=True)
    build = TierBuild(tier, features.compute_features(ohlcv, names), path, from_cache=False)
    if save:
        build.save()
    return build


def _read_cache(path: Path, index: pd.DatetimeIndex, names: list[str]) -> pd.DataFrame | None:
    """The cached frame, or None when absent or unusable (then it is rebuilt and overwritten)."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, ArrowException):
        return None
    if list(frame.columns) != names or not frame.index.equals(index):
        return None
    return frame


def drop_warmup(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop the leading rows where any feature is NaN; NaN or inf later on raises, naming the row."""
    values = frame.to_numpy()
    complete = np.isfinite(values).all(axis=1)
    if not complete.any():
        raise DataError(f"too few rows: all {len(frame)} rows are within the features' warm-up (the longest "
                        "indicator window); give a longer history")
    warmup = int(complete.argmax())
    bad = ~complete[warmup:]
    if bad.any():
        row = warmup + int(bad.argmax())
        column = frame.columns[int((~np.isfinite(values[row])).argmax())]
        raise DataError(f"feature {column!r} is {values[row, frame.columns.get_loc(column)]} on "
                        f"{frame.index[row].date()}, after the warm-up")
    return frame.iloc[warmup:], warmup
