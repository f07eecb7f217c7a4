"""The one definition of the binary metrics, for the classifier (per stage) and for baselines (whole arrays).

Inputs are probabilities of the positive class and 0/1 labels. The predicted class is `p >= 0.5` (torchmetrics'
own threshold is strict), and it is compared with the label: a direction accuracy is the fraction of samples
whose predicted class equals the label, never a comparison of probabilities, returns or signs.
"""

from __future__ import annotations

import torch
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryAveragePrecision, BinaryStatScores
from torchmetrics.utilities import dim_zero_cat

THRESHOLD = 0.5


class _PredictedClass:
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update((preds >= THRESHOLD).long(), target)


class AUROC(BinaryAUROC):
    """NaN (not torchmetrics' 0 with a warning) when the labels hold one class only."""

    def compute(self) -> torch.Tensor:
        target = dim_zero_cat(self.target)
        if target.numel() == 0 or target.min() == target.max():
            return torch.tensor(float("nan"), device=self.device)
        return super().compute()


class AveragePrecision(BinaryAveragePrecision):
    """NaN (not torchmetrics' 0 with a warning) when the labels hold no positive."""

    def compute(self) -> torch.Tensor:
        if not bool((dim_zero_cat(self.target) == 1).any()):
            return torch.tensor(float("nan"), device=self.device)
        return super().compute()


class DirectionAccuracy(_PredictedClass, BinaryAccuracy):
    """Fraction of samples with (p >= 0.5) == label."""


class BalancedAccuracy(_PredictedClass, BinaryStatScores):
    """Mean of the true positive and true negative rates over the classes present in the labels."""

    def compute(self) -> torch.Tensor:
        tp, fp, tn, fn = self._final_state()[:4]
        rates = [tp / (tp + fn)] if tp + fn > 0 else []
        rates += [tn / (tn + fp)] if tn + fp > 0 else []
        return torch.stack(rates).float().mean() if rates else torch.tensor(float("nan"), device=self.device)


class BrierScore(MeanSquaredError):
    """Mean squared difference between probability and 0/1 label."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds, target.to(preds.dtype))


def binary_metric_collection(prefix: str | None = None) -> MetricCollection:
    """auroc, ap, brier, direction_accuracy, balanced_accuracy; `prefix="val/"` names them `val/auroc`, ..."""
    return MetricCollection(
        {
            "auroc": AUROC(),
            "ap": AveragePrecision(),
            "brier": BrierScore(),
            "direction_accuracy": DirectionAccuracy(),
            "balanced_accuracy": BalancedAccuracy(),
        },
        prefix=prefix,
    )


def binary_metrics(probs, labels) -> dict[str, float]:
    """The collection's metrics on whole numpy/torch arrays of probabilities and 0/1 labels."""
    probs = torch.as_tensor(probs).detach().cpu().double().reshape(-1)
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if probs.shape != labels.shape or probs.numel() == 0:
        raise ValueError("probs and labels must be non-empty and equally long, got "
                         f"{probs.numel()} and {labels.numel()}")
    if not bool(((probs >= 0) & (probs <= 1)).all()):
        raise ValueError("probs must be probabilities in [0, 1]")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 or 1")
    metrics = binary_metric_collection()
    metrics.update(probs, labels.long())
    return {name: float(value) for name, value in metrics.compute().items()}
