"""Coverage and mean width of 95% block-bootstrap intervals of an AUROC, of a paired AUROC difference and of
a mean AUROC over seeds, on simulated dependent series whose true AUROCs are known: how honest
`bootstrap_auroc`'s interval is at the sizes of a validation half, beside the percentile interval it replaced
and other published corrections.

    python -m bench.interval_coverage [--reps 250] [--n 200,400,1000] [--phi 0,0.5,0.8,0.9]
                                      [--n-boot 1000] [--jobs 2]

Simulation (the one of the coverage test in tests/test_models_intervals.py, and a second scorer): a latent
stationary Gaussian AR(1) series with coefficient phi and unit variance, label = latent > 0.5; scorer `a` =
latent + AR(1) noise (coefficient phi, sd 1), scorer `b` = latent + independent AR(1) noise (phi, sd 1.5).
Labels and both scorers' errors are autocorrelated alike (phi = 0: i.i.d.). Scorers `a2` and `a3` are `a`
again with their own noise: `a`, `a2` and `a3` are three seeds of one model, and their mean AUROC is the
statistic of the context-length ablation (hpo/ablation/summary.py). The target is the AUROC of the
marginal law of (score, label), P(S1 > S0) for independent draws of a positive and a negative, computed by
quadrature: 0.8403 for `a` (and the seed mean), 0.7634 for `b`, 0.0769 for the difference a - b.

Every replication draws one stationary-bootstrap index matrix (Politis and Romano 1994; block =
`block_length(labels)`, `--n-boot` resamples, seed = replication) in a `PairedBootstrap`, as
`bootstrap_auroc` does, and every method reads the same resamples of the target (`PairedBootstrap.resample`:
the resampled AUROCs, influence series and block sums):

- percentile: quantiles of the resampled statistic (what `bootstrap_auroc` gave before this bench);
- basic: the reversed percentile interval ``2 theta - q`` (Davison and Hinkley 1997, eq. 5.6);
- pct n/(n-b): the percentile interval's distances from theta scaled by ``sqrt(n / (n - b))``, the
  small-sample factor of the overlapping-batch-means variance (Meketon and Schmeiser 1984);
- BCa: Efron's (1987) bias-corrected and accelerated percentile interval, z0 from the resamples and the
  acceleration from the delete-one-block jackknife over non-overlapping blocks of length b (Kuensch 1989);
- t, block var: bootstrap-t, each resample studentized by the block sums of its resampled influence series
  (Goetze and Kuensch 1996), the full sample by the mean of those variances (the bootstrap's own variance);
- t, flat-top: the same t*, the full sample studentized by the flat-top lag-window long-run variance of
  the influence series (Politis and Romano 1995);
- t, ft >= iid: the same, the flat-top variance floored at the influence series' i.i.d. variance (the
  full sample's standard error never below DeLong's): `PairedBootstrap.interval`, what the project uses.

Prints, per (target, n, phi), each method's coverage and mean width and the mean block length; then per
(target, n) the coverage averaged over phi and the width relative to the percentile interval. The Monte
Carlo standard error of one coverage near 0.95 is ``sqrt(0.95 * 0.05 / reps)`` (0.014 at 250 reps).
Takes 3.5 to 5.5 minutes on 2 cores with OMP_NUM_THREADS=1 at the defaults, depending on other load
(`--reps 100` for a quicker, noisier look).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import norm

from models.intervals import (
    PairedBootstrap,
    ar1_scores,
    long_run_variance,
    rank_auroc,
    studentized_interval,
)

LEVEL = 0.95
THRESHOLD = 0.5
NOISE_SD = {"a": 1.0, "b": 1.5}
METHODS = ("percentile", "basic", "pct n/(n-b)", "BCa", "t, block var", "t, flat-top", "t, ft >= iid")
SEEDS = ("a", "a2", "a3")  # seeds of scorer a: the same signal, independent noise
TARGETS = ("AUROC a", "a - b", "seed mean")


def true_auroc(noise_sd: float, threshold: float = THRESHOLD, points: int = 4001) -> float:
    """P(L1 + E1 > L0 + E0): L1 (L0) a standard normal above (below) `threshold`, E1, E0 ~ N(0, sd^2), all
    independent; by the trapezoid rule on a fine grid (error far below the bench's Monte Carlo error)."""
    x1 = np.linspace(threshold, 9.0, points)
    x0 = np.linspace(-9.0, threshold, points)
    w1, w0 = norm.pdf(x1), norm.pdf(x0)
    w1, w0 = w1 / np.trapezoid(w1, x1), w0 / np.trapezoid(w0, x0)
    inner = np.trapezoid(norm.cdf((x1[:, None] - x0[None, :]) / (noise_sd * math.sqrt(2))) * w0, x0, axis=1)
    return float(np.trapezoid(inner * w1, x1))


def simulate(n: int, phi: float, rng) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and both scorers; drawn again while the labels hold one class (AUROC undefined)."""
    while True:
        latent = ar1_scores(1, n, phi, rng)[0]
        scores = {name: latent + sd * ar1_scores(1, n, phi, rng)[0] for name, sd in NOISE_SD.items()}
        scores |= {name: latent + NOISE_SD["a"] * ar1_scores(1, n, phi, rng)[0] for name in SEEDS[1:]}
        labels = (latent > THRESHOLD).astype(int)
        if 0 < labels.sum() < n:
            return labels, scores


def _percentile(star: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2
    low, high = np.nanquantile(star, [tail, 1 - tail])
    return float(low), float(high)


def _bca(theta: float, star: np.ndarray, jack: np.ndarray) -> tuple[float, float]:
    star = star[~np.isnan(star)]
    below = (np.sum(star < theta) + 0.5 * np.sum(star == theta)) / star.size
    z0 = norm.ppf(np.clip(below, 1 / (star.size + 1), star.size / (star.size + 1)))
    jack = jack[~np.isnan(jack)]  # a deleted block may leave one class
    d = jack.mean() - jack
    denom = 6.0 * np.sum(d**2) ** 1.5
    accel = np.sum(d**3) / denom if denom > 0 else 0.0
    z = norm.ppf([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    levels = norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    low, high = np.quantile(star, levels)
    return float(low), float(high)


def _block_jackknife(labels, scores: dict[str, np.ndarray], block: int) -> dict[str, np.ndarray]:
    """AUROC of each scorer with one non-overlapping block of `block` samples left out (the last block
    takes the remainder)."""
    n = labels.size
    starts = np.arange(0, n - block + 1, block)
    out = {name: np.empty(starts.size) for name in scores}
    for j, start in enumerate(starts):
        stop = n if j == starts.size - 1 else start + block
        keep = np.r_[0:start, stop:n]
        for name, s in scores.items():
            out[name][j] = rank_auroc(labels[keep], s[keep])
    return out


def replicate(n: int, phi: float, rep: int, n_boot: int, truth: dict[str, float]) -> dict:
    """Covered (0/1) and width of every (target, method) in one replication, and the block length: every
    method on `PairedBootstrap`'s resamples of the target; the last one is its own interval."""
    rng = np.random.default_rng([n, round(phi * 1000), rep])
    labels, scores = simulate(n, phi, rng)
    boot = PairedBootstrap(labels, n_boot=n_boot, seed=rep, level=LEVEL)
    r = {name: boot.resample(scores[name]) for name in NOISE_SD}
    jack = _block_jackknife(labels, scores, boot.block)
    inflate = math.sqrt(n / (n - boot.block))
    targets = {
        "AUROC a": (r["a"], jack["a"], truth["a"]),
        "a - b": (r["a"] - r["b"], jack["a"] - jack["b"], truth["a"] - truth["b"]),
        "seed mean": (boot.resample(np.stack([scores[k] for k in SEEDS])), np.mean([jack[k] for k in SEEDS], axis=0),
                      truth["a"]),
    }
    out = {"block": boot.block}
    for target, (t, t_jack, true) in targets.items():
        theta, star = t.point, t.samples
        low, high = _percentile(star)
        var_star = (t.sums**2).sum(1) / n**2
        ok = ~np.isnan(star)
        flat_top = long_run_variance(t.psi, 2)  # window >= 2 horizons, horizon 1
        intervals = {
            "percentile": (low, high),
            "basic": (2 * theta - high, 2 * theta - low),
            "pct n/(n-b)": (theta + (low - theta) * inflate, theta + (high - theta) * inflate),
            "BCa": _bca(theta, star, t_jack),
            "t, block var": studentized_interval(theta, star, var_star, float(var_star[ok].mean()), LEVEL, t.bounds),
            "t, flat-top": studentized_interval(theta, star, var_star, flat_top / n, LEVEL, t.bounds),
            "t, ft >= iid": boot.interval(t),
        }
        for method, (lo, hi) in intervals.items():
            lo, hi = max(lo, t.bounds[0]), min(hi, t.bounds[1])
            out[(target, method)] = (float(lo <= true <= hi), hi - lo)
    return out


def run_cell(args) -> tuple[int, float, list[dict]]:
    n, phi, reps, n_boot, truth = args
    return n, phi, [replicate(n, phi, r, n_boot, truth) for r in reps]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=250)
    parser.add_argument("--n", default="200,400,1000")
    parser.add_argument("--phi", default="0,0.5,0.8,0.9")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="2 replications, n 200, phi 0 and 0.5, 20 resamples, "
                        "1 job")
    args = parser.parse_args(argv)
    if args.tiny:
        args.reps, args.n, args.phi, args.n_boot, args.jobs = 2, "200", "0,0.5", 20, 1
    sizes = [int(v) for v in args.n.split(",")]
    phis = [float(v) for v in args.phi.split(",")]
    truth = {name: true_auroc(sd) for name, sd in NOISE_SD.items()}
    print(f"true AUROC a {truth['a']:.4f}, b {truth['b']:.4f}, a - b {truth['a'] - truth['b']:.4f}; "
          f"{args.reps} replications per cell, {args.n_boot} resamples, level {LEVEL}")

    start = time.perf_counter()
    chunks = max(1, args.jobs * 2)
    tasks = [(n, phi, list(range(args.reps))[k::chunks], args.n_boot, truth)
             for n in sizes for phi in phis for k in range(chunks)]
    results: dict[tuple[int, float], list[dict]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for n, phi, reps in pool.map(run_cell, tasks):
            results.setdefault((n, phi), []).extend(reps)
    elapsed = time.perf_counter() - start

    head = f"{'target':<9} {'n':>5} {'phi':>4} {'block':>5}  " + "  ".join(f"{m:>13}" for m in METHODS)
    print("\ncoverage and mean width per cell")
    print(head)
    summary: dict[tuple[str, int], dict[str, list]] = {}
    for target in TARGETS:
        for n in sizes:
            for phi in phis:
                reps = results[(n, phi)]
                cells = []
                for method in METHODS:
                    cov = np.mean([r[(target, method)][0] for r in reps])
                    width = np.mean([r[(target, method)][1] for r in reps])
                    cells.append(f"{cov:6.3f} {width:6.4f}")
                    summary.setdefault((target, n), {}).setdefault(method, []).append((cov, width))
                block = np.mean([r["block"] for r in reps])
                print(f"{target:<9} {n:>5} {phi:>4} {block:5.1f}  " + "  ".join(f"{c:>13}" for c in cells))

    print(f"\nmean over phi in {args.phi}: coverage (width / percentile width)")
    print(f"{'target':<9} {'n':>5}  " + "  ".join(f"{m:>13}" for m in METHODS))
    for target in TARGETS:
        for n in sizes:
            rows = summary[(target, n)]
            base = np.mean([w for _, w in rows["percentile"]])
            cells = []
            for m in METHODS:
                cov, width = np.mean(rows[m], axis=0)
                cells.append(f"{cov:5.3f} ({width / base:4.2f})")
            print(f"{target:<9} {n:>5}  " + "  ".join(f"{c:>13}" for c in cells))
    mc = math.sqrt(LEVEL * (1 - LEVEL) / args.reps)
    print(f"\nMonte Carlo SE of one coverage near {LEVEL}: {mc:.3f} (of a mean over {len(phis)} phi: "
          f"{mc / math.sqrt(len(phis)):.3f}); {elapsed:.0f} s with {args.jobs} jobs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()
