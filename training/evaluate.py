"""Evaluation of a trained classifier on one part of the data, beside every baseline on the same samples.

- Baselines (`models.baselines.BASELINES`: majority, volatility, logistic, boosting) are fit on train rows
  only and score the same samples as the model.
- Intervals are studentized stationary block-bootstrap intervals (`models.intervals`): the block length
  comes from the horizon and the dependence of the train labels (`history`), never below the horizon, so
  overlapping and volatility-clustered labels do not make them too narrow. The model's AUROC is compared,
  paired, with each baseline and with the best of them (`best_baseline`: chosen by the caller on val_select,
  `models.baselines.choose`, as the model is, never on the samples it is compared on); the rule that reads
  the paired interval is `models.intervals.verdict`.
- Brier score and the accuracies at p >= 0.5 are given on raw probabilities (`brier`, ...) and on
  calibrated ones (`brier_calibrated`, ...): Platt scaling cross-fitted in time order, so no sample is
  scored by a calibrator fit on it. AUROC stays on raw scores (calibration keeps the ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

from models.calibration import cross_fitted_calibration
from models.intervals import SAYS, Intervals, Setting, verdict
from models.metrics import binary_metrics
from training import plotting

MODEL = "model"
CALIBRATED = ("brier", "direction_accuracy", "balanced_accuracy")  # the metrics that read probability levels
N_BOOT = 1000


@torch.no_grad()
def predict_probs(module: torch.nn.Module, loader, device: torch.device | str | None = None) -> np.ndarray:
    """Probabilities of the positive class for every sample of `loader`, in order, computed on `device`
    (default: where the module's parameters are) in the loader's batches.

    The module is moved to `device` for the call and back after; batches not there already are copied
    there (without waiting when the loader pinned them). Probabilities stay on the device until the end:
    one device-to-host copy, no sync per batch.
    """
    home = next(module.parameters()).device
    device = home if device is None else torch.device(device)
    was_training = module.training
    module.eval().to(device)
    try:
        to_gpu = device.type == "cuda"  # host to device: asynchronous (from pinned memory)
        out = [torch.sigmoid(module(x.to(device, non_blocking=to_gpu)).float()).reshape(-1) for x, _ in loader]
        probs = torch.cat(out).cpu() if out else torch.zeros(0)
    finally:
        module.to(home).train(was_training)
    return probs.numpy()


@dataclass
class Evaluation:
    stage: str  # the metric prefix: `val` or `test`
    dates: pd.DatetimeIndex
    labels: np.ndarray
    scores: dict[str, np.ndarray]  # `model` first, then each baseline: raw probabilities
    calibrated: dict[str, np.ndarray]
    intervals: Intervals
    best_baseline: str
    metrics: dict[str, float]  # MLflow names: `val/auroc`, `baseline/logistic/val/auroc`, ...

    @property
    def ci_params(self) -> dict[str, object]:
        return {"ci.method": self.intervals.method, "ci.block_length": self.intervals.block,
                "ci.level": self.intervals.level, "ci.n_boot": self.intervals.n_boot}

    def predictions(self) -> pd.DataFrame:
        """date, label, probability (raw), probability_calibrated: enough to recompute every number."""
        return pd.DataFrame({"date": self.dates, "label": self.labels.astype(np.int8),
                             "probability": self.scores[MODEL], "probability_calibrated": self.calibrated[MODEL]})

    def verdict(self) -> str:
        """Whether the model beat the best baseline (`models.intervals.verdict` of the paired interval)."""
        return f"{SAYS[verdict(*self.intervals.diff[MODEL, self.best_baseline])]} the {self.best_baseline} baseline"


def evaluate(
    stage: str, labels: np.ndarray, dates: pd.DatetimeIndex, model_probs: np.ndarray,
    baselines: dict[str, np.ndarray], *, best_baseline: str, setting: Setting,
) -> Evaluation:
    """The model and the baselines on one set of samples (in date order), the model paired with
    `best_baseline` (chosen by the caller on other samples); `setting.history`: the train labels, whose
    dependence sets the bootstrap's block length (`models.intervals.block_length`)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = {MODEL: np.asarray(model_probs, dtype=np.float64), **baselines}
    calibrated = {name: cross_fitted_calibration(p, labels, gap=setting.horizon - 1) for name, p in scores.items()}
    intervals = setting.intervals(labels, scores, n_boot=N_BOOT)
    metrics: dict[str, float] = {}
    for name in scores:
        prefix = stage if name == MODEL else f"baseline/{name}/{stage}"
        metrics |= {f"{prefix}/{k}": v for k, v in binary_metrics(scores[name], labels).items()}
        metrics |= {f"{prefix}/{k}_calibrated": v for k, v in binary_metrics(calibrated[name], labels).items()
                    if k in CALIBRATED}
        metrics[f"{prefix}/auroc_ci_low"], metrics[f"{prefix}/auroc_ci_high"] = intervals.ci[name]
    for name in [*baselines, "best_baseline"]:
        low, high = intervals.diff[MODEL, best_baseline if name == "best_baseline" else name]
        metrics[f"{stage}/auroc_vs_{name}_ci_low"], metrics[f"{stage}/auroc_vs_{name}_ci_high"] = low, high
    metrics[f"baseline/best/{stage}/auroc"] = metrics[f"baseline/{best_baseline}/{stage}/auroc"]
    return Evaluation(stage, dates, labels, scores, calibrated, intervals, best_baseline, metrics)


def figures(ev: Evaluation, title: str) -> dict[str, Figure]:
    """`plots/<stage>_roc.png` (every scorer, the AUROCs with their intervals, the best baseline named) and
    `plots/<stage>_calibration.png` (the model's raw and calibrated probabilities, bins with their counts)."""
    return {f"plots/{ev.stage}_roc.png": roc_figure(ev, f"{title} ROC"),
            f"plots/{ev.stage}_calibration.png": calibration_figure(
                ev.labels, {"raw": ev.scores[MODEL], "calibrated": ev.calibrated[MODEL]}, f"{title} calibration")}


def roc_figure(ev: Evaluation, title: str) -> Figure:
    from sklearn.metrics import roc_curve

    curves = []
    for name, p in ev.scores.items():
        fpr, tpr, _ = roc_curve(ev.labels, p)
        role = "model" if name == MODEL else "best baseline" if name == ev.best_baseline else "baseline"
        auroc = plotting.Estimate(ev.intervals.point[name], *ev.intervals.ci[name])
        curves.append(plotting.RocCurve(name, fpr, tpr, auroc, role))
    return plotting.roc_figure(title, curves)


def calibration_bins(labels: np.ndarray, p: np.ndarray, bins: int = 10) -> list[plotting.CalibrationBin]:
    """Equal-count bins of `p` (in order of `p`): mean probability, observed frequency, samples."""
    groups = [g for g in np.array_split(np.argsort(p, kind="stable"), bins) if len(g)]
    return [plotting.CalibrationBin(float(p[g].mean()), float(labels[g].mean()), len(g)) for g in groups]


def calibration_figure(labels: np.ndarray, probs: dict[str, np.ndarray], title: str, bins: int = 10) -> Figure:
    """Reliability diagram on equal-count bins of each probability series, with the base rate as reference."""
    return plotting.calibration_figure(title, {name: calibration_bins(labels, p, bins) for name, p in probs.items()},
                                       float(labels.mean()))
