"""Evaluation beside every baseline: names, best baseline, paired block intervals, calibration, and the
baselines against a direct scikit-learn computation on the same rows of the embedded data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from datamodules.config import DataConfig
from datamodules.prepared import prepare
from models import baselines
from models.intervals import Setting, rank_auroc
from training.evaluate import MODEL, calibration_figure, evaluate


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.2).astype(np.float64)
    probs = np.round(np.clip(0.2 + 0.3 * labels + rng.normal(0, 0.2, 400), 0, 1), 2)  # rounding makes ties
    return labels, probs


def test_evaluate_names_every_number_and_pairs_the_model_with_the_best_baseline(scored):
    labels, probs = scored
    rng = np.random.default_rng(1)
    scores = {"noise": rng.random(400), "weak": np.clip(probs + rng.normal(0, 0.3, 400), 0, 1),
                 "copy": probs.copy()}
    dates = pd.bdate_range("2020-01-01", periods=400)
    ev = evaluate("val", labels, dates, probs, scores, best_baseline="copy", setting=Setting(3, labels, 0))
    m = ev.metrics
    assert ev.best_baseline == "copy" and m["baseline/best/val/auroc"] == m["baseline/copy/val/auroc"]
    assert m["val/auroc"] == pytest.approx(rank_auroc(labels, probs), abs=1e-6)
    assert (m["val/auroc_vs_copy_ci_low"], m["val/auroc_vs_copy_ci_high"]) == (0.0, 0.0)  # paired resamples
    assert m["val/auroc_vs_noise_ci_low"] > 0 and "not distinguishable" in ev.verdict()
    assert m["val/auroc_ci_low"] < m["val/auroc"] < m["val/auroc_ci_high"]
    assert ev.intervals.block >= 3 and ev.ci_params["ci.method"] == "stationary-block-t"
    table = ev.predictions()
    assert list(table.columns) == ["date", "label", "probability", "probability_calibrated"]
    np.testing.assert_array_equal(table.probability, probs)
    np.testing.assert_array_equal(table.probability_calibrated, ev.calibrated[MODEL])


def test_calibrated_probabilities_repair_an_overconfident_model():
    rng = np.random.default_rng(2)
    true_p = rng.uniform(0.05, 0.6, 3000)
    labels = (rng.random(3000) < true_p).astype(float)
    z = np.log(true_p / (1 - true_p))
    overconfident = 1 / (1 + np.exp(-(3 * z + 1.5)))
    ev = evaluate("val", labels, pd.bdate_range("2000-01-03", periods=3000), overconfident,
                  {"majority": np.full(3000, labels.mean())}, best_baseline="majority", setting=Setting(1, labels))
    assert ev.metrics["val/brier_calibrated"] < ev.metrics["val/brier"] - 0.01
    assert ev.metrics["val/auroc"] == pytest.approx(rank_auroc(labels, overconfident), abs=1e-6)  # raw scores


def test_baselines_equal_a_direct_scikit_learn_fit_on_train_rows(tmp_path):
    prepared = prepare(DataConfig(tier="a20", input_size=32), str(tmp_path))
    scores = baselines.scores(prepared, "val_report", seed=3)
    train_x, train_y = prepared.features[prepared.ends["train"]], prepared.y[prepared.ends["train"]]
    eval_x = prepared.features[prepared.ends["val_report"]]
    logistic = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)).fit(train_x, train_y)
    np.testing.assert_allclose(scores["logistic"], logistic.predict_proba(eval_x)[:, 1], rtol=1e-6)
    boosting = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                              l2_regularization=1.0, min_samples_leaf=20, early_stopping=False,
                                              random_state=3).fit(train_x, train_y)
    np.testing.assert_allclose(scores["boosting"], boosting.predict_proba(eval_x)[:, 1], rtol=1e-6)
    np.testing.assert_allclose(scores["majority"], train_y.mean())
    assert baselines.scores(prepared, "val_report", seed=3) is scores  # fit once per prepared data and seed


def test_the_best_baseline_is_chosen_without_the_report_labels(tmp_path):
    """Chosen on val_select (the highest AUROC there), so scrambling the labels it is compared on leaves it."""
    prepared = prepare(DataConfig(tier="a20", input_size=32), str(tmp_path))
    select = prepared.labels("val_select")
    expected = max(baselines.BASELINES,
                   key=lambda n: rank_auroc(select, baselines.scores(prepared, "val_select", 0)[n]))
    chosen = baselines.choose(prepared, 0)
    assert chosen == expected
    report = prepared.ends["val_report"]
    saved = prepared.y[report].copy()
    try:
        for seed in range(3):
            prepared.y[report] = np.random.default_rng(seed).permutation(saved)
            assert baselines.choose(prepared, 0) == chosen
    finally:
        prepared.y[report] = saved


def test_calibration_bins_are_equal_count_means(scored):
    labels, probs = scored
    fig = calibration_figure(labels, {"raw": probs}, "t", bins=4)
    line = fig.axes[0].get_lines()[0]
    groups = np.array_split(np.argsort(probs, kind="stable"), 4)
    np.testing.assert_allclose(line.get_xdata(), [probs[g].mean() for g in groups])
    np.testing.assert_allclose(line.get_ydata(), [labels[g].mean() for g in groups])
