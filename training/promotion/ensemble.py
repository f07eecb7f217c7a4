"""The promoted ensemble: the config retrained with K seeds (seed, seed+1, ...), each exactly as a trial
trains, nested under the promotion run; then, once, its mean probability scored on test and on val_report
beside every baseline, each seed on test, and a Platt calibrator fitted on its val predictions. With walk-forward
folds (`data.folds` K > 1) all of it is on the last fold's layout (`Prepared.fold(K - 1)`: train is every row
before the last val block, val that block; test as always)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.datamodule import TierDataModule
from datamodules.prepared import Prepared
from models import baselines
from models.calibration import Calibrator, fit_calibrator
from models.intervals import Setting, rank_auroc
from training.config import RunConfig
from training.evaluate import Evaluation, evaluate, predict_probs
from training.train import REPORT, RunResult, on_report, train


@dataclass(frozen=True)
class Ensemble:
    seeds: list[int]
    members: list[RunResult]  # one per seed
    test: np.ndarray  # [seeds, test samples]: each member's probabilities on test
    ev: Evaluation  # the ensemble on test
    ev_val: Evaluation  # the ensemble on val_report
    calibrator: Calibrator  # fitted on the ensemble's val predictions
    deployed: np.ndarray  # the calibrated ensemble on test: what the registered model says
    seed_metrics: list[dict[str, float]]  # per seed: best/val/auroc, test/auroc, best_epoch, epochs
    metrics: dict[str, float]  # what the promotion run holds


def seed_list(cfg: RunConfig, seeds: int) -> list[int]:
    return [cfg.train.seed + k for k in range(seeds)]


def retrain(cfg: RunConfig, seeds: list[int], data: Prepared, *, what: str, run_id: str,
            progress: bool) -> list[RunResult]:
    """One `train` run per seed on `data` (the last fold's view), nested under the promotion run `run_id`."""
    members = []
    for k, seed in enumerate(seeds):
        print(f"seed {seed} ({k + 1} of {len(seeds)}): training", flush=True)
        members.append(train(cfg.override({"train.seed": seed}), parent_run_id=run_id, progress=progress,
                             plots=False, log_checkpoint=True, run_name=f"{what} seed {seed}", data=data,
                             tags={"promotion_run_id": run_id, "promotion_seed": str(seed)}))
    return members


def evaluate_once(cfg: RunConfig, prepared: Prepared, seeds: list[int], members: list[RunResult]) -> Ensemble:
    """The only read of test: the members' predictions on val, val_report and test of `prepared` (the data
    they trained on: the last fold's view), scored once."""
    dm = TierDataModule(cfg.data, prepared=prepared)
    dm.setup()

    def probs(stage: str) -> np.ndarray:
        return np.stack([predict_probs(r.model, dm.eval_loader(stage)) for r in members])

    val, report, test = probs("val"), probs(REPORT), probs("test")
    s = cfg.train.seed
    setting = Setting(cfg.data.horizon, prepared.labels("train"), s)
    best = baselines.choose(prepared, s)  # on val_select, as the config was
    y_test = prepared.labels("test")
    ev = evaluate("test", y_test, prepared.dates("test"), test.mean(0), baselines.scores(prepared, "test", s),
                  best_baseline=best, setting=setting)
    ev_val = evaluate("val", prepared.labels(REPORT), prepared.dates(REPORT), report.mean(0),
                      baselines.scores(prepared, REPORT, s), best_baseline=best, setting=setting)
    calibrator = fit_calibrator(val.mean(0), prepared.labels("val"))
    deployed = calibrator.transform(test.mean(0))
    seed_metrics = [{"best/val/auroc": r.val_auroc, "test/auroc": float(rank_auroc(y_test, p)),
                     "best_epoch": r.best_epoch, "epochs": r.epochs}
                    for r, p in zip(members, test, strict=True)]
    seed_test = np.array([m["test/auroc"] for m in seed_metrics])
    seed_val = np.array([m["best/val/auroc"] for m in seed_metrics])
    # the ensemble on val_report as `best/val/*`: `val/*` is the per-epoch val_select AUROC in every run kind
    metrics = {**ev.metrics, **on_report(ev_val.metrics),
               "test/auroc_seed_mean": float(seed_test.mean()), "test/auroc_seed_sd": _sd(seed_test),
               "best/val/auroc_seed_mean": float(seed_val.mean()), "best/val/auroc_seed_sd": _sd(seed_val),
               "test/brier_val_calibrated": float(np.mean((deployed - y_test) ** 2)),
               "calibrator/a": calibrator.a, "calibrator/b": calibrator.b, "test/samples": len(y_test),
               **{f"seed/{seed}/{key}": v for seed, m in zip(seeds, seed_metrics, strict=True)
                  for key, v in m.items()}}
    return Ensemble(seeds, members, test, ev, ev_val, calibrator, deployed, seed_metrics, metrics)


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0
