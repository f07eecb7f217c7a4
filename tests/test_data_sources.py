"""Loading and validating OHLCV: real-file quirks accepted, everything else a DataError naming the row."""

import re

import numpy as np
import pandas as pd
import pytest

from datamodules.errors import DataError
from datamodules.sources import embedded_path, fingerprint, load_ohlcv, validate_ohlcv
from tests.test_data_support import synthetic_ohlcv, unsorted_ohlcv, with_quirks


def test_embedded_is_arch_sp500():
    from arch.data import sp500

    expected = sp500.load()
    data = load_ohlcv()
    assert embedded_path().is_file()
    assert len(data) == 5031
    assert (str(data.index[0].date()), str(data.index[-1].date())) == ("1999-01-04", "2018-12-31")
    assert list(data.columns) == ["Open", "High", "Low", "Close", "Volume"]
    np.testing.assert_array_equal(data.index.to_numpy(), expected.index.as_unit("ns").to_numpy())
    np.testing.assert_array_equal(data.to_numpy(), expected[list(data.columns)].to_numpy(dtype=np.float64))


def test_csv_with_quirks_is_accepted(tmp_path):
    raw = with_quirks(synthetic_ohlcv(300))
    quirky = raw.rename(columns=str.lower)
    quirky["ticker"] = "SPY"  # extra, non-numeric column: ignored
    quirky.to_csv(tmp_path / "quirky.csv")
    data = load_ohlcv(tmp_path / "quirky.csv")
    assert data.index.is_monotonic_increasing and data.index.is_unique
    np.testing.assert_allclose(data.to_numpy(), raw[list(data.columns)].to_numpy(), rtol=1e-14)
    assert (data["Volume"] == 0).sum() == 55
    assert (data["High"] == data["Low"]).sum() == 25


def test_unsorted_dates_are_refused_naming_the_first_row_out_of_order(tmp_path):
    message = unsorted_ohlcv(tmp_path / "unsorted.csv")
    with pytest.raises(DataError) as err:
        load_ohlcv(tmp_path / "unsorted.csv")
    assert str(err.value) == f"{tmp_path / 'unsorted.csv'}: {message}"


def test_parquet_with_date_index_and_no_adj_close(tmp_path):
    raw = synthetic_ohlcv(200).drop(columns="Adj Close")
    raw.to_parquet(tmp_path / "data.parquet")
    data = load_ohlcv(tmp_path / "data.parquet")
    np.testing.assert_array_equal(data.to_numpy(), raw.to_numpy())
    assert fingerprint(data) == fingerprint(validate_ohlcv(raw))


def test_tiny_float_noise_is_accepted_and_clipped():
    raw = synthetic_ohlcv(50)
    high = raw["High"].to_numpy().copy()
    high[10] = raw["Close"].iloc[10] * (1 - 1e-9)
    raw["High"] = high
    data = validate_ohlcv(raw)
    assert data["High"].iloc[10] == raw["Close"].iloc[10]


def test_fingerprint_changes_with_one_value():
    raw = synthetic_ohlcv(50)
    changed = raw.copy()
    changed.iloc[49, changed.columns.get_loc("Volume")] += 1
    assert fingerprint(validate_ohlcv(raw)) != fingerprint(validate_ohlcv(changed))


def _broken(kind: str) -> pd.DataFrame:
    frame = synthetic_ohlcv(40)
    column = {"high_low": "High", "high_close": "High", "low_open": "Low", "nan": "Close", "inf": "Open",
              "non_positive": "Low", "negative_volume": "Volume"}.get(kind)
    values = frame[column].to_numpy().copy() if column else None
    row = 17
    if kind == "high_low":
        values[row] = frame["Low"].iloc[row] * 0.99
    elif kind == "high_close":
        values[row] = frame["Close"].iloc[row] * 0.999
    elif kind == "low_open":
        values[row] = frame["Open"].iloc[row] * 1.001
    elif kind == "nan":
        values[row] = np.nan
    elif kind == "inf":
        values[row] = np.inf
    elif kind == "non_positive":
        values[row] = 0.0
    elif kind == "negative_volume":
        values[row] = -5.0
    if column:
        frame[column] = values
    return frame


@pytest.mark.parametrize("kind, message", [
    ("high_low", "High < Low"),
    ("high_close", "High < max(Open, Close)"),
    ("low_open", "Low > min(Open, Close)"),
    ("nan", "Close is NaN or inf"),
    ("inf", "Open is NaN or inf"),
    ("non_positive", "non-positive Low"),
    ("negative_volume", "negative Volume"),
])
def test_bad_values_name_the_first_offending_date(kind, message):
    frame = _broken(kind)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        validate_ohlcv(frame)
    assert str(frame.index[17].date()) in str(err.value)


def test_high_below_low_with_high_low_also_checked_when_open_close_fit():
    frame = synthetic_ohlcv(30)
    row = frame.index[5]
    frame.loc[row, ["Open", "Close", "High", "Low"]] = [100.0, 100.0, 100.0, 101.0]
    with pytest.raises(DataError, match=f"High < Low on {row.date()}"):
        validate_ohlcv(frame)


def test_non_numeric_price_names_value_and_date(tmp_path):
    frame = synthetic_ohlcv(30)
    frame["Close"] = frame["Close"].astype(object)
    frame.iloc[12, frame.columns.get_loc("Close")] = "abc"
    frame.to_csv(tmp_path / "text.csv")
    with pytest.raises(DataError, match=rf"non-numeric Close 'abc' on {frame.index[12].date()}"):
        load_ohlcv(tmp_path / "text.csv")


def test_duplicate_dates_and_unreadable_dates(tmp_path):
    frame = synthetic_ohlcv(30).reset_index()
    frame.loc[20, "Date"] = frame.loc[3, "Date"]
    with pytest.raises(DataError, match=f"duplicate date {frame.loc[3, 'Date'].date()}"):
        validate_ohlcv(frame)
    frame = synthetic_ohlcv(30).reset_index()
    frame["Date"] = frame["Date"].astype(str)
    frame.loc[7, "Date"] = "someday"
    with pytest.raises(DataError, match="unreadable date 'someday' in data row 8"):
        validate_ohlcv(frame)


def test_missing_column_and_missing_dates():
    with pytest.raises(DataError, match="missing column 'Volume'"):
        validate_ohlcv(synthetic_ohlcv(30).drop(columns="Volume"))
    with pytest.raises(DataError, match="no Date column or date index"):
        validate_ohlcv(synthetic_ohlcv(30).reset_index(drop=True))


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_ohlcv(tmp_path / "absent.csv")
    (tmp_path / "data.txt").write_text("Date,Open\n")
    with pytest.raises(DataError, match="unsupported format '.txt'"):
        load_ohlcv(tmp_path / "data.txt")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot read .*bad.parquet as parquet"):
        load_ohlcv(tmp_path / "bad.parquet")
    (tmp_path / "empty.csv").write_text("Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(DataError, match="has no rows"):
        load_ohlcv(tmp_path / "empty.csv")
