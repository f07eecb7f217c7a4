"""Rank AUROC, block length, block bootstrap intervals and the selection null, against independent
computations (scikit-learn, arch, plain loops) and by coverage on simulated dependent series."""

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.intervals import (
    ar1_scores,
    block_bootstrap_indices,
    block_length,
    bootstrap_auroc,
    politis_white,
    rank_auroc,
    resampled_auroc,
    selection_null,
    selection_null_samples,
)


def _ar1_loop(n, phi, rng):
    """AR(1) with unit marginal variance, by the recursion (reference for `ar1_scores`)."""
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for t in range(1, n):
        x[t] = phi * x[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
    return x


def _dependent_sample(n, rng, phi=0.8, noise_phi=0.8, threshold=0.5):
    """Labels: a latent AR(1) above a threshold; score: latent plus AR(1) noise (a model's errors on
    overlapping windows are smooth too)."""
    latent = ar1_scores(1, n, phi, rng)[0]
    return (latent > threshold).astype(int), latent + ar1_scores(1, n, noise_phi, rng)[0]


# --- rank_auroc -------------------------------------------------------------------------------------


def test_rank_auroc_equals_sklearn_with_ties_row_by_row():
    rng = np.random.default_rng(0)
    labels = (rng.random((6, 80)) < 0.3).astype(int)
    scores = np.round(rng.normal(size=(6, 80)) + labels, 1)  # rounding makes many ties
    scores[0] = 0.7  # one row all tied
    got = rank_auroc(labels, scores)
    want = [roc_auc_score(y, s) for y, s in zip(labels, scores, strict=True)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got[0] == 0.5
    assert isinstance(rank_auroc(labels[1], scores[1]), float)


def test_rank_auroc_broadcasts_one_label_row_and_is_nan_for_one_class():
    rng = np.random.default_rng(1)
    labels = (rng.random(50) < 0.5).astype(int)
    scores = rng.normal(size=(3, 50))
    np.testing.assert_allclose(rank_auroc(labels, scores), [roc_auc_score(labels, s) for s in scores])
    assert np.isnan(rank_auroc(np.zeros(10), rng.normal(size=10)))


# --- block length -----------------------------------------------------------------------------------


def test_politis_white_approaches_the_optimal_block_of_an_ar1():
    """For AR(1), G / g0 = 2 phi / ((1 - phi)(1 + phi)), so b* = (G / g0)^(2/3) n^(1/3)."""
    n = 3000
    for phi in (0.3, 0.5, 0.8):
        rng = np.random.default_rng(2)
        est = np.median([politis_white(ar1_scores(1, n, phi, rng)[0]) for _ in range(9)])
        want = (2 * phi / ((1 - phi) * (1 + phi))) ** (2 / 3) * n ** (1 / 3)
        assert est == pytest.approx(want, rel=0.2), (phi, est, want)


def test_politis_white_mostly_agrees_with_arch():
    """arch normalises the autocorrelations for the bandwidth choice slightly differently, so some series
    near the significance threshold get another bandwidth (one here: arch 46 for an AR(0.5) series whose
    optimum is near 11); the rest match to rounding."""
    from arch.bootstrap import optimal_block_length

    rng = np.random.default_rng(2)
    same = []
    for phi in (0.0, 0.5, 0.8, 0.95):
        for n in (200, 750):
            for _ in range(4):
                x = ar1_scores(1, n, phi, rng)[0]
                for series in (x, (x > 0.3).astype(float)):
                    want = max(1.0, optimal_block_length(series).iloc[0, 0])
                    same.append(politis_white(series) == pytest.approx(want, rel=1e-9))
    assert np.mean(same) >= 0.9


def test_block_length_is_never_below_the_horizon_and_is_capped():
    rng = np.random.default_rng(3)
    iid = (rng.random(300) < 0.4).astype(int)
    sticky = (ar1_scores(1, 300, 0.99, rng)[0] > 0).astype(int)
    for labels in (iid, sticky, np.zeros(300), np.arange(300) % 2):
        for horizon in (1, 2, 5, 20, 60, 100):
            b = block_length(labels, horizon)
            assert horizon <= b <= max(horizon, 300 // 4)
    assert block_length(iid, 1) <= 3
    assert block_length(sticky, 1) >= 15
    square = (np.arange(60) // 10) % 2  # runs of 10: Politis-White asks for 20 samples of 60
    assert politis_white(square) > 15 and block_length(square, 1) == 60 // 4 and block_length(square, 20) == 20


def test_block_length_grows_with_label_autocorrelation():
    medians = []
    for phi in (0.0, 0.5, 0.8, 0.95):
        rng = np.random.default_rng(4)
        medians.append(np.median([block_length((ar1_scores(1, 1500, phi, rng)[0] > 0.3).astype(int))
                                  for _ in range(7)]))
    assert all(a < b for a, b in zip(medians, medians[1:], strict=False)), medians


def test_block_length_grows_with_the_horizon_of_overlapping_labels():
    """Labels 'the walk rises >= 1% within h days' overlap for h > 1: their block grows with h."""
    rng = np.random.default_rng(5)
    log_price = np.cumsum(0.01 * rng.standard_normal(2000))
    blocks = []
    for h in (1, 5, 20):
        ahead = np.max([np.roll(log_price, -d) for d in range(1, h + 1)], axis=0)[: -h]
        labels = (ahead - log_price[:-h] >= 0.01).astype(int)
        blocks.append(block_length(labels, h))
    assert blocks[0] < blocks[1] < blocks[2] and blocks[2] >= 20, blocks


# --- indices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["stationary", "moving"])
def test_block_indices_are_runs_of_consecutive_samples(method):
    n, block = 500, 10
    idx = block_bootstrap_indices(n, block, 2000, np.random.default_rng(6), method)
    assert idx.shape == (2000, n) and idx.dtype.kind == "i" and idx.min() >= 0 and idx.max() < n
    step = (idx[:, 1:] - idx[:, :-1]) % n == 1
    # a new block starts with probability 1/block (stationary) or every block-th position (moving)
    assert abs(step.mean() - (1 - 1 / block)) < 0.01
    if method == "moving":
        assert step[:, np.arange(n - 1) % block != block - 1].all()
    # every sample is drawn about equally often (stationary wraps; moving under-draws the two ends)
    freq = np.bincount(idx.ravel(), minlength=n) / idx.size * n
    inner = freq if method == "stationary" else freq[block:-block]
    assert np.abs(inner - 1).max() < 0.12


def test_block_one_is_the_iid_bootstrap():
    idx = block_bootstrap_indices(200, 1, 500, 7)
    step = (idx[:, 1:] - idx[:, :-1]) % 200 == 1
    assert abs(step.mean() - 1 / 200) < 0.003  # consecutive only by chance


# --- bootstrap_auroc --------------------------------------------------------------------------------


def test_resampled_auroc_equals_rank_auroc_on_the_resampled_arrays():
    rng = np.random.default_rng(8)
    labels, score = _dependent_sample(300, rng)
    idx = block_bootstrap_indices(300, 12, 200, rng)
    for s in (score, np.round(score, 1), np.full(300, 0.3)):  # continuous, tied, all tied
        want = rank_auroc(labels[idx], s[idx])
        np.testing.assert_allclose(resampled_auroc(labels, s, idx), want, rtol=1e-12, atol=0)


def test_bootstrap_auroc_intervals_are_percentiles_of_paired_resamples():
    rng = np.random.default_rng(9)
    labels, model = _dependent_sample(400, rng)
    scores = {"model": model, "squashed": 1 / (1 + np.exp(-model)), "coin": rng.normal(size=400),
              "majority": np.full(400, labels.mean())}
    iv = bootstrap_auroc(labels, scores, horizon=5, n_boot=500, seed=3)
    assert iv.method == "stationary-block" and iv.block == block_length(labels, 5) and iv.block >= 5
    idx = block_bootstrap_indices(400, iv.block, 500, np.random.default_rng(3))
    for name, s in scores.items():
        np.testing.assert_allclose(iv.samples[name], rank_auroc(labels[idx], s[idx]), rtol=1e-12)
        np.testing.assert_allclose(iv.ci[name], np.percentile(iv.samples[name], [2.5, 97.5]))
        assert iv.point[name] == pytest.approx(roc_auc_score(labels, s), abs=1e-12)
    np.testing.assert_allclose(iv.diff[("model", "coin")],
                               np.percentile(iv.samples["model"] - iv.samples["coin"], [2.5, 97.5]))
    # a monotone transform ranks identically in every resample: the paired difference is exactly 0
    assert iv.diff[("model", "squashed")] == (0.0, 0.0)
    assert iv.ci["majority"] == (0.5, 0.5)
    assert len(iv.diff) == 4 * 3
    assert iv.best_of(["coin", "majority"]) == ("coin" if iv.point["coin"] > 0.5 else "majority")
    assert iv.best_of(scores) == "model"


def test_bootstrap_auroc_is_fast():
    rng = np.random.default_rng(10)
    labels, model = _dependent_sample(750, rng)
    scores = {"model": model, "volatility": np.round(model + rng.normal(size=750), 2),
              "majority": np.full(750, 0.3), "logistic": rng.normal(size=750)}
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        bootstrap_auroc(labels, scores, horizon=10, n_boot=1000)
        best = min(best, time.perf_counter() - start)
    assert best < 0.2


def test_block_intervals_cover_the_true_auroc_under_dependence_and_iid_ones_do_not():
    """Latent AR(1) (phi 0.8) thresholded at 0.5; score = latent + AR(1) noise (phi 0.8). The true AUROC is
    a property of the marginal law of (score, label), so a huge i.i.d. draw from it gives it. Over seeds
    0-11 (200 replications each, n = 400) the stationary block interval covered 0.88-0.965 (mean 0.91: the
    block bootstrap underestimates the variance a little at this n), the i.i.d. one 0.725-0.825 (mean 0.77),
    at least 0.115 below the block interval of the same seed. With i.i.d. noise in the score both cover
    about 0.93: the dependence that matters is that of labels and score errors together."""
    rng = np.random.default_rng(12345)
    latent = rng.standard_normal(2_000_000)
    true = rank_auroc((latent > 0.5).astype(int), latent + rng.standard_normal(latent.size))
    assert true == pytest.approx(0.84, abs=0.005)

    rng = np.random.default_rng(0)
    covered = {"block": 0, "iid": 0}
    reps = 200
    for r in range(reps):
        labels, score = _dependent_sample(400, rng)
        for name, block in (("block", None), ("iid", 1)):
            low, high = bootstrap_auroc(labels, {"m": score}, n_boot=300, seed=r, block=block).ci["m"]
            covered[name] += low <= true <= high
    block_cov, iid_cov = covered["block"] / reps, covered["iid"] / reps
    assert block_cov >= 0.86, covered
    assert iid_cov <= min(0.85, block_cov - 0.08), covered


# --- selection null ---------------------------------------------------------------------------------


def test_ar1_scores_match_the_recursion_in_distribution():
    rng = np.random.default_rng(11)
    fast = ar1_scores(400, 200, 0.9, rng)
    slow = np.array([_ar1_loop(200, 0.9, rng) for _ in range(400)])
    for x in (fast, slow):
        assert x.var() == pytest.approx(1.0, abs=0.1)
        lag1 = np.mean(x[:, 1:] * x[:, :-1])
        assert lag1 == pytest.approx(0.9, abs=0.05)


def _brute_force_best(labels, k, block, n_sim, rng):
    phi = 1 - 1 / block
    return np.array([max(roc_auc_score(labels, _ar1_loop(len(labels), phi, rng)) for _ in range(k))
                     for _ in range(n_sim)])


def test_selection_null_matches_a_brute_force_simulation():
    rng = np.random.default_rng(12)
    labels = (ar1_scores(1, 150, 0.8, rng)[0] > 0.3).astype(int)
    k, block, n_brute = 3, 8, 400
    brute = _brute_force_best(labels, k, block, n_brute, rng)
    fast = selection_null_samples(labels, k, block=block, n_sim=6000, seed=1)
    se = np.sqrt(brute.var() / n_brute + fast.var() / fast.size)
    assert abs(brute.mean() - fast.mean()) < 4 * se
    for q in (0.5, 0.9):
        below = np.mean(brute <= selection_null(labels, k, block=block, n_sim=6000, seed=1, q=q))
        assert abs(below - q) < 4 * np.sqrt(q * (1 - q) / n_brute) + 0.01, (q, below)


def test_selection_null_grows_with_trials_and_with_smoothness():
    rng = np.random.default_rng(13)
    labels = (ar1_scores(1, 400, 0.8, rng)[0] > 0.3).astype(int)
    nulls = [selection_null(labels, k, horizon=5, n_sim=1500) for k in (1, 5, 50)]
    assert 0.5 < nulls[0] < nulls[1] < nulls[2] < 1, nulls
    # independent of the time structure when the scorers are i.i.d., wider when they are smooth like the labels
    iid = selection_null(labels, 5, block=1, n_sim=1500)
    smooth = selection_null(labels, 5, block=20, n_sim=1500)
    assert smooth > iid + 0.02, (iid, smooth)


def test_selection_null_default_block_is_the_labels_block_length():
    rng = np.random.default_rng(14)
    labels = (ar1_scores(1, 300, 0.8, rng)[0] > 0.3).astype(int)
    b = block_length(labels, 5)
    np.testing.assert_array_equal(selection_null_samples(labels, 3, horizon=5, n_sim=200, seed=2),
                                  selection_null_samples(labels, 3, block=b, n_sim=200, seed=2))
    with pytest.raises(ValueError, match="both classes"):
        selection_null(np.ones(50), 3)
