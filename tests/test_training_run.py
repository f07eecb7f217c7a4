"""One tracked training run end to end on the embedded data: real Lightning, real MLflow (temp sqlite)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from models import baselines
from models.classifier import DECAYED
from tests.conftest import shared, tiny, use_store
from training.config import RunConfig
from training.train import train

PER_EPOCH = ["train/loss", "val/loss", "val/auroc", "val/ap", "val/brier",
             "val/direction_accuracy", "val/balanced_accuracy"]


@pytest.fixture(scope="module")
def trained_once(module_store):
    with shared(module_store):
        return train(tiny(), progress=False)


@pytest.fixture
def trained(trained_once, module_store, monkeypatch):
    """One tiny run per module, in the module's store."""
    use_store(monkeypatch, module_store)
    return trained_once


def test_run_records_params_metrics_tags_and_artifacts(trained, tiny_config):
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kind"] == "train"

    params = run.data.params
    assert {k: v for k, v in params.items() if not k.startswith("ci.")} == {
        **tiny_config.to_params(), "params.count": str(trained.params_count),
        "optimizer.weight_decay_applies_to": DECAYED}
    assert RunConfig.from_params(params) == tiny_config

    for key in PER_EPOCH:
        history = client.get_metric_history(trained.run_id, key)
        assert [m.step for m in history] == list(range(trained.epochs)), key
    m = run.data.metrics
    for name in ("majority", "volatility", "logistic", "boosting"):
        for metric in ("auroc", "ap", "brier", "direction_accuracy", "balanced_accuracy", "brier_calibrated",
                       "auroc_ci_low", "auroc_ci_high"):
            assert f"baseline/{name}/val/{metric}" in m
        assert m[f"best/val/auroc_vs_{name}_ci_low"] < m[f"best/val/auroc_vs_{name}_ci_high"] or name == "majority"
    assert m["baseline/majority/val/auroc"] == 0.5
    best_baseline = run.data.tags["best_baseline"]
    assert best_baseline == baselines.choose(trained.data, tiny_config.train.seed)  # on val_select, not val_report
    assert m["baseline/best/val/auroc"] == m[f"baseline/{best_baseline}/val/auroc"]
    assert (m["best/val/auroc_vs_best_baseline_ci_low"], m["best/val/auroc_vs_best_baseline_ci_high"]) == (
        m[f"best/val/auroc_vs_{best_baseline}_ci_low"], m[f"best/val/auroc_vs_{best_baseline}_ci_high"])
    assert run.data.params["ci.method"] == "stationary-block-t" and int(run.data.params["ci.block_length"]) >= 1

    # the epoch is chosen on the selection part of val; the run's val numbers come from the report part,
    # and the predictions artifact reproduces them
    aurocs = [x.value for x in client.get_metric_history(trained.run_id, "val/auroc")]
    assert trained.best_epoch == int(np.argmax(aurocs))
    table = pd.read_parquet(client.download_artifacts(trained.run_id, "predictions/val.parquet"))
    assert list(table.columns) == ["date", "label", "probability", "probability_calibrated", "part"]
    select, report = table[table.part == "select"], table[table.part == "report"]
    assert select.date.max() < report.date.min() and select.probability_calibrated.isna().all()
    assert m["best/val/auroc"] == pytest.approx(roc_auc_score(report.label, report.probability), abs=1e-6)
    assert m["best/val/auroc"] != pytest.approx(max(aurocs), abs=1e-6)  # not the number that chose the epoch
    assert m["best/val/brier"] == pytest.approx(((report.probability - report.label) ** 2).mean(), abs=1e-6)
    assert m["best/val/brier_calibrated"] == pytest.approx(
        ((report.probability_calibrated - report.label) ** 2).mean(), abs=1e-6)
    lo, hi = m["best/val/auroc_ci_low"], m["best/val/auroc_ci_high"]
    assert lo < m["best/val/auroc"] < hi

    artifacts = {a.path for a in client.list_artifacts(trained.run_id)}
    artifacts |= {a.path for d in ("plots", "checkpoints") for a in client.list_artifacts(trained.run_id, d)}
    assert {"config.json", "features.json", "checkpoints/best.ckpt",
            "plots/val_roc.png", "plots/val_calibration.png"} <= artifacts
    config_path = client.download_artifacts(trained.run_id, "config.json")
    assert RunConfig.load(config_path) == tiny_config
    features = json.loads(Path(client.download_artifacts(trained.run_id, "features.json")).read_text())
    assert len(features["features"]) == 20

    (dataset_input,) = run.inputs.dataset_inputs
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags["tier"] == "a20" and tags["train_dates"].startswith("19")

    state = torch.load(client.download_artifacts(trained.run_id, "checkpoints/best.ckpt"), weights_only=True)
    assert state["epoch"] == trained.best_epoch


def test_same_seed_same_metrics(trained, tiny_config):
    again = train(tiny_config, progress=False)
    assert again.run_id != trained.run_id
    assert again.metrics == trained.metrics
    other = train(tiny_config.override({"train.seed": 7}), progress=False)
    assert other.metrics["best/val/auroc"] != trained.metrics["best/val/auroc"]
