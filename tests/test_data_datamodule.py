"""TierDataModule on the embedded data and on a processed feature table (tier `file`)."""


import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.__main__ import main as cli
from datamodules.config import DataConfig
from datamodules.datamodule import TierDataModule
from datamodules.errors import DataError
from tests.test_data_support import embedded, synthetic_ohlcv


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def a20(tmp_path_factory):
    dm = TierDataModule(DataConfig(), cache_dir=str(tmp_path_factory.mktemp("a20")))
    dm.setup("fit")
    return dm


def test_built_from_data_config(a20):
    assert a20.n_features == 20 and len(a20.feature_names) == 20
    assert len(a20.fingerprint) == 64 and len(a20.data_fingerprint) == 64
    assert a20.fingerprint != a20.data_fingerprint
    assert set(a20.date_range) == {"train", "val", "test"}
    assert a20.date_range["train"][1] < a20.date_range["val"][0] < a20.date_range["val"][1] < a20.date_range["test"][0]
    assert a20.date_range["test"][1] == "2018-12-28"  # 2018-12-31 has no next day: no label
    assert a20.source.endswith("sp500.csv.gz")


def test_setup_is_idempotent(a20):
    prepared, train = a20.prepared, a20.dataset("train")
    a20.setup("fit")
    a20.setup("test")
    assert a20.prepared is prepared and a20.dataset("train") is train


def test_loaders(a20):
    xb, yb = next(iter(a20.train_dataloader()))
    assert xb.shape == (64, 80, 20) and xb.dtype == torch.float32
    assert yb.shape == (64,) and yb.dtype == torch.float32
    val = list(a20.val_dataloader())  # Lightning validates on the selection part of val
    labels = torch.cat([y for _, y in val]).numpy()
    np.testing.assert_array_equal(labels, a20.labels("val_select"))
    assert sum(len(y) for _, y in val) == len(a20.labels("val_select"))  # drop_last is off
    assert a20.labels("val").dtype == np.float32
    # the two parts of val: in date order, apart by the purge gap (horizon + embargo), covering val between them
    select, report, whole = a20.prepared.ends["val_select"], a20.prepared.ends["val_report"], a20.prepared.ends["val"]
    assert select[-1] + 1 + 1 + 5 == report[0] and len(select) == len(whole) // 2
    np.testing.assert_array_equal(np.concatenate([select, whole[len(select):len(select) + 6], report]), whole)


def test_train_shuffle_follows_the_torch_seed(a20):
    def first_batch_labels(seed):
        torch.manual_seed(seed)
        return next(iter(a20.train_dataloader()))[1]

    assert torch.equal(first_batch_labels(7), first_batch_labels(7))
    assert not torch.equal(first_batch_labels(7), first_batch_labels(8))
    val_x = next(iter(a20.val_dataloader()))[0]
    assert torch.equal(val_x[0], a20.dataset("val_select")[0][0])  # val keeps date order


def test_dates_labels_volatility_align(a20):
    raw = embedded()
    close = raw["Close"].to_numpy()
    log_ret = np.diff(np.log(close), prepend=np.nan)
    for stage in ("train", "val", "test"):
        dates = a20.dates(stage)
        assert isinstance(dates, pd.DatetimeIndex) and dates.is_monotonic_increasing
        vol = a20.volatility(stage)
        assert vol.shape == (len(dates), 2) and vol.dtype == np.float64 and np.isfinite(vol).all()
        assert len(a20.labels(stage)) == len(dates)
        for k in (0, len(dates) // 2, len(dates) - 1):
            t = raw.index.get_loc(dates[k])
            expected = [np.sqrt(252 * np.mean(log_ret[t - w + 1 : t + 1] ** 2)) for w in (5, 20)]
            np.testing.assert_allclose(vol[k], expected, rtol=1e-10)
            expected_label = raw["High"].iloc[t + 1] >= close[t] * 1.01
            assert a20.labels(stage)[k] == float(expected_label)


def test_window_context_may_reach_back_but_never_forward(a20):
    x = a20.prepared.x
    ds = a20.dataset("val")
    first = ds.ends[0]
    window = ds[0][0].numpy()
    np.testing.assert_array_equal(window, x[first - 79 : first + 1])
    assert a20.prepared.split[first - 79] != "val"  # context from before the split: past features


@pytest.mark.parametrize("tier", ["a20", "a50", "a200"])
def test_contexts_60_to_220_on_every_tier(tier, shared_cache):
    dates = {}
    for input_size in (60, 220):
        dm = TierDataModule(DataConfig(tier=tier, input_size=input_size), cache_dir=shared_cache)
        dm.setup()
        xb, _ = next(iter(dm.val_dataloader()))
        assert xb.shape == (64, input_size, dm.n_features)
        dates[input_size] = (dm.dates("val"), dm.dates("test"))
    # val and test hold the same dates for every context length (and tier)
    for a, b in zip(dates[60], dates[220], strict=True):
        pd.testing.assert_index_equal(a, b)


def test_context_too_long_is_a_clear_error():
    with pytest.raises(DataError, match="too few rows for tier a20 with input size 5000"):
        TierDataModule(DataConfig(input_size=5000)).setup()


@pytest.mark.parametrize("kwargs, message", [
    ({"tier": "a30"}, "unknown tier 'a30'"),
    ({"horizon": 0}, "horizon must be"),
    ({"threshold": 0.0}, "threshold must be"),
    ({"train_frac": 0.8}, "must sum to 1"),
    ({"embargo": -1}, "embargo must be"),
    ({"input_size": 0}, "input_size must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"tier": "file"}, "tier 'file' needs"),
])
def test_bad_settings_raise_in_setup(kwargs, message):
    dm = TierDataModule(DataConfig(**kwargs))
    with pytest.raises(DataError, match=message):
        dm.setup()


def _feature_table(tmp_path, rows=400):
    frame = synthetic_ohlcv(rows).drop(columns="Adj Close")
    table = pd.DataFrame({
        "High": frame["High"], "close": frame["Close"],
        "momentum_10": frame["Close"].pct_change(10),
        "range": frame["High"] / frame["Low"] - 1,
        "ticker": "SPY",  # not numeric: not a feature
    })
    return frame, table


def test_file_tier(tmp_path, capsys):
    frame, table = _feature_table(tmp_path)
    table.to_parquet(tmp_path / "features.parquet")
    dm = TierDataModule(DataConfig(tier="file", path=str(tmp_path / "features.parquet"), input_size=30))
    dm.setup()
    assert dm.feature_names == ["High", "close", "momentum_10", "range"]
    summary = dm.summary()
    assert summary["warmup_rows_dropped"] == 10 and summary["feature_cache"] == "none"
    exported = dm.frame()
    assert exported.index[0] == frame.index[10]
    high, close = frame["High"].to_numpy(), frame["Close"].to_numpy()
    t = 200
    assert exported["label"].iloc[t - 10] == int(high[t + 1] >= close[t] * 1.01)
    assert np.isfinite(dm.volatility("train")).all()
    cli(["--list-features", "file", "--data", str(tmp_path / "features.parquet")])
    assert capsys.readouterr().out.split() == dm.feature_names


def test_file_tier_nan_after_warmup_and_missing_high(tmp_path):
    _, table = _feature_table(tmp_path)
    holed = table.copy()
    holed.iloc[150, holed.columns.get_loc("range")] = np.nan
    holed.to_csv(tmp_path / "holed.csv")
    with pytest.raises(DataError, match=f"feature 'range' is nan on {table.index[150].date()}"):
        TierDataModule(DataConfig(tier="file", path=str(tmp_path / "holed.csv"))).setup()
    table.drop(columns="High").to_csv(tmp_path / "nohigh.csv")
    with pytest.raises(DataError, match="missing column 'High'"):
        TierDataModule(DataConfig(tier="file", path=str(tmp_path / "nohigh.csv"))).setup()
    table.rename(columns={"range": "label"}).to_csv(tmp_path / "label.csv")
    with pytest.raises(DataError, match="'label' is reserved"):
        TierDataModule(DataConfig(tier="file", path=str(tmp_path / "label.csv"))).setup()
