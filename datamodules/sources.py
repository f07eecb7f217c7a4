"""Raw data in: the embedded S&P 500 daily OHLCV, a user's CSV/parquet OHLCV file, or a processed feature
table (tier `file`). Everything is validated here; whatever cannot be used raises `DataError` naming the
first offending row.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from datamodules.errors import DataError

OHLCV = ("Open", "High", "Low", "Close", "Volume")
PRICES = OHLCV[:4]
SUFFIXES = (".csv", ".parquet", ".pq")
DATE_NAMES = ("date", "datetime")
RESERVED = ("label", "split")  # columns of the export, so not allowed as features of a processed table
# Real files carry float noise (High below Close by ~1e-9 relative); such rows are accepted and clipped.
OHLC_RTOL = 1e-7


# -- reading ----------------------------------------------------------------------------------------


def embedded_path() -> Path:
    """The S&P 500 file that `arch.data.sp500.load()` reads (found without importing `arch`, which is slow)."""
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded S&P 500 data needs the `arch` package, which is not installed")
    return Path(spec.submodule_search_locations[0]) / "data" / "sp500" / "sp500.csv.gz"


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or parquet file as read, dates not yet interpreted."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory: give a CSV or parquet file")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = ".csv" if path.name.endswith(".csv.gz") else path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"cannot read {path}: unsupported format {path.suffix or '(none)'!r}; "
                        f"use {', '.join(SUFFIXES)}")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, ArrowException) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read {path} as {suffix.lstrip('.')}: {first_line}") from None
    if frame.empty:
        raise DataError(f"{path} has no rows")
    return frame


def date_indexed(frame: pd.DataFrame, path: str | Path = "data") -> pd.DataFrame:
    """The frame indexed by its Date column (any case) or date index; bad, repeated or unsorted dates raise
    (every command reads a file the same way: a shuffled file is a mistake, not something to sort silently)."""
    columns = [c for c in frame.columns if str(c).strip().lower() in DATE_NAMES]
    if columns:
        raw = frame[columns[0]]
        frame = frame.drop(columns=columns[0])
    elif isinstance(frame.index, pd.DatetimeIndex) or str(frame.index.name).strip().lower() in DATE_NAMES:
        raw = frame.index.to_series()
    else:
        raise DataError(f"{path} has no Date column or date index (columns: {_names(frame.columns)})")
    with warnings.catch_warnings():  # pandas warns when it falls back to per-element parsing
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(pd.Series(raw.to_numpy()), errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        raise DataError(f"{path}: unreadable date {raw.iloc[bad[0]]!r} in data row {bad[0] + 1}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    frame = frame.set_axis(pd.DatetimeIndex(dates).as_unit("ns").rename("date"), axis=0)
    duplicated = frame.index.duplicated()
    if duplicated.any():
        raise DataError(f"{path}: duplicate date {_day(frame.index[duplicated.argmax()])}")
    earlier = np.diff(frame.index.asi8) < 0
    if earlier.any():
        i = int(earlier.argmax()) + 1
        raise DataError(f"{path}: dates are not in increasing order: {_day(frame.index[i])} in data row {i + 1} "
                        f"comes after {_day(frame.index[i - 1])}; sort the rows by date")
    return frame


def _find_column(frame: pd.DataFrame, name: str, path: Path) -> str:
    matches = [c for c in frame.columns if str(c).strip().lower() == name.lower()]
    if not matches:
        raise DataError(f"{path}: missing column {name!r} (columns: {_names(frame.columns)})")
    if len(matches) > 1:
        raise DataError(f"{path}: column {name!r} appears more than once ({_names(matches)})")
    return matches[0]


def _numeric(frame: pd.DataFrame, column: str, label: str, path: Path) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
    values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    unreadable = np.isnan(values) & raw.notna().to_numpy()
    if unreadable.any():
        i = unreadable.argmax()
        raise DataError(f"{path}: non-numeric {label} {raw.iloc[i]!r} on {_day(frame.index[i])}")
    _require(np.isfinite(values), f"{path}: {label} is NaN or inf", frame.index, values)
    return values


def _require(ok: np.ndarray, what: str, index: pd.DatetimeIndex, values: np.ndarray | None = None) -> None:
    if not ok.all():
        i = int(np.argmin(ok))
        shown = f" ({float(values[i])!r})" if values is not None else ""
        raise DataError(f"{what} on {_day(index[i])}{shown}")


def _day(stamp: pd.Timestamp) -> str:
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _names(columns) -> str:
    return ", ".join(map(str, columns)) or "none"


# -- OHLCV ------------------------------------------------------------------------------------------


def load_ohlcv(path: str | Path | None = None) -> pd.DataFrame:
    """Validated daily OHLCV from `path` (CSV or parquet) or, when None, the embedded S&P 500 (1999–2018).

    Columns are matched case-insensitively and returned as Open, High, Low, Close, Volume (float64);
    others (`Adj Close`, ...) are ignored. Dates must be increasing. Zero volume and flat days
    (Open = High = Low = Close) are valid.
    """
    source = embedded_path() if path is None else Path(path)
    return validate_ohlcv(read_table(source), source)


def validate_ohlcv(frame: pd.DataFrame, source: str | Path = "data") -> pd.DataFrame:
    """Check a frame (dates as a column or the index) and return its five OHLCV columns as float64."""
    frame = date_indexed(frame, source)
    source = Path(source)
    index = frame.index
    columns = {name: _numeric(frame, _find_column(frame, name, source), name, source) for name in OHLCV}
    for name in PRICES:
        _require(columns[name] > 0, f"{source}: non-positive {name}", index, columns[name])
    _require(columns["Volume"] >= 0, f"{source}: negative Volume", index, columns["Volume"])
    o, h, lo, c = (columns[name] for name in PRICES)
    slack = OHLC_RTOL * h
    _require(h >= lo - slack, f"{source}: High < Low", index)
    _require(h >= np.maximum(o, c) - slack, f"{source}: High < max(Open, Close)", index)
    _require(np.minimum(o, c) >= lo - slack, f"{source}: Low > min(Open, Close)", index)
    columns["High"] = np.maximum.reduce([h, o, c])
    columns["Low"] = np.minimum.reduce([lo, o, c])
    return pd.DataFrame(columns, index=index)


# -- processed feature table (tier `file`) --------------------------------------------------------------


@dataclass(frozen=True)
class FeatureTable:
    features: pd.DataFrame  # every numeric column (High and Close included) as float64, warm-up NaN kept
    high: np.ndarray  # for the labels
    close: np.ndarray


def load_feature_table(path: str | Path) -> FeatureTable:
    """A processed table: its numeric columns are the features, so High and Close (required, for the
    labels) are features too; non-numeric columns are ignored. NaN is allowed only in the leading rows
    (the warm-up, dropped by `tiers.drop_warmup`), inf nowhere.
    """
    path = Path(path)
    frame = date_indexed(read_table(path), path)
    high_col, close_col = (_find_column(frame, name, path) for name in ("High", "Close"))
    for column, label in ((high_col, "High"), (close_col, "Close")):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{path}: column {column!r} is not numeric; {label} is needed for the labels")
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    reserved = [c for c in numeric if str(c).strip().lower() in RESERVED]
    if reserved:
        raise DataError(f"{path}: column {reserved[0]!r} is reserved for the export; rename or drop it")
    features = frame[numeric].astype(np.float64).rename(columns=str)
    _require(~np.isinf(features.to_numpy()).any(axis=1), f"{path}: inf in a feature", features.index)
    high, close = (features[str(c)].to_numpy() for c in (high_col, close_col))
    _require(~(high <= 0), f"{path}: non-positive High", features.index, high)
    _require(~(close <= 0), f"{path}: non-positive Close", features.index, close)
    return FeatureTable(features, high, close)


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a frame's dates, column names and float64 values."""
    digest = hashlib.sha256()
    digest.update(frame.index.as_unit("ns").asi8.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()
