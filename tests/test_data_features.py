"""Feature tiers: counts, nesting, finiteness, causality, and the processed-feature cache."""

import os
import re

import numpy as np
import pytest

from datamodules import features, tiers
from datamodules.errors import DataError
from datamodules.sources import validate_ohlcv
from tests.test_data_support import embedded, embedded_features, synthetic_ohlcv, with_quirks

TIERS = ("a20", "a50", "a200")


def test_tier_sizes_and_names():
    assert [len(tiers.feature_names(t)) for t in TIERS] == [20, 50, 200]
    names = tiers.feature_names("a200")
    assert len(set(names)) == 200
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert {"ret_5d", "rv_20d", "rsi_14", "macd_12_26_9", "natr_14", "bb_pctb_20", "volume_z_20d"} <= set(names)


def test_tiers_are_nested_with_identical_values():
    a20, a50, a200 = (tiers.feature_names(t) for t in TIERS)
    assert a50[:20] == a20 and a200[:50] == a50
    large = embedded_features("a200")
    for tier, names in (("a20", a20), ("a50", a50)):
        np.testing.assert_array_equal(large[names].to_numpy(), embedded_features(tier).to_numpy())


@pytest.mark.parametrize("tier, warmup", [("a20", 59), ("a50", 119), ("a200", 250)])
def test_warmup_is_bounded_and_then_everything_is_finite(tier, warmup):
    frame, dropped = tiers.drop_warmup(embedded_features(tier))
    assert dropped == warmup <= 250
    assert np.isfinite(frame.to_numpy()).all()
    assert len(frame) == len(embedded()) - warmup


def test_zero_volume_and_flat_days_stay_finite():
    raw = validate_ohlcv(with_quirks(synthetic_ohlcv(400)))
    frame, dropped = tiers.drop_warmup(features.compute_features(raw, tiers.feature_names("a200")))
    assert dropped == 250
    assert np.isfinite(frame.to_numpy()).all()


def test_nan_after_warmup_names_feature_and_date():
    frame = embedded_features("a20").copy()
    frame.iloc[300, 3] = np.nan
    with pytest.raises(DataError, match=f"feature 'rv_5d' is nan on {frame.index[300].date()}"):
        tiers.drop_warmup(frame)


@pytest.mark.parametrize("tier", TIERS)
def test_truncating_the_data_leaves_earlier_rows_identical(tier):
    data = embedded().iloc[:900]
    full = features.compute_features(data, tiers.feature_names(tier)).to_numpy()
    for t in (300, 451, 777):
        truncated = features.compute_features(data.iloc[: t + 1], tiers.feature_names(tier)).to_numpy()
        np.testing.assert_array_equal(truncated, full[: t + 1])


def test_changing_future_rows_leaves_past_features_unchanged():
    data = embedded().iloc[:700]
    changed = data.copy()
    rng = np.random.default_rng(3)
    changed.iloc[500:] = changed.iloc[500:].to_numpy() * rng.uniform(0.5, 2.0, (200, 1))  # keeps OHLC order
    names = tiers.feature_names("a200")
    before = features.compute_features(data, names).to_numpy()
    after = features.compute_features(validate_ohlcv(changed), names).to_numpy()
    np.testing.assert_array_equal(after[:500], before[:500])
    assert not np.allclose(after[500:], before[500:], equal_nan=True)


def test_second_build_reads_the_cache(tmp_path, monkeypatch):
    data = validate_ohlcv(synthetic_ohlcv(400))
    first = tiers.build_tier(data, "a200", tmp_path / "cache")
    assert not first.from_cache and first.path.is_file()
    assert first.path.parent == tmp_path / "cache"
    mtime = os.stat(first.path).st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("features were rebuilt instead of read from the cache")

    monkeypatch.setattr(features, "compute_features", no_build)
    second = tiers.build_tier(data, "a200", tmp_path / "cache")
    assert second.from_cache and second.path == first.path
    assert os.stat(first.path).st_mtime_ns == mtime
    np.testing.assert_array_equal(second.features.to_numpy(), first.features.to_numpy())
    assert second.features.index.equals(first.features.index)


def test_cache_key_follows_data_and_tier_and_env_dir(tmp_path, monkeypatch):
    data = validate_ohlcv(synthetic_ohlcv(300))
    other = validate_ohlcv(synthetic_ohlcv(300, seed=1))
    build = tiers.build_tier(data, "a20")
    assert build.path.parent == tmp_path / "cache"  # $DIRECTION_CACHE_DIR from conftest
    assert tiers.build_tier(other, "a20").path != build.path
    assert tiers.build_tier(data, "a50").path != build.path
    monkeypatch.delenv(tiers.CACHE_ENV)
    assert tiers.build_tier(data, "a20").path.parent.resolve() == (tmp_path / ".cache" / "features").resolve()


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    data = validate_ohlcv(synthetic_ohlcv(300))
    path = tiers.build_tier(data, "a20").path
    path.write_bytes(b"not parquet")
    again = tiers.build_tier(data, "a20")
    assert not again.from_cache
    assert tiers.build_tier(data, "a20").from_cache
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_unknown_tier_lists_known_ones():
    with pytest.raises(DataError, match="unknown tier 'a30'; known tiers: a20, a50, a200, file"):
        tiers.feature_names("a30")
