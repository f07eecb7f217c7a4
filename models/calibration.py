"""Platt calibration of a classifier's probabilities: a two-parameter logistic map of logit(p).

Focal loss and class weights leave probabilities that rank well but are not frequencies. The map
``p -> sigmoid(a * logit(p) + b)`` keeps the ranking (AUROC unchanged for a > 0), fits with two
parameters, so it is stable with few positives (isotonic regression overfits there), and stores as two
floats. The fit uses Platt's (1999) smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``
instead of 1 and 0, which keeps a and b finite when the fit rows separate perfectly or hold one class.

`cross_fitted_calibration` scores the validation samples without using a point's own label: the
samples, in time order, are cut into contiguous blocks, and block j is mapped by a calibrator fit on all
the other blocks (minus `gap` samples on each side of block j). All other blocks rather than earlier
blocks only: the first block then gets a calibrator too, and each fit sees (folds - 1) / folds of the
data; what leaks from later blocks is two parameters of a monotone map, not any label of block j. With
overlapping labels (horizon h), pass ``gap=h - 1`` to also drop the neighbours that share future days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-7  # probabilities are clipped to [_EPS, 1 - _EPS] before the logit


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class Calibrator:
    """``p -> sigmoid(a * logit(p) + b)``; picklable, two floats. Identity is a=1, b=0."""

    a: float = 1.0
    b: float = 0.0

    def transform(self, probs) -> np.ndarray:
        return _sigmoid(self.a * logit(probs) + self.b)


def platt_targets(labels) -> np.ndarray:
    """Platt's smoothed targets: (N+ + 1) / (N+ + 2) for positives, 1 / (N- + 2) for negatives."""
    y = np.asarray(labels).reshape(-1).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return np.where(y, (n_pos + 1) / (n_pos + 2), 1.0 / (n_neg + 2))


def fit_calibrator(probs, labels, max_iter: int = 100, tol: float = 1e-10) -> Calibrator:
    """Platt calibrator fit by Newton's method (with step halving) on the cross-entropy of the smoothed
    targets against ``sigmoid(a * logit(p) + b)``."""
    x = logit(probs).reshape(-1)
    t = platt_targets(labels)
    if x.size != t.size:
        raise ValueError(f"probs has {x.size} values but labels has {t.size}")
    if x.size == 0:
        raise ValueError("fit_calibrator needs at least one sample")
    design = np.column_stack([x, np.ones_like(x)])

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    w = np.array([1.0, 0.0]) if np.ptp(x) > 0 else np.array([0.0, 0.0])
    current = loss(w)
    for _ in range(max_iter):
        p = _sigmoid(design @ w)
        grad = design.T @ (p - t)
        hess = design.T @ (design * (p * (1 - p))[:, None])
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # min-norm step when logit(p) is constant
        size = 1.0
        while size > 1e-10:
            trial = w - size * step
            new = loss(trial)
            if new <= current:
                break
            size /= 2
        else:
            break
        w, improvement, current = trial, current - new, new
        if improvement <= tol * max(1.0, abs(current)) and np.max(np.abs(size * step)) < 1e-8:
            break
    return Calibrator(a=float(w[0]), b=float(w[1]))


def fold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
    """[start, stop) of `folds` contiguous blocks covering range(n) in order, sizes differing by at most 1."""
    edges = np.linspace(0, n, folds + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def cross_fitted_calibration(probs, labels, folds: int = 5, *, gap: int = 0) -> np.ndarray:
    """Calibrated probabilities of time-ordered validation samples, no sample mapped by a calibrator that
    saw its label: block j of `folds` contiguous blocks uses a calibrator fit on the other blocks, less
    `gap` samples on each side of block j."""
    probs = np.asarray(probs, dtype=float).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    n = probs.size
    if labels.size != n:
        raise ValueError(f"probs has {n} values but labels has {labels.size}")
    if not 2 <= folds <= n:
        raise ValueError(f"folds must be in [2, n={n}], got {folds}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    out = np.empty(n)
    for start, stop in fold_bounds(n, folds):
        fit = np.ones(n, dtype=bool)
        fit[max(0, start - gap) : stop + gap] = False
        if not fit.any():
            raise ValueError(f"gap={gap} leaves no sample to fit the calibrator of block [{start}, {stop})")
        out[start:stop] = fit_calibrator(probs[fit], labels[fit]).transform(probs[start:stop])
    return out
