"""Chronological splits: purge and embargo between splits, train-only scaling."""

import numpy as np
import pandas as pd
import pytest

from datamodules.config import DataConfig
from datamodules.errors import DataError
from datamodules.folds import fold_rows
from datamodules.labels import make_labels
from datamodules.prepared import prepare
from datamodules.splits import Scaler
from tests.test_data_support import synthetic_ohlcv


@pytest.mark.parametrize("n, horizon, embargo", [(1000, 1, 5), (1000, 5, 0), (777, 10, 3), (200, 2, 5)])
def test_no_label_window_reaches_into_the_next_split(n, horizon, embargo):
    frame = synthetic_ohlcv(n + horizon)
    labels = make_labels(frame["High"].to_numpy(), frame["Close"].to_numpy(), horizon, 0.01)
    [splits] = fold_rows(len(labels), DataConfig(horizon=horizon, embargo=embargo))
    train, val, test = splits.train, splits.val, splits.test
    assert len(train) and len(val) and len(test)
    assert labels.end[train].max() < val.start and labels.end[val].max() < test.start
    assert val.start - train.stop >= horizon + embargo and test.start - val.stop >= horizon + embargo
    assert splits.purged == 2 * (horizon + embargo)
    assignment = splits.assignment()
    assert set(assignment) == {"train", "val", "test", "purged"}
    assert (assignment == "test").sum() == len(test) and test.stop == n


def test_fractions_are_respected():
    [splits] = fold_rows(1000, DataConfig(horizon=1, embargo=5, train_frac=0.6, val_frac=0.2, test_frac=0.2))
    assert (splits.train.stop, splits.val.start, splits.val.stop, splits.test.start) == (594, 600, 794, 800)


@pytest.mark.parametrize("fractions, message", [
    ((0.7, 0.2, 0.2), "must sum to 1"),
    ((0.7, 0.15, 0.1499), "must sum to 1"),
    ((1.0, 0.0, 0.0), "fraction must be in"),
])
def test_bad_fractions(fractions, message):
    train, val, test = fractions
    with pytest.raises(DataError, match=message):
        DataConfig(train_frac=train, val_frac=val, test_frac=test).check()


def test_fractions_within_tolerance_are_accepted():
    DataConfig(train_frac=0.7, val_frac=0.15, test_frac=0.1500004).check()


def test_scaler():
    x = np.random.default_rng(0).normal(3, 2, (100, 4))
    x[:, 2] = 7.0
    scaler = Scaler.fit(x)
    z = scaler.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z[:, [0, 1, 3]].std(axis=0), 1, atol=1e-6)
    assert (z[:, 2] == 0).all()


def _prepared(tmp_path, frame, name, **settings):
    path = tmp_path / name
    frame.to_csv(path)
    return prepare(DataConfig(path=str(path), **settings))


def test_prepared_purge_by_date_and_train_only_scaling(tmp_path):
    frame = synthetic_ohlcv(600)
    settings = {"tier": "a20", "input_size": 20, "horizon": 3, "embargo": 4}
    p = _prepared(tmp_path, frame, "a.csv", **settings)
    position = {date: i for i, date in enumerate(frame.index)}
    first = {stage: position[p.dates(stage)[0]] for stage in ("train", "val", "test")}
    last_train_label_end = position[p.dates("train")[-1]] + 3
    last_val_label_end = position[p.dates("val")[-1]] + 3
    assert last_train_label_end + 4 < first["val"] and last_val_label_end + 4 < first["test"]
    exported = p.frame()
    assert (exported["split"] == "purged").sum() == 2 * (3 + 4)
    train = exported.loc[exported["split"] == "train", p.feature_names]
    np.testing.assert_allclose(p.scaler.mean, train.mean().to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.scaler.std, train.std(ddof=0).to_numpy(), rtol=1e-12)

    changed = frame.copy()
    val_start = p.dates("val")[0]
    changed.loc[changed.index >= val_start] *= 1.5  # every later price and volume changes
    q = _prepared(tmp_path, changed, "b.csv", **settings)
    np.testing.assert_array_equal(q.scaler.mean, p.scaler.mean)
    np.testing.assert_array_equal(q.scaler.std, p.scaler.std)
    assert not np.array_equal(q.x[q.ends["test"]], p.x[p.ends["test"]])
    pd.testing.assert_index_equal(q.dates("val"), p.dates("val"))
