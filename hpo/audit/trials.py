"""What the audit reads: a study from its Optuna storage, and each trial with what its MLflow run holds
(final metrics, per-epoch curves, a part of its val predictions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from conventions.errors import UserError
from hpo.trial_record import TrialRecord

HISTORY = ("train/loss", "val/loss", "val/auroc")


@dataclass
class TrialData:
    """One trial with what its MLflow run holds (None when it has no run or the run is gone)."""

    trial: object  # optuna.trial.FrozenTrial
    run: object | None = None  # mlflow.entities.Run
    history: dict[str, list[float]] = field(default_factory=dict)  # per epoch, in step order

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def record(self) -> TrialRecord:
        return TrialRecord.of(self.trial)

    @property
    def run_id(self) -> str | None:
        return self.record.mlflow_run_id

    @property
    def horizon(self) -> int:
        if self.run is not None and "data.horizon" in self.run.data.params:
            return int(self.run.data.params["data.horizon"])
        return 1

    def metric(self, key: str) -> float | None:
        evidence = self.record.evidence or {}
        if key in evidence:
            return float(evidence[key])
        if self.run is not None and key in self.run.data.metrics:
            return float(self.run.data.metrics[key])
        return None

    def predictions(self, stage: str) -> pd.DataFrame | None:
        """The rows of one val part (`val_select` or `val_report`: the file's `part` is `select` or `report`)
        of the run's `predictions/val.parquet` (date index: label, probability, and `fold`, 1 .. K for a
        walk-forward trial, 1 for a one-split one), or None."""
        if not self.run_id:
            return None
        from mlflow.exceptions import MlflowException

        from training.train import PARTS, val_predictions

        try:
            frame = val_predictions(self.run_id)
        except (MlflowException, OSError):
            return None
        frame = frame[frame["part"] == PARTS[stage]] if "part" in frame else frame
        return frame[["label", "probability"]].assign(fold=frame.get("fold", 1))

    def train_labels(self) -> list | None:
        """Each fold's train labels of the run's data (one for a one-split trial: what sets the bootstrap's and
        the null's block length, see `models.intervals.block_length`), or None when the run holds no data
        config or its data cannot be read."""
        if self.run is None or "data.tier" not in self.run.data.params:
            return None
        from datamodules.prepared import prepare
        from training.config import ConfigError, RunConfig

        try:
            prepared = prepare(RunConfig.from_params(self.run.data.params).data)
        except (ConfigError, UserError):
            return None
        return [prepared.fold(k).labels("train") for k in range(len(prepared.folds))]


def by_fold(frame: pd.DataFrame, column: str) -> list:
    """`frame[column]` as one float array per fold, in fold order (`TrialData.predictions`)."""
    return [g[column].to_numpy(dtype=float) for _, g in frame.groupby("fold", sort=True)]


def load_study(name: str, storage: str | None):
    """The study, or a `UserError` naming the studies the storage holds."""
    import optuna

    from hpo.settings import DEFAULT_STORAGE
    from hpo.storage import open_storage

    url = storage or DEFAULT_STORAGE
    if "://" not in url and not Path(url).is_file():
        raise UserError(f"no study storage at {url}: pass the study's --storage (default ./{DEFAULT_STORAGE})")
    store, shown = open_storage(url)
    names = sorted(s.study_name for s in store.get_all_studies())
    if name not in names:
        known = f"studies there: {', '.join(names)}" if names else "it holds no study"
        raise UserError(f"no study {name!r} in {shown}; {known}")
    return optuna.load_study(study_name=name, storage=store), shown


def collect(study) -> tuple[list[TrialData], str | None]:
    """Every trial with its MLflow run and per-epoch curves (`_curves_run`); the study's parent run id (None:
    none)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from hpo.study_record import StudyRecord

    client = MlflowClient()
    parent_id = StudyRecord.of(study).mlflow_parent_run_id
    if parent_id is not None:
        try:
            if client.get_run(parent_id).info.lifecycle_stage == "deleted":  # a deleted run still reads back
                parent_id = None
        except MlflowException:
            parent_id = None  # the run was purged, or lives in another tracking store
    out = []
    for trial in study.get_trials(deepcopy=False):
        data = TrialData(trial)
        run_id = data.run_id
        if run_id:
            try:
                data.run = client.get_run(run_id)
            except MlflowException:
                data.run = None
        if data.run is not None:
            curves = _curves_run(client, data.run)
            for key in HISTORY:
                history = sorted(client.get_metric_history(curves, key), key=lambda m: (m.step, m.timestamp))
                data.history[key] = [float(m.value) for m in history]
        out.append(data)
    return out, parent_id


def _curves_run(client, run) -> str:
    """The run whose per-epoch curves stand for a trial's: its own, or for a walk-forward trial (tag `folds`
    K > 1) its last fold's run (the layout a promotion trains on), when that fold ran."""
    k = run.data.tags.get("folds", "1")
    if k == "1":
        return run.info.run_id
    last = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}' and "
                              f"tags.fold = '{k}'", max_results=1)
    return last[0].info.run_id if last else run.info.run_id


def scored(trials: list[TrialData]) -> list[TrialData]:
    """The counted trials (`hpo.parent.counted`) with a finite objective: those the checks rank."""
    from hpo.parent import counted

    keep = {t.number for t in counted([d.trial for d in trials])}
    return [d for d in trials if d.number in keep and d.trial.value is not None and math.isfinite(d.trial.value)]
