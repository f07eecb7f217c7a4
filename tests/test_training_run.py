"""One tracked training run end to end on the embedded data: real Lightning, real MLflow (temp sqlite)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from training.config import RunConfig
from training.train import train

PER_EPOCH = ["train/loss", "val/loss", "val/auroc", "val/ap", "val/brier",
             "val/direction_accuracy", "val/balanced_accuracy"]


@pytest.fixture
def trained(tiny_config):
    return train(tiny_config, progress=False)


def test_run_records_params_metrics_tags_and_artifacts(trained, tiny_config):
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kind"] == "train"

    params = run.data.params
    assert params == {**tiny_config.to_params(), "params.count": str(trained.params_count)}
    assert RunConfig.from_params(params) == tiny_config

    for key in PER_EPOCH:
        history = client.get_metric_history(trained.run_id, key)
        assert [m.step for m in history] == list(range(trained.epochs)), key
    for name in ("majority", "volatility"):
        for metric in ("auroc", "ap", "brier", "direction_accuracy", "balanced_accuracy"):
            assert f"baseline/{name}/val/{metric}" in run.data.metrics
    assert run.data.metrics["baseline/majority/val/auroc"] == 0.5

    # the kept checkpoint is the best epoch: re-evaluating it reproduces that epoch's logged val AUROC
    aurocs = [m.value for m in client.get_metric_history(trained.run_id, "val/auroc")]
    assert trained.best_epoch == int(np.argmax(aurocs))
    assert run.data.metrics["best/val/auroc"] == pytest.approx(max(aurocs), abs=1e-6)
    lo, hi = run.data.metrics["best/val/auroc_ci_low"], run.data.metrics["best/val/auroc_ci_high"]
    assert lo < run.data.metrics["best/val/auroc"] < hi

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
