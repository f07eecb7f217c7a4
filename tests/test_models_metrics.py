"""The binary metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    roc_auc_score,
)

from models.metrics import binary_metric_collection, binary_metrics


def test_hand_computed_small_case():
    m = binary_metrics(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert m["auroc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["direction_accuracy"] == pytest.approx(0.75)  # predicted classes 0, 0, 0, 1
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 2) / 2)


def test_imbalanced_all_negative_predictor():
    labels = np.array([0] * 9 + [1])
    m = binary_metrics(np.full(10, 0.1), labels)
    assert m["direction_accuracy"] == pytest.approx(0.9)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx(0.5)  # a constant predictor ranks nothing
    assert m["ap"] == pytest.approx(0.1)
    assert m["brier"] == pytest.approx((9 * 0.01 + 0.81) / 10)


def test_accuracy_compares_predicted_class_with_label():
    m = binary_metrics([0.9, 0.2, 0.3, 0.45, 0.6], [1, 1, 1, 1, 0])
    assert m["direction_accuracy"] == pytest.approx(0.2)
    assert m["balanced_accuracy"] == pytest.approx((1 / 4 + 0 / 1) / 2)
    assert binary_metrics([0.5, 0.2], [1, 0])["direction_accuracy"] == 1.0  # p >= 0.5 is the positive class


def test_agrees_with_sklearn_on_random_arrays():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(int)
    probs = np.clip(0.3 + 0.2 * (labels - 0.3) + 0.2 * rng.standard_normal(500), 0, 1)
    m = binary_metrics(probs, labels)
    pred = (probs >= 0.5).astype(int)
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, probs))
    assert m["ap"] == pytest.approx(average_precision_score(labels, probs))
    assert m["brier"] == pytest.approx(brier_score_loss(labels, probs))
    assert m["direction_accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))


def test_single_class_labels_leave_ranking_metrics_undefined():
    m = binary_metrics([0.9, 0.2, 0.3], [1, 1, 1])
    assert np.isnan(m["auroc"]) and m["ap"] == pytest.approx(1.0)
    assert m["direction_accuracy"] == pytest.approx(1 / 3) and m["balanced_accuracy"] == pytest.approx(1 / 3)
    m = binary_metrics([0.9, 0.2], [0, 0])
    assert np.isnan(m["auroc"]) and np.isnan(m["ap"]) and m["balanced_accuracy"] == pytest.approx(0.5)


def test_collection_prefix_and_torch_inputs():
    metrics = binary_metric_collection(prefix="val/")
    metrics.update(torch.tensor([0.2, 0.7]), torch.tensor([0, 1]))
    assert set(metrics.compute()) == {"val/auroc", "val/ap", "val/brier", "val/direction_accuracy",
                                      "val/balanced_accuracy"}
    assert binary_metrics(torch.tensor([0.2, 0.7]), torch.tensor([0, 1]))["auroc"] == 1.0


def test_rejects_non_probabilities_and_bad_labels():
    with pytest.raises(ValueError, match="probabilities"):
        binary_metrics([1.5, -0.2], [1, 0])  # e.g. logits or returns judged as probabilities
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([0.5, 0.2], [2, 0])
    with pytest.raises(ValueError, match="equally long"):
        binary_metrics([0.5, 0.2], [1])
