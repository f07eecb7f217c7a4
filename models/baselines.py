"""Reference predictors that every reported AUROC stands beside; all return P(y = 1) for the eval rows.

Each is fit on train rows only. `BASELINES` maps a name to a function of one `BaselineInputs`, so a caller
can loop over all of them with the same arguments. `scores` builds the inputs from prepared data (the one
place that does) and fits each baseline once per data set, stage and seed; `choose` picks the best baseline
on the select part of val, as a model's epoch and a study's trial are chosen, so that it is compared with
the model on samples that chose nothing. `SET` names the baselines and their version for a study's
definition: a study resumed with another set would mix trials judged against different baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from datamodules.prepared import VAL_PARTS, Prepared
from models.intervals import best_of, rank_auroc

VERSION = 2  # raise when a baseline's definition, settings or selection rule changes (2: chosen on val_select)
CHOOSE_ON = VAL_PARTS[0]  # val_select
LOGISTIC_C = 1.0
LOGISTIC_MAX_ITER = 5000
BOOSTING_PARAMS = dict(
    max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
    early_stopping=False,
)


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


def logistic_pipeline() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=LOGISTIC_C, max_iter=LOGISTIC_MAX_ITER))


def logistic(train_x, train_y, eval_x) -> np.ndarray:
    """P(y = 1) for the eval rows from StandardScaler + L2 logistic regression (C=1) on all features at the
    window's last day, fit on train rows only. Features must be finite."""
    x, y = _train_rows(train_x, train_y, "logistic")
    eval_x = _as_2d(eval_x)
    for name, a in (("train_x", x), ("eval_x", eval_x)):
        if not np.isfinite(a).all():
            raise ValueError(f"logistic baseline needs finite features; {name} has NaN or inf")
    return logistic_pipeline().fit(x, y).predict_proba(eval_x)[:, 1]


def boosting(train_x, train_y, eval_x, seed: int = 0) -> np.ndarray:
    """P(y = 1) for the eval rows from a histogram gradient-boosted tree ensemble with fixed small settings
    (`BOOSTING_PARAMS`, no early stopping, so no internal split and a deterministic fit for a seed), fit on
    train rows only. NaN features are allowed (the trees route them)."""
    x, y = _train_rows(train_x, train_y, "boosting")
    model = HistGradientBoostingClassifier(**BOOSTING_PARAMS, random_state=seed).fit(x, y)
    return model.predict_proba(_as_2d(eval_x))[:, 1]


@dataclass(frozen=True)
class BaselineInputs:
    """What every baseline may see: train labels and the train and eval rows' features at the window's last
    day and volatility. The eval labels are deliberately not here."""

    train_y: np.ndarray  # [n_train] 0/1
    train_x: np.ndarray  # [n_train, F] features at each window's last day
    eval_x: np.ndarray  # [n_eval, F]
    train_vol: np.ndarray  # [n_train] or [n_train, k] volatility features
    eval_vol: np.ndarray  # [n_eval] or [n_eval, k]
    seed: int = 0

    def __post_init__(self) -> None:
        n_train = len(np.asarray(self.train_y).reshape(-1))
        for name in ("train_x", "train_vol"):
            if len(getattr(self, name)) != n_train:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows but train_y has {n_train}")
        if len(self.eval_vol) != len(self.eval_x):
            raise ValueError(f"eval_vol has {len(self.eval_vol)} rows but eval_x has {len(self.eval_x)}")

    @property
    def n_eval(self) -> int:
        return len(self.eval_x)


def _run_majority(d: BaselineInputs) -> np.ndarray:
    return majority(d.train_y, d.n_eval)


def _run_volatility(d: BaselineInputs) -> np.ndarray:
    return volatility_logistic(d.train_vol, d.train_y, d.eval_vol)


def _run_logistic(d: BaselineInputs) -> np.ndarray:
    return logistic(d.train_x, d.train_y, d.eval_x)


def _run_boosting(d: BaselineInputs) -> np.ndarray:
    return boosting(d.train_x, d.train_y, d.eval_x, d.seed)


BASELINES: dict[str, Callable[[BaselineInputs], np.ndarray]] = {
    "majority": _run_majority,
    "volatility": _run_volatility,
    "logistic": _run_logistic,
    "boosting": _run_boosting,
}


def _train_rows(train_x, train_y, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = _as_2d(train_x)
    y = np.asarray(train_y).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"train_x has {len(x)} rows but train_y has {len(y)}")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{name} baseline needs both classes in the train labels")
    return x, y


def _as_2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x.reshape(-1, 1) if x.ndim == 1 else x


SET = f"{','.join(BASELINES)}@v{VERSION}"
LEGACY_SET = "majority,volatility,logistic,boosting@v1"  # what a study made before sets were recorded used


def inputs(prepared: Prepared, stages: tuple[str, ...], seed: int) -> BaselineInputs:
    """What the baselines see for the samples of `stages` (in that order): train labels, train and eval
    features and volatility."""
    return BaselineInputs(train_y=prepared.labels("train"), train_x=prepared.last_features("train"),
                          eval_x=np.concatenate([prepared.last_features(s) for s in stages]),
                          train_vol=prepared.volatility("train"),
                          eval_vol=np.concatenate([prepared.volatility(s) for s in stages]), seed=seed)


def scores(prepared: Prepared, stage: str, seed: int) -> dict[str, np.ndarray]:
    """Every baseline's probabilities for the samples of `stage`, fit on train; kept in
    `prepared.baseline_scores`, so a study's trials fit them once (once for both parts of val)."""
    if (stage, seed) not in prepared.baseline_scores:
        stages = VAL_PARTS if stage in VAL_PARTS else (stage,)
        data = inputs(prepared, stages, seed)
        fitted = {name: run(data) for name, run in BASELINES.items()}
        ends = np.cumsum([len(prepared.labels(s)) for s in stages])
        for s, start, end in zip(stages, [0, *ends[:-1]], ends, strict=True):
            prepared.baseline_scores[s, seed] = {name: p[start:end] for name, p in fitted.items()}
    return prepared.baseline_scores[stage, seed]


def choose(prepared: Prepared, seeds) -> str:
    """The best baseline: highest AUROC on `CHOOSE_ON` (val_select; mean over `seeds`), never reading the
    labels it is later compared on."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    labels = prepared.labels(CHOOSE_ON)
    return best_of({name: float(np.mean([rank_auroc(labels, scores(prepared, CHOOSE_ON, s)[name]) for s in seeds]))
                    for name in BASELINES})
