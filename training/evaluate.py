"""Evaluation of a trained classifier on one split: metrics, a paired bootstrap interval for AUROC,
the majority and volatility-only baselines on the same samples, ROC and calibration plots."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from scipy.stats import rankdata

from models import baselines
from models.metrics import binary_metrics


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


def rank_auroc(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUROC along the last axis by the Mann-Whitney rank statistic (ties averaged); NaN for one class."""
    ranks = rankdata(probs, axis=-1)
    pos = labels.sum(-1)
    neg = labels.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)


def bootstrap_auroc(
    labels: np.ndarray, probs: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each scorer's AUROC and of each scorer's AUROC minus the first one's,
    from one set of paired resamples of the samples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    y = labels[idx]
    aucs = {name: rank_auroc(y, p[idx]) for name, p in probs.items()}
    tail = (1 - level) / 2 * 100
    first = next(iter(probs))

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        return float(low), float(high)

    out = {name: interval(a) for name, a in aucs.items()}
    out.update({f"{name}-{first}": interval(a - aucs[first]) for name, a in aucs.items() if name != first})
    return out


def evaluate_split(
    stage: str, labels: np.ndarray, probs: np.ndarray, *, train_labels: np.ndarray,
    train_volatility: np.ndarray, volatility: np.ndarray, seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics of the model and both baselines on one split.

    Returns flat metrics (`val/auroc`, `val/auroc_ci_low`, `baseline/volatility/val/auroc`,
    `val/auroc_vs_volatility_ci_low`, ...) and the probabilities of each scorer (for the plots).
    """
    scores = {
        "model": probs,
        "volatility": baselines.volatility_logistic(train_volatility, train_labels, volatility),
        "majority": baselines.majority(train_labels, len(labels)),
    }
    metrics = {f"{stage}/{k}": v for k, v in binary_metrics(probs, labels).items()}
    for name in ("majority", "volatility"):
        base = binary_metrics(scores[name], labels)
        metrics.update({f"baseline/{name}/{stage}/{k}": v for k, v in base.items()})
    ci = bootstrap_auroc(labels, {"volatility": scores["volatility"], "model": probs}, seed=seed)
    metrics[f"{stage}/auroc_ci_low"], metrics[f"{stage}/auroc_ci_high"] = ci["model"]
    lo, hi = ci["volatility"]
    metrics[f"baseline/volatility/{stage}/auroc_ci_low"] = lo
    metrics[f"baseline/volatility/{stage}/auroc_ci_high"] = hi
    lo, hi = ci["model-volatility"]
    metrics[f"{stage}/auroc_vs_volatility_ci_low"] = lo
    metrics[f"{stage}/auroc_vs_volatility_ci_high"] = hi
    return metrics, scores


def roc_figure(labels: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Figure:
    from sklearn.metrics import roc_curve

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(labels, p)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {rank_auroc(labels, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(labels: np.ndarray, probs: np.ndarray, title: str, bins: int = 10) -> Figure:
    """Reliability diagram on equal-count bins, with the base rate as reference."""
    order = np.argsort(probs, kind="stable")
    groups = [g for g in np.array_split(order, bins) if len(g)]
    mean_p = [probs[g].mean() for g in groups]
    freq = [labels[g].mean() for g in groups]
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    top = max(max(mean_p), max(freq)) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect calibration")
    ax.axhline(labels.mean(), color="tab:orange", linestyle="--", label="base rate")
    ax.plot(mean_p, freq, marker="o", label="model")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
