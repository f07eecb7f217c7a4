"""MLflow side of a run: the run context, batched per-epoch metrics, the dataset input, artifacts."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import mlflow
import pytorch_lightning as pl
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from training.config import RunConfig

EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "direction")


def set_experiment() -> None:
    """Our experiment, unless `mlflow run` handed this process its run (MLFLOW_RUN_ID): the first
    `start_run` then resumes that run, in the experiment `mlflow run` chose."""
    if "MLFLOW_RUN_ID" not in os.environ:
        mlflow.set_experiment(EXPERIMENT)


@contextlib.contextmanager
def run_context(
    *, kind: str, run_name: str | None = None, tags: dict | None = None, parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Log into the active run when the caller owns one (an HPO trial, tagged by its owner); otherwise
    open a run of this `kind` and own it.

    An owned run ends FINISHED, FAILED on an exception, KILLED on Ctrl-C: never left RUNNING.
    """
    active = mlflow.active_run()
    if active is not None and parent_run_id is None:
        mlflow.set_tags(tags or {})
        yield active
        return
    set_experiment()
    run = mlflow.start_run(
        run_name=run_name, nested=parent_run_id is not None or active is not None,
        parent_run_id=parent_run_id, tags={"kind": kind, **(tags or {})},
    )
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit) as err:  # Lightning turns Ctrl-C in `fit` into sys.exit(1)
        status = "KILLED"
        raise KeyboardInterrupt from err
    finally:
        mlflow.end_run(status)


def log_config(cfg: RunConfig, extra: dict[str, object] | None = None) -> None:
    params = {**cfg.to_params(), **{k: str(v) for k, v in (extra or {}).items()}}
    mlflow.log_params(params)
    mlflow.log_text(cfg.to_json(), "config.json")


def log_dataset(*, source_path: str, name: str, digest: str, tags: dict[str, str]) -> None:
    """Record the data a run saw as an MLflow input: its source file, fingerprint, tier and dates."""
    dataset = MetaDataset(LocalArtifactDatasetSource(source_path), name=name, digest=digest[:36])
    mlflow.log_input(dataset, context="training", tags=tags)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """One batched call for many metrics (each separate call costs ~6 ms on sqlite)."""
    run = mlflow.active_run()
    now = int(time.time() * 1000)
    MlflowClient().log_batch(
        run.info.run_id, metrics=[Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    )


class EpochLogger(pl.Callback):
    """Logs every `train/` and `val/` metric once per epoch, in one batched MLflow call."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.client = MlflowClient()
        self.seconds = 0.0  # time spent in MLflow, for the logging-share benchmark

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        start = time.perf_counter()
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, trainer.current_epoch)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("train/", "val/"))
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        self.seconds += time.perf_counter() - start
