"""AUROC under time dependence: rank AUROC, block-bootstrap intervals and the selection null.

Labels of consecutive days overlap when the horizon is above one day, so they are autocorrelated and an
i.i.d. bootstrap gives intervals that are too narrow. Everything here resamples or simulates in blocks of
consecutive days instead. Pure numpy / scipy; no torch, no MLflow.

Rules chosen (see each function):

* block length: ``max(horizon, ceil(b_PW))`` capped at ``max(horizon, n // 4)``, where ``b_PW`` is the
  Politis-White (2004) automatic block length for the stationary bootstrap (with the Patton, Politis and
  White 2009 correction) of the label series. It is the published data-driven rule, and the floor keeps
  each block at least as long as one label's look-ahead window.
* resampling: the stationary bootstrap (Politis and Romano 1994): geometric block lengths of mean ``block``,
  circular wrap, so every day is equally likely to be drawn.
* selection null: each random scorer is a stationary Gaussian AR(1) series with ``phi = 1 - 1/block``
  (block = the block length above), i.e. a smooth series that decorrelates on the same time scale as the
  labels, as a model's scores on overlapping input windows do. With i.i.d. noise scorers the label
  dependence would not matter at all, and the null would be too narrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter
from scipy.stats import rankdata

METHODS = ("stationary", "moving")
_CHUNK = 1 << 21  # elements per simulated chunk in selection_null_samples (~16 MiB of float64)


def rank_auroc(labels, scores) -> np.ndarray | float:
    """AUROC along the last axis by the Mann-Whitney rank statistic (ties averaged); NaN for one class.

    `labels` (0/1) broadcasts against `scores`, so one label row can serve a stack of score rows.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.broadcast_to(np.asarray(labels, dtype=float), scores.shape)
    ranks = rankdata(scores, axis=-1)
    pos = labels.sum(-1)
    neg = labels.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)
    return float(out) if np.ndim(out) == 0 else out


def politis_white(x) -> float:
    """Politis-White automatic block length for the stationary bootstrap of the series `x` (not rounded).

    Flat-top lag window with the bandwidth rule of Politis and White (2004), corrected by Patton, Politis
    and White (2009): ``b = (G^2 / g0^2)^(1/3) n^(1/3)``, ``G = sum lambda(k/M) |k| R(k)``,
    ``g0 = sum lambda(k/M) R(k)``. Returns 1.0 for a constant series.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    n = x.size
    x = x - x.mean()
    gamma0 = x @ x / n
    if n < 4 or gamma0 <= 0:
        return 1.0
    kn = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + kn
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    lags = min(m_max + kn, n - 1)
    acov = np.array([x[k:] @ x[: n - k] / n for k in range(lags + 1)])
    rho = acov[1:] / gamma0
    threshold = 2.0 * math.sqrt(math.log10(n) / n)
    small = np.abs(rho) < threshold
    # smallest m such that the kn autocorrelations after lag m are all insignificant
    m_hat = None
    for m in range(max(len(small) - kn + 1, 1)):
        if small[m : m + kn].all():
            m_hat = m + 1
            break
    m = m_max if m_hat is None else min(2 * m_hat, m_max)
    m = min(m, lags)
    k = np.arange(1, m + 1)
    t = k / m
    lam = np.where(t <= 0.5, 1.0, 2.0 * (1.0 - t))
    g0 = gamma0 + 2.0 * (lam * acov[1 : m + 1]).sum()
    big_g = 2.0 * (lam * k * acov[1 : m + 1]).sum()
    if g0 <= 0:
        return 1.0
    b = (big_g**2 / g0**2) ** (1 / 3) * n ** (1 / 3)
    return float(min(max(b, 1.0), b_max))


def block_length(labels, horizon: int = 1) -> int:
    """Block length for the block bootstrap of samples with these labels.

    ``max(horizon, ceil(politis_white(labels)))``, capped at ``max(horizon, n // 4)`` (and at n): never
    shorter than one label's look-ahead (consecutive labels share up to ``horizon - 1`` future days), longer
    when the label series stays autocorrelated beyond the horizon.
    """
    labels = np.asarray(labels, dtype=float).reshape(-1)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    n = labels.size
    if n == 0:
        raise ValueError("block_length needs at least one label")
    block = max(horizon, math.ceil(politis_white(labels)))
    return int(max(1, min(block, max(horizon, n // 4), n)))


def block_bootstrap_indices(n: int, block: int, n_boot: int, rng=None, method: str = "stationary") -> np.ndarray:
    """[n_boot, n] int indices into n samples, each row made of blocks of consecutive samples.

    `stationary` (Politis-Romano): each position starts a new block with probability 1/block (so block
    lengths are geometric with mean `block`), at a uniform start, wrapping around circularly.
    `moving` (Kuensch): blocks of exactly `block` samples at uniform starts in ``[0, n - block]``, no wrap,
    the last block cut to length n. block=1 is the i.i.d. bootstrap in both cases.
    `rng` is a numpy Generator or a seed.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if n < 1 or n_boot < 1:
        raise ValueError(f"n and n_boot must be >= 1, got n={n}, n_boot={n_boot}")
    if not 1 <= block <= n:
        raise ValueError(f"block must be in [1, n={n}], got {block}")
    rng = np.random.default_rng(rng)
    pos = np.arange(n)
    if method == "moving":
        n_blocks = -(-n // block)
        starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
        return (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    new = rng.random((n_boot, n)) < 1.0 / block
    new[:, 0] = True
    starts = rng.integers(0, n, size=(n_boot, n))
    first = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # position where the current block began
    begin = np.take_along_axis(starts, first, axis=1)
    return (begin + pos - first) % n


@dataclass(frozen=True)
class Intervals:
    """Bootstrap result. `point`: AUROC on the full sample; `ci[name]`: percentile interval; `diff[(a, b)]`:
    paired interval of AUROC(a) - AUROC(b) from the same resamples, for every ordered pair; `samples`:
    the resampled AUROCs (NaN where a resample held one class)."""

    point: dict[str, float]
    ci: dict[str, tuple[float, float]]
    diff: dict[tuple[str, str], tuple[float, float]]
    method: str
    block: int
    level: float
    n_boot: int
    samples: dict[str, np.ndarray] = field(repr=False)

    def best_of(self, names) -> str:
        """The name among `names` with the highest point AUROC (first on ties, NaN last)."""
        names = list(names)
        if not names:
            raise ValueError("best_of needs at least one name")
        values = [self.point[n] for n in names]
        return names[int(np.argmax([-np.inf if np.isnan(v) else v for v in values]))]


def resampled_auroc(labels, scores, idx: np.ndarray) -> np.ndarray:
    """AUROC of `scores` on each resample ``labels[idx[b]], scores[idx[b]]``: [n_boot].

    Equal to ``rank_auroc(labels[idx], scores[idx])`` without sorting every resample: the distinct score
    values are sorted once, each resample is reduced to how many positives and negatives it drew at each
    value, and the Mann-Whitney count (ties half) follows from cumulative sums.
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(scores, dtype=float).reshape(-1)
    values, group = np.unique(scores, return_inverse=True)  # group: rank of each sample's distinct value
    n_boot = idx.shape[0]
    g = values.size
    key = (group[idx] * 2 + labels[idx]) + (2 * g) * np.arange(n_boot)[:, None]
    counts = np.bincount(key.ravel(), minlength=n_boot * 2 * g).reshape(n_boot, g, 2).astype(float)
    neg, pos = counts[..., 0], counts[..., 1]
    neg_below = np.cumsum(neg, axis=1) - neg
    u = (pos * (neg_below + 0.5 * neg)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return u / (pos.sum(1) * neg.sum(1))


def bootstrap_auroc(
    labels, scores: dict[str, np.ndarray], *, horizon: int = 1, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95, block: int | None = None, method: str = "stationary",
) -> Intervals:
    """Block-bootstrap percentile intervals of each scorer's AUROC and of every paired difference.

    One index matrix (`block_bootstrap_indices`, blocks of `block` samples, default
    ``block_length(labels, horizon)``) is shared by all scorers, so differences are paired. block=1 gives
    the i.i.d. bootstrap. Samples must be in time order.
    """
    labels = np.asarray(labels).reshape(-1)
    if not scores:
        raise ValueError("bootstrap_auroc needs at least one scorer")
    n = labels.size
    for name, s in scores.items():
        if np.shape(s) != (n,):
            raise ValueError(f"scorer {name!r} has shape {np.shape(s)}, labels have ({n},)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if block is None:
        block = block_length(labels, horizon)
    idx = block_bootstrap_indices(n, block, n_boot, np.random.default_rng(seed), method)
    samples = {name: resampled_auroc(labels, s, idx) for name, s in scores.items()}
    tail = (1 - level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        if np.isnan(values).all():
            return math.nan, math.nan
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        return float(low), float(high)

    return Intervals(
        point={name: float(rank_auroc(labels, s)) for name, s in scores.items()},
        ci={name: interval(a) for name, a in samples.items()},
        diff={(a, b): interval(samples[a] - samples[b]) for a in samples for b in samples if a != b},
        method=f"{method}-block",
        block=int(block),
        level=level,
        n_boot=n_boot,
        samples=samples,
    )


def ar1_scores(rows: int, n: int, phi: float, rng) -> np.ndarray:
    """[rows, n] stationary Gaussian AR(1) series with unit variance and coefficient `phi`."""
    eps = rng.standard_normal((rows, n))
    eps[:, 1:] *= math.sqrt(1.0 - phi**2)  # innovations of variance 1 - phi^2; x_0 ~ N(0, 1)
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


def selection_null_samples(
    labels, k: int, *, horizon: int = 1, n_sim: int = 2000, seed: int = 0, block: int | None = None
) -> np.ndarray:
    """[n_sim] best AUROC reached by `k` independent random scorers on these labels, per simulation.

    Each scorer is a stationary AR(1) series with ``phi = 1 - 1/block`` (block defaults to
    ``block_length(labels, horizon)``; block=1 gives i.i.d. noise scorers).
    """
    labels = np.asarray(labels).reshape(-1).astype(float)
    n = labels.size
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pos = labels.sum()
    if pos in (0, n):
        raise ValueError("selection_null needs both classes in the labels")
    if block is None:
        block = block_length(labels, horizon)
    phi = 1.0 - 1.0 / block
    rng = np.random.default_rng(seed)
    rank_weight = np.arange(1, n + 1, dtype=float)
    sims_per_chunk = max(1, _CHUNK // (k * n))
    best = []
    for start in range(0, n_sim, sims_per_chunk):
        m = min(sims_per_chunk, n_sim - start)
        order = np.argsort(ar1_scores(m * k, n, phi, rng), axis=1)
        u = labels[order] @ rank_weight - pos * (pos + 1) / 2  # continuous scores: no ties
        best.append((u / (pos * (n - pos))).reshape(m, k).max(1))
    return np.concatenate(best)


def selection_null(
    labels, k: int, *, horizon: int = 1, n_sim: int = 2000, seed: int = 0, q: float = 0.95,
    block: int | None = None,
) -> float:
    """The q-quantile of the best AUROC reached by `k` independent random scorers on these labels: a best
    trial of a k-trial study must beat it before its validation AUROC says more than selection luck."""
    return float(np.quantile(selection_null_samples(labels, k, horizon=horizon, n_sim=n_sim, seed=seed,
                                                    block=block), q))
