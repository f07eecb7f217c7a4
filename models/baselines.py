"""Reference predictors that every reported AUROC stands beside; both return probability arrays."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def majority(train_y, n: int) -> np.ndarray:
    """The train positive rate for each of `n` samples."""
    train_y = np.asarray(train_y, dtype=float).reshape(-1)
    if train_y.size == 0:
        raise ValueError("majority baseline needs at least one train label")
    return np.full(n, train_y.mean())


def fit_volatility_logistic(train_vol, train_y) -> Pipeline:
    """StandardScaler + LogisticRegression fit on train rows only; `train_vol` is [n] or [n, k]."""
    x = _as_2d(train_vol)
    y = np.asarray(train_y).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"train_vol has {len(x)} rows but train_y has {len(y)}")
    if len(np.unique(y)) < 2:
        raise ValueError("volatility baseline needs both classes in the train labels")
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def volatility_logistic(train_vol, train_y, eval_vol) -> np.ndarray:
    """P(y = 1) for the eval rows from a logistic regression on volatility features fit on train rows only."""
    return fit_volatility_logistic(train_vol, train_y).predict_proba(_as_2d(eval_vol))[:, 1]


def _as_2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x.reshape(-1, 1) if x.ndim == 1 else x
