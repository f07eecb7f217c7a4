"""The evaluation statistics against reference computations."""

import numpy as np
import pytest

from models.metrics import binary_metrics
from training.evaluate import bootstrap_auroc, calibration_figure, rank_auroc


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.2).astype(np.float64)
    probs = np.round(np.clip(0.2 + 0.3 * labels + rng.normal(0, 0.2, 400), 0, 1), 2)  # rounding makes ties
    return labels, probs


def test_rank_auroc_equals_torchmetrics_with_ties(scored):
    labels, probs = scored
    assert rank_auroc(labels, probs) == pytest.approx(binary_metrics(probs, labels)["auroc"], abs=1e-6)
    assert rank_auroc(labels, np.full_like(probs, 0.3)) == pytest.approx(0.5)


def test_bootstrap_intervals_hold_the_estimate_and_pair_the_resamples(scored):
    labels, probs = scored
    ci = bootstrap_auroc(labels, {"base": probs, "same": probs.copy(), "noise": np.random.default_rng(1).random(400)})
    low, high = ci["base"]
    assert low < rank_auroc(labels, probs) < high
    assert ci["same"] == ci["base"]
    assert ci["same-base"] == (0.0, 0.0)  # paired resamples: an identical scorer differs by exactly 0
    assert ci["noise-base"][1] < 0
    assert bootstrap_auroc(labels, {"base": probs}, seed=3) == bootstrap_auroc(labels, {"base": probs}, seed=3)


def test_calibration_bins_are_equal_count_means(scored):
    labels, probs = scored
    fig = calibration_figure(labels, probs, "t", bins=4)
    line = fig.axes[0].get_lines()[-1]
    order = np.argsort(probs, kind="stable")
    groups = np.array_split(order, 4)
    np.testing.assert_allclose(line.get_xdata(), [probs[g].mean() for g in groups])
    np.testing.assert_allclose(line.get_ydata(), [labels[g].mean() for g in groups])
