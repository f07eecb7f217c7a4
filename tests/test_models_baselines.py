"""Majority and volatility-only baselines."""

import numpy as np
import pytest

from models.baselines import fit_volatility_logistic, majority, volatility_logistic
from models.metrics import binary_metrics


def _volatility_data(n, seed):
    rng = np.random.default_rng(seed)
    vol = rng.lognormal(0.0, 0.5, size=(n, 2))
    y = (vol[:, 0] + 0.1 * rng.standard_normal(n) > np.median(vol[:, 0])).astype(int)
    return vol, y


def test_majority_is_the_train_positive_rate():
    p = majority([1, 0, 0, 1, 0], 7)
    assert p.shape == (7,) and np.all(p == 0.4)
    assert binary_metrics(p, [0, 1, 0, 1, 0, 0, 1])["auroc"] == 0.5


def test_volatility_logistic_learns_a_volatility_signal():
    train_vol, train_y = _volatility_data(400, 0)
    eval_vol, eval_y = _volatility_data(200, 1)
    probs = volatility_logistic(train_vol, train_y, eval_vol)
    assert probs.shape == (200,) and np.all((probs >= 0) & (probs <= 1))
    assert binary_metrics(probs, eval_y)["auroc"] > 0.9


def test_volatility_logistic_fits_on_train_rows_only():
    train_vol, train_y = _volatility_data(300, 0)
    eval_vol, _ = _volatility_data(50, 1)
    shifted = eval_vol.copy()
    shifted[1:] *= 100.0  # if eval rows entered the scaler or the fit, row 0's probability would move
    assert volatility_logistic(train_vol, train_y, eval_vol)[0] == volatility_logistic(train_vol, train_y, shifted)[0]
    model = fit_volatility_logistic(train_vol, train_y)
    scaler = model.named_steps["standardscaler"]
    np.testing.assert_allclose(scaler.mean_, train_vol.mean(axis=0))


def test_volatility_logistic_accepts_one_feature_and_needs_both_classes():
    vol, y = _volatility_data(100, 2)
    assert volatility_logistic(vol[:, 0], y, vol[:5, 0]).shape == (5,)
    with pytest.raises(ValueError, match="both classes"):
        volatility_logistic(vol, np.zeros(100), vol)
