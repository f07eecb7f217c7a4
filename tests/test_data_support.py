"""Helpers shared by the data tests (no tests here): small synthetic OHLCV frames and cached embedded builds."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from datamodules import features, sources, tiers


def synthetic_ohlcv(n: int = 400, seed: int = 0, start: str = "2010-01-04") -> pd.DataFrame:
    """A random-walk daily OHLCV frame that passes validation; index named Date."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = rng.integers(1_000, 100_000, n).astype(np.float64)
    index = pd.bdate_range(start, periods=n, name="Date")
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close, "Adj Close": close * 0.9,
                         "Volume": volume}, index=index)


def with_quirks(frame: pd.DataFrame) -> pd.DataFrame:
    """Zero-volume stretches and flat days (Open = High = Low = Close), both valid in real files."""
    out = frame.copy()
    out.iloc[60:90, out.columns.get_loc("Volume")] = 0.0
    flat = out["Close"].to_numpy()[150]
    for column in ("Open", "High", "Low", "Close"):
        out.iloc[150:175, out.columns.get_loc(column)] = flat
    out.iloc[150:175, out.columns.get_loc("Volume")] = 0.0
    return out


@functools.cache
def embedded() -> pd.DataFrame:
    return sources.load_ohlcv()


@functools.cache
def embedded_features(tier: str) -> pd.DataFrame:
    """The tier's features of the embedded data, computed once per test session (read-only: copy first)."""
    return features.compute_features(embedded(), tiers.feature_names(tier))


def unsorted_ohlcv(path) -> str:
    """The embedded data with two rows swapped, written to `path` (CSV); returns the error every command gives."""
    frame = embedded().reset_index().rename(columns={"date": "Date"})
    frame.iloc[[3000, 3001]] = frame.iloc[[3001, 3000]].to_numpy()
    frame.to_csv(path, index=False)
    first, before = (frame["Date"].iloc[k].date() for k in (3001, 3000))
    return f"dates are not in increasing order: {first} in data row 3002 comes after {before}; sort the rows by date"
