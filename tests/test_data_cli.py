"""`python -m datamodules` as a user runs it: summary, export, feature lists, and one-line errors."""

import numpy as np
import pandas as pd
import pytest

from tests.test_data_support import synthetic_ohlcv


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in stdout.strip().splitlines())


def test_summary_of_the_embedded_data(run_cli, tmp_path):
    result = run_cli("datamodules", "--data-tier", "a20")
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    assert summary["rows"] == "5031"
    assert summary["date_range"] == "1999-01-04 .. 2018-12-31"
    assert summary["features"] == "20"
    assert summary["warmup_rows_dropped"] == "59"
    assert summary["rows_purged"] == "12"
    for stage in ("train", "val", "test"):
        assert int(summary[f"{stage}.rows"]) >= int(summary[f"{stage}.samples"]) > 0
    assert 0 < float(summary["train.positive_rate"]) < 1 and 0 < float(summary["val.positive_rate"]) < 1
    assert "test.positive_rate" not in summary  # promotion alone reads test labels
    assert summary["feature_cache"] == "miss"
    assert list((tmp_path / "cache").glob("a20-*.parquet"))  # $DIRECTION_CACHE_DIR
    again = _summary(run_cli("datamodules", "--data-tier", "a20").stdout)
    assert again["feature_cache"] == "hit" and again["fingerprint"] == summary["fingerprint"]


def test_export_and_custom_settings(run_cli, tmp_path):
    data = tmp_path / "ohlcv.csv"
    synthetic_ohlcv(700).rename(columns=str.upper).to_csv(data)
    result = run_cli("datamodules", "--data-tier", "a50", "--data", data, "--horizon", 3, "--threshold", 0.02,
                     "--input-size", 40, "--train-frac", 0.6, "--val-frac", 0.2, "--test-frac", 0.2,
                     "--embargo", 2, "--export", "out.parquet")
    assert result.returncode == 0, result.stderr
    exported = pd.read_parquet(tmp_path / "out.parquet")
    summary = _summary(result.stdout)
    assert list(exported.columns[:-2]) == run_cli("datamodules", "--list-features", "a50").stdout.split()
    assert list(exported.columns[-2:]) == ["label", "split"]
    assert set(exported["split"]) == {"train", "val", "test", "purged"}
    assert (exported["split"] == "purged").sum() == 2 * (3 + 2) == int(summary["rows_purged"])
    assert isinstance(exported.index, pd.DatetimeIndex) and len(exported) == 700 - 119 - 3
    test = exported["split"] == "test"
    assert set(exported.loc[~test, "label"].unique()) == {0, 1} and exported.loc[test, "label"].isna().all()
    assert np.isfinite(exported.iloc[:, :-2].to_numpy()).all()
    assert summary["horizon"] == "3" and summary["input_size"] == "40"


def test_list_features(run_cli):
    result = run_cli("datamodules", "--list-features", "a50")
    assert result.returncode == 0
    names = result.stdout.split()
    assert len(names) == 50 and names[0] == "ret_1d"


def _write(tmp_path, kind: str) -> str:
    frame = synthetic_ohlcv(300)
    path = tmp_path / ("data.parquet" if kind == "corrupt" else "data.txt" if kind == "txt" else "data.csv")
    if kind == "corrupt":
        path.write_bytes(b"PAR1 truncated")
        return path.name
    if kind == "txt":
        frame.to_csv(path)
        return path.name
    row = frame.index[123]
    if kind == "no_close":
        frame = frame.drop(columns="Close")
    elif kind == "text_price":
        frame["Open"] = frame["Open"].astype(object)
        frame.loc[row, "Open"] = "oops"
    elif kind == "nan":
        frame.loc[row, "Volume"] = np.nan
    elif kind == "duplicate":
        frame = pd.concat([frame, frame.loc[[row]]])
    elif kind == "high_low":
        frame.loc[row, "High"] = frame.loc[row, "Low"] * 0.9
    elif kind == "negative":
        frame.loc[row, "Close"] = -1.0
    elif kind == "short":
        frame = frame.iloc[:150]
    frame.to_csv(path)
    return path.name


BAD = [
    ("missing", ["--data", "absent.csv"], "data file not found: absent.csv"),
    ("txt", ["--data", "{}"], "unsupported format '.txt'"),
    ("corrupt", ["--data", "{}"], "as parquet"),
    ("no_close", ["--data", "{}"], "missing column 'Close'"),
    ("text_price", ["--data", "{}"], "non-numeric Open 'oops' on 2010-06-24"),
    ("nan", ["--data", "{}"], "Volume is NaN or inf on 2010-06-24"),
    ("duplicate", ["--data", "{}"], "duplicate date 2010-06-24"),
    ("high_low", ["--data", "{}"], "High < Low on 2010-06-24"),
    ("negative", ["--data", "{}"], "non-positive Close on 2010-06-24"),
    ("short", ["--data", "{}"], "too few rows for tier a20 with input size 80"),
    ("tier", ["--data-tier", "a30"], "unknown tier 'a30'; known tiers: a20, a50, a200, file"),
    ("horizon", ["--horizon", "0"], "horizon must be an integer >= 1"),
    ("threshold", ["--threshold", "-0.01"], "threshold must be a number > 0"),
    ("fractions", ["--train-frac", "0.8"], "split fractions must sum to 1"),
    ("flag", ["--horizon", "two"], "invalid int value: 'two'"),
]


@pytest.mark.parametrize("kind, args, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path, kind, args, message):
    name = _write(tmp_path, kind) if "{}" in args else None
    result = run_cli("datamodules", *[a.format(name) for a in args], "--export", "out.parquet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "out.parquet").exists()
    assert not any((tmp_path / "cache").glob("*"))  # no feature cache either
    assert not list(tmp_path.glob(".out.parquet*"))
