"""Runs over walk-forward folds (`data.folds` K > 1, `datamodules.folds`): `run_folds(cfg)`.

One parent run (kind `walk-forward`) with one nested training run per fold: `train` on that fold's data
(`Prepared.fold`), exactly a one-split run on the fold's layout (its own scaler, baselines and calibration fit
on the fold's train rows, its epoch chosen on the fold's select part, its numbers on the fold's report part).
The parent holds each fold's report AUROC with its interval and its best baseline (`fold/<k>/...`), and across
the folds the mean report AUROC with a studentized block-bootstrap interval that resamples within each fold
(`models.intervals.FoldBootstrap`), every baseline's mean on the same resamples, the best baseline (the highest
mean AUROC over the folds' select parts, on which the model's epochs were chosen too), the paired interval of
the model minus it, under a training run's names (`EVIDENCE`), and `predictions/val.parquet` of every fold
(column `fold`) and the per-fold plot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
import pytorch_lightning as pl
from matplotlib.figure import Figure

from datamodules.prepared import Prepared, prepare
from models import baselines
from models.baselines import BASELINES
from models.intervals import FoldBootstrap, best_of, rank_auroc, verdict
from training import notes, plotting, tracking
from training.config import RunConfig
from training.evaluate import N_BOOT
from training.train import (
    OBJECTIVE,
    PARTS,
    REPORT,
    SELECT,
    VAL_PREDICTIONS,
    RunResult,
    train,
)

KIND = "walk-forward"
PLOT = "plots/val_auroc_by_fold.png"


@dataclass(frozen=True)
class FoldRun:
    """One fold's training run, as the parent reads it."""

    fold: int  # 1 .. K
    run_id: str
    best_epoch: int
    epochs: int
    best_baseline: str
    metrics: dict[str, float]  # the fold run's (`RunResult.metrics`)
    report_dates: tuple[str, str]  # first and last date of its report part

    @classmethod
    def of(cls, fold: int, result: RunResult) -> FoldRun:
        return cls(fold, result.run_id, result.best_epoch, result.epochs, result.best_baseline, result.metrics,
                   result.data.date_range(REPORT))

    def baseline(self) -> plotting.Baseline:
        b = f"baseline/{self.best_baseline}/val/auroc"
        m = self.metrics
        return plotting.Baseline(self.best_baseline,
                                 plotting.Estimate(m[b], m[f"{b}_ci_low"], m[f"{b}_ci_high"]))


@dataclass
class WalkForwardResult:
    run_id: str  # the parent run
    config: RunConfig
    folds: list[FoldRun]
    metrics: dict[str, float]  # the parent's: per fold `fold/<k>/...`, across folds a training run's names
    best_baseline: str  # across folds, chosen on their select parts
    note: str  # the parent's Markdown description (`notes.folds_note`)

    @property
    def objective(self) -> float:
        """OBJECTIVE over folds: the mean of each fold's AUROC on its select part at its chosen epoch."""
        return self.metrics[OBJECTIVE]

    @property
    def val_auroc(self) -> float:
        """The mean over folds of each fold's report AUROC."""
        return self.metrics["best/val/auroc"]

    @property
    def fold_epochs(self) -> list[int]:
        return [f.epochs for f in self.folds]


def _no_callbacks(fold: int) -> tuple[pl.Callback, ...]:
    return ()


def run_folds(cfg: RunConfig, *, tags: dict[str, str] | None = None, progress: bool = True,
              data: Prepared | None = None, parent_run_id: str | None = None,
              callbacks: Callable[[int], tuple[pl.Callback, ...]] = _no_callbacks, plots: bool = True,
              log_checkpoint: bool = True, finished_on: tuple[type[BaseException], ...] = ()) -> WalkForwardResult:
    """Train one run per fold of `cfg.data` (nested under one parent run of kind `walk-forward`) and log the
    evidence across folds on the parent. Config, data and tracking store are checked before a run opens.

    As `train`: the parent is the active run when the caller owns one (an HPO trial), else a new run (nested
    under `parent_run_id` when given); `data` is `prepare(cfg.data)` when not given; `plots` and
    `log_checkpoint` are each fold run's; `callbacks(k)` are fold k's (0-based) Trainer callbacks (a trial's
    pruning); an exception in `finished_on` ends the fold run it stops FINISHED. The per-fold plot is always
    logged on the parent."""
    cfg.check()
    prepared = data or prepare(cfg.data)  # bad data fails here, before a run is opened
    tracking.experiment_id()
    k_folds = cfg.data.folds
    name = f"{cfg.model.name}-{cfg.data.tier}-L{cfg.data.input_size}"
    with tracking.run_context(kind=KIND, run_name=f"{name}-{k_folds}folds", parent_run_id=parent_run_id,
                              tags={"folds": str(k_folds), **prepared.seen.tags(), **(tags or {})}) as parent:
        parent_id = parent.info.run_id
        tracking.log_config(cfg)
        folds, frames = [], []
        for k in range(k_folds):
            result = train(cfg, tags={"fold": str(k + 1), "folds": str(k_folds)}, parent_run_id=parent_id,
                           progress=progress, run_name=f"{name}-fold{k + 1}of{k_folds}", data=prepared.fold(k),
                           callbacks=callbacks(k), plots=plots, log_checkpoint=log_checkpoint,
                           finished_on=finished_on)
            folds.append(FoldRun.of(k + 1, result))
            frames.append(result.predictions.assign(fold=k + 1))
        metrics, best, params = across_folds(prepared, cfg, folds, frames)
        links = [f"{notes.run_link(f'fold {f.fold}', parent.info.experiment_id, f.run_id)} {_numbers(f)}"
                 for f in folds]
        diff = (metrics[f"best/val/auroc_vs_best_baseline_ci_{end}"] for end in ("low", "high"))
        note = notes.folds_note(cfg, metrics, best, links)
        tags = {"best_baseline": best, "verdict": verdict(*diff), notes.NOTE: note}
        for f in folds:
            tags |= {f"fold/{f.fold}/best_baseline": f.best_baseline,
                     f"fold/{f.fold}/val_report_dates": " .. ".join(f.report_dates)}
        tracking.log_batch(parent_id, metrics, params=params, tags=tags)
        tracking.log_frame(pd.concat(frames, ignore_index=True), VAL_PREDICTIONS)
        mlflow.log_figure(figure(name, metrics, {**tags, "folds": str(k_folds)}), PLOT)
    return WalkForwardResult(parent_id, cfg, folds, metrics, best, note)


def fold_line(f: FoldRun) -> str:
    """One fold in one line: its report dates, AUROC and interval, its best baseline, epoch and run."""
    return f"fold {f.fold} {_numbers(f)}; run {f.run_id}"


def _numbers(f: FoldRun) -> str:
    m, b = f.metrics, f.baseline()
    return (f"(val_report {' .. '.join(f.report_dates)}): best/val/auroc {m['best/val/auroc']:.4f} [95% CI "
            f"{m['best/val/auroc_ci_low']:.4f}, {m['best/val/auroc_ci_high']:.4f}]; best baseline {b.name} "
            f"{b.auroc.value:.4f}; best epoch {f.best_epoch} of {f.epochs}")


def across_folds(prepared: Prepared, cfg: RunConfig, folds: list[FoldRun], frames: list[pd.DataFrame],
                 ) -> tuple[dict[str, float], str, dict[str, object]]:
    """(the parent's metrics, the best baseline across folds, the `ci.*` params): per fold, and across folds
    on one within-fold bootstrap (the model's report probabilities from each fold's predictions)."""
    seed, views = cfg.train.seed, [prepared.fold(f.fold - 1) for f in folds]
    boot = FoldBootstrap([v.labels(REPORT) for v in views], horizon=cfg.data.horizon,
                         histories=[v.labels("train") for v in views], n_boot=N_BOOT, seed=seed)
    model = boot.resample([f.loc[f["part"] == PARTS[REPORT], "probability"].to_numpy() for f in frames])
    base = {name: boot.resample([baselines.scores(v, REPORT, seed)[name] for v in views]) for name in BASELINES}
    select = {name: float(np.mean([rank_auroc(v.labels(SELECT), baselines.scores(v, SELECT, seed)[name])
                                   for v in views])) for name in BASELINES}
    best = best_of(select)  # as each fold's run chooses its own (`baselines.choose`), over all select parts
    metrics: dict[str, float] = {}
    for f in folds:
        m, b = f.metrics, f.baseline()
        metrics |= {f"fold/{f.fold}/val/auroc": m["best/val/auroc"], f"fold/{f.fold}/best_epoch": f.best_epoch,
                    f"fold/{f.fold}/val/auroc_ci_low": m["best/val/auroc_ci_low"],
                    f"fold/{f.fold}/val/auroc_ci_high": m["best/val/auroc_ci_high"],
                    f"fold/{f.fold}/val_select/auroc": m[OBJECTIVE],
                    f"fold/{f.fold}/baseline/best/val/auroc": b.auroc.value,
                    f"fold/{f.fold}/baseline/best/val/auroc_ci_low": b.auroc.low,
                    f"fold/{f.fold}/baseline/best/val/auroc_ci_high": b.auroc.high}
    metrics[OBJECTIVE] = float(np.mean([f.metrics[OBJECTIVE] for f in folds]))
    # each fold's checkpoint on its own training samples, the mean: beside the mean report AUROC, the audit's gap
    metrics["best/train/auroc"] = float(np.mean([f.metrics["best/train/auroc"] for f in folds]))
    for prefix, r in (("best/val", model), *((f"baseline/{n}/val", r) for n, r in base.items())):
        metrics[f"{prefix}/auroc"] = r.point
        metrics[f"{prefix}/auroc_ci_low"], metrics[f"{prefix}/auroc_ci_high"] = boot.interval(r)
    metrics |= {f"baseline/{n}/val_select/auroc": v for n, v in select.items()}
    metrics["baseline/best/val/auroc"] = metrics[f"baseline/{best}/val/auroc"]
    for name in [*BASELINES, "best_baseline"]:
        diff = boot.interval(model - base[best if name == "best_baseline" else name])
        metrics[f"best/val/auroc_vs_{name}_ci_low"], metrics[f"best/val/auroc_vs_{name}_ci_high"] = diff
    params = {"ci.method": boot.method, "ci.block_length": ",".join(map(str, boot.blocks)),
              "ci.level": boot.level, "ci.n_boot": N_BOOT}
    return metrics, best, params


def figure(name: str, metrics: dict[str, float], tags: dict[str, str]) -> Figure:
    """`PLOT` of a walk-forward run from its metrics and tags (`run_folds` logs them; a study's parent draws its
    best trial's): each fold's report AUROC with its interval beside its best baseline, the fold's report dates
    under it, and the mean over folds with its within-fold interval beside the best baseline's mean."""

    def estimate(prefix: str) -> plotting.Estimate:
        return plotting.Estimate(metrics[prefix], metrics[f"{prefix}_ci_low"], metrics[f"{prefix}_ci_high"])

    k_folds = int(tags["folds"])
    groups, estimates, baselines_ = [], [], []
    for k in range(1, k_folds + 1):
        start, end = tags[f"fold/{k}/val_report_dates"].split(" .. ")
        groups.append(f"fold {k}\n{start}\n{end}")
        estimates.append(estimate(f"fold/{k}/val/auroc"))
        baselines_.append(plotting.Baseline(tags[f"fold/{k}/best_baseline"],
                                            estimate(f"fold/{k}/baseline/best/val/auroc")))
    best = tags["best_baseline"]
    return plotting.groups_figure(f"{name}: val_report AUROC per walk-forward fold and their mean", [*groups, "mean"],
                                  [*estimates, estimate("best/val/auroc")],
                                  [*baselines_, plotting.Baseline(best, estimate(f"baseline/{best}/val/auroc"))],
                                  "fold (its val_report dates)", "AUROC on val_report, 95% CI")
