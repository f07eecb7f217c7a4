"""Platt calibration: the fit against scikit-learn, the cross-fitting against its own-label rule, and the
gain on overconfident simulated probabilities."""

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from models.calibration import (
    Calibrator,
    cross_fitted_calibration,
    fit_calibrator,
    fold_bounds,
    logit,
    platt_targets,
)


def _overconfident(n, seed, base=-1.0):
    """True probabilities sigmoid(z); the model reports sigmoid(2 z): right ranking, too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(base, 1.2, n)
    true_p = 1 / (1 + np.exp(-z))
    labels = (rng.random(n) < true_p).astype(int)
    return 1 / (1 + np.exp(-2 * z)), labels, true_p


def test_fit_equals_sklearn_logistic_regression_on_platt_targets():
    """Soft targets t as two weighted rows (label 1 with weight t, label 0 with weight 1 - t)."""
    probs, labels, _ = _overconfident(500, 0)
    t = platt_targets(labels)
    assert t[labels == 1][0] == (labels.sum() + 1) / (labels.sum() + 2)
    assert t[labels == 0][0] == 1 / ((labels == 0).sum() + 2)
    x = logit(probs)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(
        np.r_[x, x][:, None], np.r_[np.ones(500), np.zeros(500)], sample_weight=np.r_[t, 1 - t]
    )
    cal = fit_calibrator(probs, labels)
    assert cal.a == pytest.approx(ref.coef_[0, 0], abs=1e-6)
    assert cal.b == pytest.approx(ref.intercept_[0], abs=1e-6)
    np.testing.assert_allclose(cal.transform(probs), ref.predict_proba(x[:, None])[:, 1], atol=1e-6)


def test_fit_recovers_the_overconfidence():
    probs, labels, _ = _overconfident(40_000, 1)
    cal = fit_calibrator(probs, labels)
    assert cal.a == pytest.approx(0.5, abs=0.03)
    assert cal.b == pytest.approx(0.0, abs=0.05)


def test_calibrator_is_two_picklable_floats_and_identity_by_default():
    cal = fit_calibrator(*_overconfident(300, 2)[:2])
    back = pickle.loads(pickle.dumps(cal))
    assert back == cal and isinstance(back.a, float) and isinstance(back.b, float)
    p = np.array([0.01, 0.2, 0.5, 0.93])
    np.testing.assert_allclose(Calibrator().transform(p), p, rtol=1e-12)
    np.testing.assert_allclose(back.transform(p), cal.transform(p))


def test_fit_stays_finite_for_separable_one_class_or_constant_inputs():
    for probs, labels in (([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), ([0.3, 0.6, 0.2], [0, 0, 0]),
                          (np.full(10, 0.3), [0, 1] * 5)):
        cal = fit_calibrator(probs, labels)
        assert np.isfinite([cal.a, cal.b]).all()
        out = cal.transform(probs)
        assert np.all((out > 0) & (out < 1))
    # one class: the calibrated value is near the smoothed rate 1 / (N- + 2) = 0.2
    np.testing.assert_allclose(fit_calibrator([0.3, 0.6, 0.2], [0, 0, 0]).transform([0.4]), 0.2, atol=1e-6)
    # constant input: the calibrated value is the smoothed rate
    np.testing.assert_allclose(fit_calibrator(np.full(10, 0.3), [0, 1] * 5).transform([0.3]), 0.5, atol=1e-6)


def test_cross_fitted_calibration_lowers_the_brier_score_of_overconfident_probs():
    for seed in range(3):
        probs, labels, true_p = _overconfident(750, 10 + seed)
        calibrated = cross_fitted_calibration(probs, labels, folds=5)
        raw, cal, best = (np.mean((p - labels) ** 2) for p in (probs, calibrated, true_p))
        assert cal < raw - 0.005, (raw, cal, best)
        assert cal < best + 0.01  # close to what the true probabilities reach


def test_each_block_uses_the_calibrator_fit_on_the_other_blocks():
    probs, labels, _ = _overconfident(103, 4)
    out = cross_fitted_calibration(probs, labels, folds=4, gap=2)
    bounds = fold_bounds(103, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 103 and {b - a for a, b in bounds} <= {25, 26}
    for start, stop in bounds:
        keep = np.ones(103, bool)
        keep[max(0, start - 2) : stop + 2] = False
        want = fit_calibrator(probs[keep], labels[keep]).transform(probs[start:stop])
        np.testing.assert_allclose(out[start:stop], want, rtol=1e-12)


def test_no_point_is_calibrated_with_its_own_label():
    probs, labels, _ = _overconfident(200, 5)
    base = cross_fitted_calibration(probs, labels, folds=5)
    for i in (0, 37, 99, 140, 199):
        flipped = labels.copy()
        flipped[i] = 1 - flipped[i]
        out = cross_fitted_calibration(probs, flipped, folds=5)
        block = slice(i // 40 * 40, i // 40 * 40 + 40)
        np.testing.assert_array_equal(out[block], base[block])  # its own block: untouched
        assert np.any(out != base)  # the other blocks saw the flip: the check could fail


def test_gap_keeps_neighbouring_labels_out_of_a_block_calibrator():
    probs, labels, _ = _overconfident(200, 6)
    flipped = labels.copy()
    flipped[40:43] = 1 - flipped[40:43]  # first 3 samples of block 1, neighbours of block 0
    with_gap = [cross_fitted_calibration(probs, y, folds=5, gap=3) for y in (labels, flipped)]
    without = [cross_fitted_calibration(probs, y, folds=5, gap=0) for y in (labels, flipped)]
    np.testing.assert_array_equal(with_gap[0][:40], with_gap[1][:40])
    assert np.any(without[0][:40] != without[1][:40])


def test_cross_fitting_rejects_bad_arguments():
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_calibration([0.2, 0.4], [0, 1], folds=3)
    with pytest.raises(ValueError, match="no sample"):
        cross_fitted_calibration(np.full(10, 0.5), [0, 1] * 5, folds=2, gap=5)
