"""Rank AUROC, block length, block bootstrap intervals and the selection null, against independent
computations (scikit-learn, arch, plain loops) and by coverage on simulated dependent series."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from datamodules.config import DataConfig
from datamodules.prepared import prepare
from models.baselines import scores as baseline_scores
from models.intervals import (
    BEATS,
    TIED,
    WORSE,
    FoldBootstrap,
    PairedBootstrap,
    Setting,
    ar1_scores,
    auroc_influence,
    best_of,
    block_bootstrap_indices,
    block_length,
    bootstrap_auroc,
    corrected_verdict,
    holm,
    long_run_variance,
    politis_white,
    rank_auroc,
    resampled_auroc,
    resampled_block_sums,
    selection_null,
    selection_null_samples,
    studentized_interval,
    verdict,
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


def _influence_loop(labels, scores):
    """AUROC influence series by brute force: each sample's share of the other class it beats (ties half),
    minus the AUROC, over its class's rate."""
    pos = labels.astype(bool)
    beats = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    below_neg = beats[:, ~pos].mean(1)  # for a positive: negatives below it
    above_pos = beats[pos, :].mean(0)  # for a negative: positives above it
    auroc = below_neg[pos].mean()
    return np.where(pos, (below_neg - auroc) / pos.mean(), (above_pos - auroc) / (1 - pos.mean()))


def _run_sums_loop(idx, x):
    """Sums of x over the runs of consecutive (circular) indices in each row, zero-padded, by a loop."""
    n = idx.shape[1]
    rows = []
    for i, row in zip(idx, x, strict=True):
        sums = [row[0]]
        for t in range(1, n):
            if i[t] == (i[t - 1] + 1) % n:
                sums[-1] += row[t]
            else:
                sums.append(row[t])
        rows.append(sums)
    out = np.zeros((len(rows), max(map(len, rows))))
    for r, sums in enumerate(rows):
        out[r, : len(sums)] = sums
    return out


def test_auroc_influence_is_the_placement_series_and_delong_variance():
    rng = np.random.default_rng(15)
    labels, score = _dependent_sample(300, rng)
    for s in (score, np.round(score, 1), np.full(300, 0.3)):  # continuous, tied, all tied
        psi = auroc_influence(labels, s)
        np.testing.assert_allclose(psi, _influence_loop(labels, s), rtol=0, atol=1e-12)
        assert abs(psi.mean()) < 1e-12
        # DeLong: var(V10) / n1 + var(V01) / n0 from the placement values
        pos = labels.astype(bool)
        v10 = np.array([np.mean((s[i] > s[~pos]) + 0.5 * (s[i] == s[~pos])) for i in np.flatnonzero(pos)])
        v01 = np.array([np.mean((s[pos] > s[j]) + 0.5 * (s[pos] == s[j])) for j in np.flatnonzero(~pos)])
        delong = v10.var() / pos.sum() + v01.var() / (~pos).sum()
        assert np.mean(psi**2) / 300 == pytest.approx(delong, abs=1e-15)
    assert np.isnan(auroc_influence(np.zeros(20), rng.normal(size=20))).all()


def test_resampled_influence_and_block_sums_equal_direct_computations():
    rng = np.random.default_rng(16)
    labels, score = _dependent_sample(200, rng)
    for method in ("stationary", "moving"):
        idx = block_bootstrap_indices(200, 9, 40, rng, method)
        for s in (score, np.round(score, 1)):
            auroc, psi = resampled_auroc(labels, s, idx, influence=True)
            np.testing.assert_allclose(auroc, resampled_auroc(labels, s, idx), rtol=0, atol=0)
            want = np.array([_influence_loop(labels[i], s[i]) for i in idx])
            np.testing.assert_allclose(psi, want, rtol=0, atol=1e-12)
            np.testing.assert_allclose(resampled_block_sums(idx, psi), _run_sums_loop(idx, psi), atol=1e-12)


def test_long_run_variance_of_ar1_series():
    """The long-run variance of a unit-variance AR(1) is (1 + phi) / (1 - phi)."""
    for phi in (0.0, 0.5, 0.8):
        rng = np.random.default_rng(17)
        est = np.median([long_run_variance(ar1_scores(1, 4000, phi, rng)[0]) for _ in range(9)])
        assert est == pytest.approx((1 + phi) / (1 - phi), rel=0.15), (phi, est)
    assert long_run_variance(np.full(100, 2.0)) == 0.0
    # a window of at least 2 x 10 lags reaches the dependence of a series of runs of 10
    runs = np.repeat(np.random.default_rng(18).standard_normal(60), 10)
    assert long_run_variance(runs, 20) == pytest.approx(10 * runs.var(), rel=0.3)


def test_studentized_interval_edge_cases():
    star = np.array([0.6, 0.7, np.nan, 0.8, 0.9])
    # no spread on the full sample: the percentile interval of the resamples
    percentile = tuple(np.quantile(star[~np.isnan(star)], [0.25, 0.75]))
    assert studentized_interval(0.75, star, np.ones(5), 0.0, 0.5, (0, 1)) == percentile
    assert studentized_interval(0.75, np.full(5, 0.75), np.zeros(5), 0.0, 0.9, (0, 1)) == (0.75, 0.75)
    # a resample with zero variance away from the point estimate: t* = +-inf, clipped to the bounds
    low, high = studentized_interval(0.9, np.array([0.85, 0.9, 0.95, 1.0]), np.array([1e-4, 1e-4, 1e-4, 0.0]),
                                     1e-4, 0.9, (0.0, 1.0))
    assert low == 0.0 and 0.9 < high < 1.0
    assert all(np.isnan(studentized_interval(np.nan, star, np.ones(5), 1.0, 0.95, (0, 1))))


def test_bootstrap_auroc_intervals_are_studentized_from_paired_resamples():
    rng = np.random.default_rng(9)
    labels, model = _dependent_sample(400, rng)
    scores = {"model": model, "squashed": 1 / (1 + np.exp(-model)), "coin": rng.normal(size=400),
              "rounded": np.round(model + rng.normal(size=400), 1), "majority": np.full(400, labels.mean())}
    n, n_boot, horizon = 400, 200, 5
    iv = bootstrap_auroc(labels, scores, horizon=horizon, n_boot=n_boot, seed=3)
    assert iv.method == "stationary-block-t" and iv.block == block_length(labels, 5) and iv.block >= 5
    idx = block_bootstrap_indices(n, iv.block, n_boot, np.random.default_rng(3))
    psi, psi_star = {}, {}
    for name, s in scores.items():
        np.testing.assert_allclose(iv.samples[name], rank_auroc(labels[idx], s[idx]), rtol=1e-12)
        assert iv.point[name] == pytest.approx(roc_auc_score(labels, s), abs=1e-12)
        if name in ("model", "coin", "rounded"):
            psi[name] = _influence_loop(labels, s)
            psi_star[name] = np.array([_influence_loop(labels[i], s[i]) for i in idx])

    def want(a, b=None, result=iv, indices=idx, delong=False):
        """Bootstrap-t: t* = (theta* - theta) / sqrt(sum of squared block sums of psi* / n^2); the full
        sample's variance is the flat-top long-run variance of psi (window >= 2 horizons), at least the
        i.i.d. one, over n."""
        theta = result.point[a] - (result.point[b] if b else 0)
        star = result.samples[a] - (result.samples[b] if b else 0)
        x, x_star = (psi[a] - psi[b], psi_star[a] - psi_star[b]) if b else (psi[a], psi_star[a])
        t = (star - theta) / np.sqrt((_run_sums_loop(indices, x_star) ** 2).sum(1) / n**2)
        q_low, q_high = np.percentile(t, [2.5, 97.5])
        se = np.sqrt((np.mean(x**2) if delong else max(long_run_variance(x, 2 * horizon), np.mean(x**2))) / n)
        lo, hi = (-1, 1) if b else (0, 1)
        return np.clip(theta - q_high * se, lo, hi), np.clip(theta - q_low * se, lo, hi)

    for name in ("model", "coin", "rounded"):
        np.testing.assert_allclose(iv.ci[name], want(name), rtol=1e-10)
    for a, b in (("model", "coin"), ("rounded", "model")):
        np.testing.assert_allclose(iv.diff[(a, b)], want(a, b), rtol=1e-10)
        assert iv.diff[(b, a)] == (-iv.diff[(a, b)][1], -iv.diff[(a, b)][0])
    # a monotone transform ranks identically in every resample: the paired difference is exactly 0
    assert iv.diff[("model", "squashed")] == (0.0, 0.0)
    assert iv.ci["majority"] == (0.5, 0.5)
    assert len(iv.diff) == 5 * 4
    assert best_of({n: iv.point[n] for n in ("coin", "majority")}) == ("coin" if iv.point["coin"] > 0.5 else "majority")
    assert best_of(iv.point) == "model"

    # block=1 asked for: the i.i.d. bootstrap-t, the full sample studentized by DeLong's variance
    iid = bootstrap_auroc(labels, {"model": model}, n_boot=n_boot, seed=3, block=1)
    idx_iid = block_bootstrap_indices(n, 1, n_boot, np.random.default_rng(3))
    psi_star["model"] = np.array([_influence_loop(labels[i], model[i]) for i in idx_iid])
    assert iid.block == 1 and iid.method == "stationary-block-t"
    np.testing.assert_allclose(iid.ci["model"], want("model", result=iid, indices=idx_iid, delong=True),
                               rtol=1e-10)


def test_block_intervals_cover_the_true_auroc_under_dependence_and_iid_ones_do_not():
    """Latent AR(1) (phi 0.8) thresholded at 0.5; score a = latent + AR(1) noise (phi 0.8), score b = latent
    + 1.5 x another AR(1) noise. The true AUROC is a property of the marginal law of (score, label), so a
    huge i.i.d. draw from it gives it. Over seeds 0-11 (200 replications each, n = 400, 300 resamples) the
    studentized block interval covered AUROC(a) 0.935-0.975 (mean 0.95) and AUROC(a) - AUROC(b) 0.905-0.965
    (mean 0.94), where the percentile block interval it replaced covered AUROC(a) 0.88-0.965 (mean 0.91);
    the i.i.d. one (block=1: i.i.d. resamples, DeLong's variance) 0.705-0.825, at least 0.15 below the
    block interval of the same seed (`python -m bench.interval_coverage` for other n and dependence)."""
    rng = np.random.default_rng(12345)
    latent = rng.standard_normal(2_000_000)
    labels = (latent > 0.5).astype(int)
    true = rank_auroc(labels, latent + rng.standard_normal(latent.size))
    true_diff = true - rank_auroc(labels, latent + 1.5 * rng.standard_normal(latent.size))
    assert true == pytest.approx(0.84, abs=0.005) and true_diff == pytest.approx(0.077, abs=0.005)

    rng = np.random.default_rng(0)
    covered = {"block": 0, "diff": 0, "iid": 0}
    reps = 200
    for r in range(reps):
        latent = ar1_scores(1, 400, 0.8, rng)[0]  # as _dependent_sample, and a second scorer
        labels, a = (latent > 0.5).astype(int), latent + ar1_scores(1, 400, 0.8, rng)[0]
        b = latent + 1.5 * ar1_scores(1, 400, 0.8, rng)[0]
        iv = bootstrap_auroc(labels, {"a": a, "b": b}, n_boot=300, seed=r)
        low, high = iv.ci["a"]
        covered["block"] += low <= true <= high
        low, high = iv.diff[("a", "b")]
        covered["diff"] += low <= true_diff <= high
        low, high = bootstrap_auroc(labels, {"a": a}, n_boot=300, seed=r, block=1).ci["a"]
        covered["iid"] += low <= true <= high
    block_cov, diff_cov, iid_cov = (covered[k] / reps for k in ("block", "diff", "iid"))
    assert 0.925 <= block_cov <= 0.985, covered
    assert 0.9 <= diff_cov <= 0.985, covered
    assert iid_cov <= min(0.85, block_cov - 0.12), covered


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


def test_the_block_of_one_day_labels_comes_from_the_train_history(tmp_path):
    """1-day labels of the S&P 500 depend on each other weakly but for long (volatility regimes): too weakly
    for the few hundred val_report labels to show (Politis-White says 1 there), plainly over the train labels;
    the block then is their rule's length, capped at a quarter of the evaluated samples."""
    prepared = prepare(DataConfig(tier="a20", input_size=32, horizon=1), str(tmp_path))
    report, train = prepared.labels("val_report"), prepared.labels("train")
    assert block_length(report, 1) == 1
    assert math.ceil(politis_white(train)) > len(report) // 4
    assert block_length(report, 1, history=train) == len(report) // 4
    iv = bootstrap_auroc(report, {"volatility": baseline_scores(prepared, "val_report", 0)["volatility"]},
                         history=train)
    assert iv.block == len(report) // 4


def test_a_seed_mean_is_resampled_and_studentized_as_the_mean_of_its_seeds():
    """The ablation's statistic: the mean AUROC of k seeds' scores. It is linear in the seeds' AUROCs, so its
    resamples, influence series and block sums are the seeds' means, and its interval is the bootstrap-t
    interval of those."""
    rng = np.random.default_rng(21)
    n, n_boot, horizon = 300, 150, 5
    labels, latent = _dependent_sample(n, rng)
    seeds = np.stack([latent + ar1_scores(1, n, 0.8, rng)[0] for _ in range(3)])
    baseline = latent + 2 * rng.standard_normal(n)
    boot = PairedBootstrap(labels, horizon=horizon, n_boot=n_boot, seed=4)
    assert boot.block == block_length(labels, horizon)
    idx = block_bootstrap_indices(n, boot.block, n_boot, np.random.default_rng(4))
    mean, base = boot.resample(seeds), boot.resample(baseline)
    assert mean.point == pytest.approx(np.mean([roc_auc_score(labels, s) for s in seeds]), abs=1e-12)
    np.testing.assert_allclose(mean.samples, np.mean([rank_auroc(labels[idx], s[idx]) for s in seeds], 0), rtol=1e-12)
    psi = np.mean([_influence_loop(labels, s) for s in seeds], 0)
    psi_star = np.mean([[_influence_loop(labels[i], s[i]) for i in idx] for s in seeds], 0)
    base_psi = _influence_loop(labels, baseline)
    base_star = np.array([_influence_loop(labels[i], baseline[i]) for i in idx])
    np.testing.assert_allclose(mean.psi, psi, rtol=1e-10, atol=1e-12)

    def want(theta, star, x, x_star, bounds):
        var = max(long_run_variance(x, 2 * horizon), np.mean(x**2)) / n
        return studentized_interval(theta, star, (_run_sums_loop(idx, x_star) ** 2).sum(1) / n**2, var, 0.95, bounds)

    np.testing.assert_allclose(boot.interval(mean), want(mean.point, mean.samples, psi, psi_star, (0, 1)), rtol=1e-10)
    diff = mean - base
    assert diff.bounds == (-1.0, 1.0) and diff.point == mean.point - base.point
    np.testing.assert_allclose(boot.interval(diff), want(diff.point, diff.samples, psi - base_psi,
                                                         psi_star - base_star, (-1, 1)), rtol=1e-10)
    # k copies of one scorer: that scorer's interval; one row: bootstrap_auroc's, on the same resamples
    np.testing.assert_allclose(boot.interval(boot.resample(np.stack([baseline] * 3))), boot.interval(base), rtol=1e-12)
    reference = bootstrap_auroc(labels, {"b": baseline}, horizon=horizon, n_boot=n_boot, seed=4)
    assert boot.interval(base) == reference.ci["b"]
    for bad in (np.zeros(5), np.zeros((0, n)), np.zeros((2, 2, n))):
        with pytest.raises(ValueError, match=rf"expected \({n},\) or \(k, {n}\)"):
            boot.resample(bad)


def test_one_verdict_reads_every_paired_interval_and_one_rule_picks_the_best():
    assert [verdict(*ci) for ci in ((0.01, 0.2), (-0.2, -0.01), (-0.1, 0.1), (0.0, 0.1), (math.nan, 0.3))] == [
        BEATS, WORSE, TIED, TIED, TIED]
    assert best_of({"a": 0.6, "b": math.nan, "c": 0.7, "d": 0.7}) == "c"
    setting = Setting(3, np.tile([0.0, 1.0], 50), seed=4, level=0.9)
    labels = np.tile([0.0, 0.0, 1.0, 1.0], 30)
    scores = {"x": labels + np.linspace(0, 1, 120), "y": np.linspace(0, 1, 120)}
    direct = bootstrap_auroc(labels, scores, horizon=3, n_boot=200, seed=4, level=0.9, history=setting.history)
    grouped = setting.intervals(labels, scores, n_boot=200)
    assert grouped.ci == direct.ci and grouped.diff == direct.diff and grouped.block == direct.block


def test_holm_adjusts_a_family_and_the_paired_pvalue_agrees_with_the_interval():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06) and math.isnan(adjusted["d"])  # monotone: b not below c
    assert corrected_verdict(0.01, 0.2, 0.06) == TIED and corrected_verdict(0.01, 0.2, 0.049) == BEATS
    rng = np.random.default_rng(5)
    agree = 0
    for k in range(20):
        labels = (rng.random(300) < 0.4).astype(float)
        a, b = labels * (0.02 * k) + rng.random(300), rng.random(300)
        iv = bootstrap_auroc(labels, {"a": a, "b": b}, horizon=2, n_boot=500, seed=k)
        low, high = iv.diff["a", "b"]
        agree += (iv.p["a", "b"] < 0.05) == (low > 0 or high < 0)
        assert iv.p["a", "b"] == iv.p["b", "a"] and 0 <= iv.p["a", "b"] <= 1
    assert agree >= 19  # the same event but for the quantile's interpolation at the border


def test_fold_intervals_cover_the_mean_of_the_folds_true_aurocs():
    """Three folds of 150 dependent samples (latent AR(1), phi 0.8, thresholded at 0.5), each its own regime:
    score a = latent + s_k x AR(1) noise with s_k = 0.7, 1.0, 1.4, score b = latent + 1.5 x AR(1) noise. The
    target is the mean over folds of each fold's true AUROC (a huge i.i.d. draw from the fold's marginal law).
    `FoldBootstrap`'s interval of the mean, resampled within folds, covers it, and so does its paired
    interval of a - b; its p-value says "below 0.05" when that interval excludes 0 (up to the quantiles'
    interpolation: 197-200 of 200 agree). Over seeds 0-5 (200 replications each) coverage of the mean was
    0.92-0.945 and of the difference 0.90-0.94: a little under 95% at 150 samples a fold with this much
    dependence, as one split's is at 400 (the test above)."""
    scales, n = (0.7, 1.0, 1.4), 150
    rng = np.random.default_rng(12345)
    latent = rng.standard_normal(1_000_000)
    labels = (latent > 0.5).astype(int)
    true_b = rank_auroc(labels, latent + 1.5 * rng.standard_normal(latent.size))
    true_a = [rank_auroc(labels, latent + s * rng.standard_normal(latent.size)) for s in scales]
    target, target_diff = np.mean(true_a), np.mean(true_a) - true_b

    rng = np.random.default_rng(0)
    covered, diff_covered, agree, reps = 0, 0, 0, 200
    for r in range(reps):
        latents = [ar1_scores(1, n, 0.8, rng)[0] for _ in scales]
        ys = [(x > 0.5).astype(int) for x in latents]
        a = [x + s * ar1_scores(1, n, 0.8, rng)[0] for x, s in zip(latents, scales, strict=True)]
        b = [x + 1.5 * ar1_scores(1, n, 0.8, rng)[0] for x in latents]
        boot = FoldBootstrap(ys, n_boot=300, seed=r)
        ra, rb = boot.resample(a), boot.resample(b)
        low, high = boot.interval(ra)
        covered += low <= target <= high
        low, high = boot.interval(ra - rb)
        diff_covered += low <= target_diff <= high
        agree += (boot.pvalue(ra - rb) < 0.05) == (low > 0 or high < 0)
    assert 0.90 <= covered / reps <= 0.98 and 0.88 <= diff_covered / reps <= 0.98, (covered, diff_covered)
    assert agree >= 0.97 * reps
