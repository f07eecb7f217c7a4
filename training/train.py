"""One tracked training run: `train(cfg) -> RunResult`. The HPO objective calls this same function."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from datamodules.datamodule import TierDataModule
from datamodules.prepared import Prepared
from models import baselines
from models.classifier import DECAYED, DirectionClassifier, build_classifier
from models.intervals import SAYS, Setting, rank_auroc, verdict
from training import notes, tracking
from training.config import RunConfig
from training.evaluate import Evaluation, evaluate, figures, predict_probs

MONITOR = "val/auroc"  # per epoch on SELECT: early stopping, the checkpoint and pruning read it
SELECT = "val_select"  # the part of val that chooses (datamodules.prepared.VAL_PARTS): the epoch, and a study's trial
REPORT = "val_report"  # the part of val a run's `best/val/*` metrics are measured on: it chooses nothing
OBJECTIVE = "best/val_select/auroc"  # MONITOR at the checkpoint's epoch: what a study optimises (its trials' values)
VAL_PREDICTIONS = "predictions/val.parquet"  # the best checkpoint on both parts of val
PARTS = {SELECT: "select", REPORT: "report"}  # their `part` in VAL_PREDICTIONS
# what a reader needs beside a run's val AUROC: its interval, the best baseline, their paired difference
EVIDENCE = ("best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high", "baseline/best/val/auroc",
            "best/val/auroc_vs_best_baseline_ci_low", "best/val/auroc_vs_best_baseline_ci_high")
# emitted by Lightning's own internals once per fit under torch 2.13; nothing a user can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def on_report(metrics: dict[str, float]) -> dict[str, float]:
    """An evaluation's metrics (`training.evaluate.evaluate`, stage `val`, on REPORT) under the names that
    mean REPORT in every run kind: the model's `val/*` as `best/val/*` (`val/*` is the per-epoch MONITOR on
    SELECT); the baselines' `baseline/*/val/*` keep their names (on REPORT everywhere)."""
    return {(f"best/{k}" if k.startswith("val/") else k): v for k, v in metrics.items()}


def evidence_line(m: dict[str, float], best_baseline: str, *, one_of: str | None = None) -> str:
    """`EVIDENCE` in one line, with whether the model beat the best baseline; `one_of`: the family the verdict
    belongs to when it is one of many and not corrected for them (a study's trials): said, never a finding."""
    low, high = m["best/val/auroc_vs_best_baseline_ci_low"], m["best/val/auroc_vs_best_baseline_ci_high"]
    return (f"best/val/auroc {m['best/val/auroc']:.4f} [95% CI {m['best/val/auroc_ci_low']:.4f}, "
            f"{m['best/val/auroc_ci_high']:.4f}]; best baseline {best_baseline} {m['baseline/best/val/auroc']:.4f}; "
            f"model minus it [{low:+.4f}, {high:+.4f}]: the model {SAYS[verdict(low, high)]} it"
            + (f" (uncorrected: one of {one_of}, not a finding)" if one_of else ""))


@dataclass
class RunResult:
    run_id: str
    config: RunConfig
    # best checkpoint: OBJECTIVE; on REPORT `best/val/...` beside the baselines (`baseline/...`)
    metrics: dict[str, float]
    best_epoch: int
    epochs: int
    params_count: int
    checkpoint: str | None  # artifact URI of the best checkpoint (None: not logged)
    best_baseline: str  # the baseline with the highest AUROC on val_select (`models.baselines.choose`)
    model: DirectionClassifier  # at its best checkpoint, in eval mode, on the device it trained on
    data: Prepared  # what it trained on
    mlflow_seconds: float  # time spent in per-epoch MLflow logging
    fit_seconds: float
    note: str  # the run's Markdown description (`notes.train_note`)
    predictions: pd.DataFrame  # VAL_PREDICTIONS as it logged them (`val_predictions` reads them back)

    @property
    def val_auroc(self) -> float:
        """The best checkpoint's AUROC on REPORT."""
        return self.metrics["best/val/auroc"]

    @property
    def objective(self) -> float:
        """OBJECTIVE: the checkpoint's monitored AUROC on SELECT, on which its epoch was chosen."""
        return self.metrics[OBJECTIVE]

    @property
    def fold_epochs(self) -> list[int]:
        """The epochs it trained, as a run over folds gives them (`training.walkforward`): one split, one entry."""
        return [self.epochs]


def build_datamodule(cfg: RunConfig, data: Prepared | None = None) -> TierDataModule:
    dm = TierDataModule(cfg.data, prepared=data)
    dm.setup("fit")
    return dm


def build_model(cfg: RunConfig, n_features: int) -> DirectionClassifier:
    t = cfg.train
    return build_classifier(cfg.model.name, n_features, cfg.data.input_size, loss=t.loss,
                            focal_gamma=t.focal_gamma, focal_alpha=t.focal_alpha, lr=t.lr,
                            weight_decay=t.weight_decay, **cfg.model.hp)


def build_trainer(cfg: RunConfig, dm: TierDataModule, *, callbacks: tuple[pl.Callback, ...] = (),
                  root_dir: str | None = None, progress: bool = False, validate: bool = True) -> pl.Trainer:
    """The Trainer of every fit (a run, a trial, a promotion seed, `bench.accelerator`) on `dm`, whose
    batches it then gathers on the Trainer's device: accelerator, precision (and the float32 matmul
    precision, set here for each fit), epochs, optimizer steps, clipping and gradient accumulation from
    `cfg.train`; no logger (runs log through `tracking.EpochLogger`), no sanity validation, checkpoints only
    by a `ModelCheckpoint` among `callbacks`. `train.max_steps` counts optimizer steps; when their batches
    are fewer than one epoch's, the epoch is cut to them, so that it still ends with a validation
    (`validate=False`: none)."""
    t = cfg.train
    torch.set_float32_matmul_precision(t.matmul_precision)
    batches = t.max_steps * t.accumulate_grad_batches
    batches_per_epoch = math.ceil(len(dm.dataset("train")) / dm.config.batch_size)
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=1, precision=t.precision, max_epochs=t.max_epochs,
        max_steps=t.max_steps, gradient_clip_val=t.grad_clip or None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        callbacks=list(callbacks), limit_train_batches=batches if 0 < batches < batches_per_epoch else None,
        limit_val_batches=None if validate else 0, logger=False, default_root_dir=root_dir,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks), num_sanity_val_steps=0,
        enable_progress_bar=progress, enable_model_summary=progress,
    )
    dm.device = trainer.strategy.root_device  # batches are gathered there (device-resident on a GPU)
    return trainer


def train(
    cfg: RunConfig, *, callbacks: tuple[pl.Callback, ...] = (), tags: dict[str, str] | None = None,
    parent_run_id: str | None = None, progress: bool = True, plots: bool = True, log_checkpoint: bool = True,
    run_name: str | None = None, data: Prepared | None = None,
    finished_on: tuple[type[BaseException], ...] = (),
) -> RunResult:
    """Fit with early stopping on val AUROC, keep the best checkpoint, evaluate it on val beside the
    baselines, and log everything to MLflow. The test split is not touched.

    Logs into the active MLflow run when the caller owns one (an HPO trial); otherwise opens a run of
    kind `train` (nested under `parent_run_id` when given). Every user mistake (config, data, tracking
    store) raises `UserError` before any run is opened. `plots` and `log_checkpoint`: HPO trials leave them
    out (the study's parent holds the plots; promotion retrains from the config). `data`: what to train on
    instead of `prepare(cfg.data)` (a walk-forward fold's view, `Prepared.fold`). `finished_on`: exceptions
    that end the run it opens FINISHED (a pruned trial's fold, `tracking.ending`).

    Speed over bit-exactness is the user's choice: `train.precision` (`--precision bf16-mixed` or
    `16-mixed`: Lightning's autocast) and `train.matmul_precision=high` (`--set`; TF32 float32 matmuls on
    GPUs that have it, via `torch.set_float32_matmul_precision`, set for each run); both are logged params.
    On an accelerator the data stay on the device (`TierDataModule.device`) and the best checkpoint is
    evaluated there.
    """
    if not progress:
        logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    cfg.check()
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg, data)
    tracking.experiment_id()  # a store that cannot be used fails here, before a run is opened
    model = build_model(cfg, dm.n_features)
    n_params = sum(p.numel() for p in model.parameters())
    name = run_name or f"{cfg.model.name}-{cfg.data.tier}-L{cfg.data.input_size}"

    with tracking.run_context(kind="train", run_name=name, tags=tags, parent_run_id=parent_run_id,
                              finished_on=finished_on) as run, \
            tempfile.TemporaryDirectory(prefix="ckpt-") as ckpt_dir:
        run_id = run.info.run_id
        _log_inputs(run_id, cfg, dm, n_params)

        fit = _fit(cfg, dm, model, run_id, ckpt_dir, callbacks, progress)
        ev, predictions = _evaluate_val(model, dm, cfg, plots)
        metrics = on_report(ev.metrics)
        metrics["best/epoch"] = fit.best_epoch
        metrics[OBJECTIVE] = fit.best_score
        # the same checkpoint on its own training samples: the audit's overfitting gap
        metrics["best/train/auroc"] = rank_auroc(dm.labels("train"), predict_probs(model, dm.eval_loader("train")))
        note = notes.train_note(cfg, metrics, ev.best_baseline, fit.best_epoch, fit.epochs)
        tracking.log_batch(run_id, metrics, params=ev.ci_params,
                           tags={"best_baseline": ev.best_baseline, notes.NOTE: note})
        if log_checkpoint:
            mlflow.log_artifact(fit.best_path, "checkpoints")
        return RunResult(
            run_id=run_id, config=cfg, metrics=metrics, best_epoch=fit.best_epoch, epochs=fit.epochs,
            params_count=n_params,
            checkpoint=mlflow.get_artifact_uri("checkpoints/best.ckpt") if log_checkpoint else None,
            best_baseline=ev.best_baseline, mlflow_seconds=fit.mlflow_seconds, fit_seconds=fit.fit_seconds,
            model=model, data=dm.prepared, note=note, predictions=predictions,
        )


@dataclass(frozen=True)
class _Fit:
    epochs: int  # trained
    best_epoch: int  # the checkpoint's (0-based)
    best_score: float  # MONITOR at it
    best_path: str  # the checkpoint file
    mlflow_seconds: float
    fit_seconds: float


def _fit(cfg: RunConfig, dm: TierDataModule, model: DirectionClassifier, run_id: str, ckpt_dir: str,
         callbacks: tuple[pl.Callback, ...], progress: bool) -> _Fit:
    """Lightning's fit with early stopping, the best checkpoint on MONITOR and per-epoch logging; `model` left
    at its best checkpoint, in eval mode, on the device it trained on."""
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=MONITOR, mode="max",
                                 save_top_k=1, save_weights_only=True)
    epoch_logger = tracking.EpochLogger(run_id)
    trainer = build_trainer(
        cfg, dm, root_dir=ckpt_dir, progress=progress,
        callbacks=(checkpoint, EarlyStopping(MONITOR, mode="max", patience=cfg.train.patience), epoch_logger,
                   *callbacks))
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_seconds = time.perf_counter() - start
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    model.load_state_dict(best["state_dict"])
    model.eval()
    model.to(trainer.strategy.root_device)  # evaluated where it trained (fit's teardown moved it to the CPU)
    return _Fit(trainer.current_epoch, int(best["epoch"]), float(checkpoint.best_model_score),
                checkpoint.best_model_path, epoch_logger.seconds, fit_seconds)


def _log_inputs(run_id: str, cfg: RunConfig, dm: TierDataModule, n_params: int) -> None:
    """What a run trains: its config and parameter count, its dataset (MLflow's input, with each split's dates),
    the rows its config is chosen on (`data.seen_*`: what promotion checks its data against), its features."""
    tracking.log_config(cfg, extra={"params.count": n_params, "optimizer.weight_decay_applies_to": DECAYED})
    tracking.log_dataset(
        source_path=dm.source, name=f"{cfg.data.tier}:{Path(dm.source).name}", digest=dm.fingerprint,
        tags={"tier": cfg.data.tier, "fingerprint": dm.data_fingerprint,
              **{f"{s}_dates": "{} .. {}".format(*dm.date_range[s]) for s in ("train", "val", "test")},
              **dm.prepared.seen.tags()},
    )
    tracking.log_batch(run_id, tags=dm.prepared.seen.tags())
    mlflow.log_dict({"tier": cfg.data.tier, "features": dm.feature_names}, "features.json")


def val_predictions(run_id: str) -> pd.DataFrame:
    """A run's VAL_PREDICTIONS indexed by date: label, probability and `part` (PARTS; absent from a run made
    before val was split)."""
    frame = tracking.read_frame(run_id, VAL_PREDICTIONS)
    return frame.set_index(pd.DatetimeIndex(frame["date"]))


def _evaluate_val(model: DirectionClassifier, dm: TierDataModule, cfg: RunConfig,
                  plots: bool) -> tuple[Evaluation, pd.DataFrame]:
    """The best checkpoint on the report part of val beside the baselines, and VAL_PREDICTIONS as logged:
    both parts of val (`part`: select | report); the plots only where `plots`."""
    probs = predict_probs(model, dm.eval_loader(REPORT))
    seed = cfg.train.seed
    ev = evaluate("val", dm.labels(REPORT), dm.dates(REPORT), probs, baselines.scores(dm.prepared, REPORT, seed),
                  best_baseline=baselines.choose(dm.prepared, seed),
                  setting=Setting(cfg.data.horizon, dm.labels("train"), seed))
    select = pd.DataFrame({"date": dm.dates(SELECT), "label": dm.labels(SELECT).astype(np.int8),
                           "probability": predict_probs(model, dm.eval_loader(SELECT)),
                           "probability_calibrated": np.nan, "part": PARTS[SELECT]})
    predictions = pd.concat([select, ev.predictions().assign(part=PARTS[REPORT])], ignore_index=True)
    tracking.log_frame(predictions, VAL_PREDICTIONS)
    if plots:
        for path, figure in figures(ev, "validation").items():
            mlflow.log_figure(figure, path)
    return ev, predictions
