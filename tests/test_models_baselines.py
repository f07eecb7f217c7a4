"""Baselines: majority, volatility-only, logistic and boosting on all features, and their registry."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from models.baselines import (
    BASELINES,
    BaselineInputs,
    boosting,
    fit_volatility_logistic,
    logistic,
    majority,
    volatility_logistic,
)
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


# --- logistic and boosting on all features, and the registry ------------------------------------------


def _feature_data(n_train, n_eval, seed, f=6):
    """Features at the window's last day; the label depends on two of them, one nonlinearly, and one
    feature has a large scale (the scaler matters)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_eval, f))
    x[:, 2] *= 1000.0
    y = (x[:, 0] + np.abs(x[:, 1]) - 0.8 + 0.5 * rng.standard_normal(len(x)) > 0).astype(int)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_logistic_equals_a_direct_standardised_logistic_regression():
    train_x, train_y, eval_x, _ = _feature_data(300, 80, 3)

    def z(a):  # the scaler, by hand
        return (a - train_x.mean(0)) / train_x.std(0)

    ref = LogisticRegression(C=1.0, max_iter=5000).fit(z(train_x), train_y)
    np.testing.assert_allclose(logistic(train_x, train_y, eval_x), ref.predict_proba(z(eval_x))[:, 1],
                               rtol=1e-6, atol=1e-8)


def test_boosting_equals_a_direct_histogram_gradient_boosting_and_is_deterministic():
    train_x, train_y, eval_x, eval_y = _feature_data(600, 200, 4)
    ref = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=False,
        random_state=7,
    ).fit(train_x, train_y)
    got = boosting(train_x, train_y, eval_x, seed=7)
    np.testing.assert_allclose(got, ref.predict_proba(eval_x)[:, 1], rtol=1e-12)
    np.testing.assert_array_equal(got, boosting(train_x, train_y, eval_x, seed=7))
    # the |x1| term is out of a linear model's reach, not of the trees'
    assert binary_metrics(got, eval_y)["auroc"] > binary_metrics(logistic(train_x, train_y, eval_x),
                                                                  eval_y)["auroc"] + 0.05


@pytest.mark.parametrize("name", ["logistic", "boosting"])
def test_feature_baselines_fit_on_train_rows_only(name):
    train_x, train_y, eval_x, _ = _feature_data(300, 60, 5)
    fn = {"logistic": logistic, "boosting": lambda *a: boosting(*a, seed=0)}[name]
    base = fn(train_x, train_y, eval_x)
    moved = eval_x.copy()
    moved[1:] = moved[1:] * 50 + 3  # other eval rows cannot move row 0 unless they enter the fit
    assert fn(train_x, train_y, moved)[0] == base[0]
    relabelled = train_y.copy()
    relabelled[:100] = 1 - relabelled[:100]  # while the train labels do move it: the check could fail
    assert fn(train_x, relabelled, eval_x)[0] != base[0]


def test_logistic_needs_finite_features_and_both_classes():
    train_x, train_y, eval_x, _ = _feature_data(50, 5, 6)
    bad = train_x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        logistic(bad, train_y, eval_x)
    with pytest.raises(ValueError, match="both classes"):
        logistic(train_x, np.ones(50), eval_x)
    assert boosting(bad, train_y, eval_x, seed=0).shape == (5,)  # trees route NaN


def test_registry_runs_every_baseline_on_the_same_inputs():
    train_x, train_y, eval_x, eval_y = _feature_data(500, 150, 7)
    vol = np.abs(np.column_stack([train_x[:, 1], train_x[:, 3]]))
    eval_vol = np.abs(np.column_stack([eval_x[:, 1], eval_x[:, 3]]))
    inputs = BaselineInputs(train_y=train_y, train_x=train_x, eval_x=eval_x, train_vol=vol,
                            eval_vol=eval_vol, seed=3)
    assert list(BASELINES) == ["majority", "volatility", "logistic", "boosting"]
    out = {name: fn(inputs) for name, fn in BASELINES.items()}
    np.testing.assert_array_equal(out["majority"], majority(train_y, 150))
    np.testing.assert_array_equal(out["volatility"], volatility_logistic(vol, train_y, eval_vol))
    np.testing.assert_array_equal(out["logistic"], logistic(train_x, train_y, eval_x))
    np.testing.assert_array_equal(out["boosting"], boosting(train_x, train_y, eval_x, seed=3))
    for p in out.values():
        assert p.shape == (150,) and np.all((p >= 0) & (p <= 1))
    assert binary_metrics(out["logistic"], eval_y)["auroc"] > 0.7
    with pytest.raises(ValueError, match="train_x has 10 rows"):
        BaselineInputs(train_y=train_y, train_x=train_x[:10], eval_x=eval_x, train_vol=vol, eval_vol=eval_vol)
