"""The promotion run (kind `promotion`) that joins the jobs: retrain and evaluate the ensemble once (on the
last walk-forward fold's layout), log it beside the config's development record, count the read in the study's
test ledger, compare with the alias's previous holder, register last; and the `Promotion` it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion

from datamodules.prepared import Prepared
from training import notes, pyfunc, tracking
from training.config import RunConfig
from training.evaluate import figures
from training.promotion import ensemble, ledger, previous
from training.promotion.development import TAG, Development, absent
from training.promotion.register import register
from training.promotion.source import KIND, Source
from training.train import REPORT


@dataclass(frozen=True)
class Promotion:
    run_id: str
    name: str
    alias: str
    version: str
    source: Source
    seeds: list[int]
    seed_metrics: list[dict[str, float]]  # per seed: best/val/auroc, test/auroc, best_epoch, epochs
    metrics: dict[str, float]  # what the promotion run holds
    best_baseline: str
    verdict: str
    n_test: int
    test_dates: tuple[str, str]
    looks: int
    comparison: str | None
    development: Development | None  # the config's walk-forward evidence; None: its source holds none
    folds: int  # K: the ensemble trained on the last fold's layout
    report_dates: tuple[str, str]  # the ensemble's val_report (the last fold's)

    def report(self, echo: Callable[[str], None]) -> None:
        m = self.metrics
        echo(f"promotion run {self.run_id} (kind {KIND}) of {self.source.label}, {len(self.seeds)} seeds")
        for k, (seed, s) in enumerate(zip(self.seeds, self.seed_metrics, strict=True)):
            echo(f"  seed {seed} ({k + 1} of {len(self.seeds)}): best/val/auroc {s['best/val/auroc']:.4f}, "
                 f"test/auroc {s['test/auroc']:.4f} (best epoch {s['best_epoch']:.0f} of {s['epochs']:.0f})")
        echo(f"  seeds' test/auroc: mean {m['test/auroc_seed_mean']:.4f}, sd {m['test/auroc_seed_sd']:.4f}")
        echo(f"ensemble on test ({self.n_test} samples, {self.test_dates[0]} .. {self.test_dates[1]}): "
             f"test/auroc {m['test/auroc']:.4f} [95% CI {m['test/auroc_ci_low']:.4f}, "
             f"{m['test/auroc_ci_high']:.4f}]; "
             f"on val_report (the report half of val{notes.last_fold(self.folds)}, {self.report_dates[0]} .. "
             f"{self.report_dates[1]}) best/val/auroc {m['best/val/auroc']:.4f} "
             f"[{m['best/val/auroc_ci_low']:.4f}, {m['best/val/auroc_ci_high']:.4f}]")
        names = sorted(k.split("/")[1] for k in m if k.startswith("baseline/") and k.endswith("/test/auroc")
                       and not k.startswith("baseline/best/"))
        echo("  baselines on the same samples: " + ", ".join(
            f"{n} {m[f'baseline/{n}/test/auroc']:.4f} [{m[f'baseline/{n}/test/auroc_ci_low']:.4f}, "
            f"{m[f'baseline/{n}/test/auroc_ci_high']:.4f}]" for n in names))
        echo(f"  model minus the best baseline ({self.best_baseline}): "
             f"[{m['test/auroc_vs_best_baseline_ci_low']:+.4f}, "
             f"{m['test/auroc_vs_best_baseline_ci_high']:+.4f}]: "
             f"the model {self.verdict}")
        echo(f"  Brier on test: raw {m['test/brier']:.4f}, cross-fitted calibration "
             f"{m['test/brier_calibrated']:.4f}, the model's val-fit calibration "
             f"{m['test/brier_val_calibrated']:.4f}")
        for line in self.development.lines() if self.development else [absent(self.source)]:
            echo(line)
        if self.comparison:
            echo(self.comparison)
        if self.looks:
            echo(f"test ledger: study {self.source.study!r} has had its test split read {self.looks} time(s)")
        echo(f"registered {self.name} version {self.version}, alias {self.alias!r}: "
             f"python -m training.predict --model-uri models:/{self.name}@{self.alias} --data OHLCV.csv")


def promote(cfg: RunConfig, prepared: Prepared, source: Source, *, name: str, alias: str, seeds: int,
            holder: ModelVersion | None = None, progress: bool = True,
            development: Development | None = None) -> Promotion:
    """Retrain on the last fold's layout of `prepared` (`Prepared.fold(K - 1)`; K = 1: the one split),
    evaluate on test once, register; `holder`: the version that holds the alias now; `development`: the
    source's walk-forward evidence (`development.read`), logged as the config's development record. Inputs
    are checked by the caller."""
    seed_list = ensemble.seed_list(cfg, seeds)
    view = prepared.fold(cfg.data.folds - 1)  # what the seeds train, choose their epoch and calibrate on
    tags = {"registered_model": name, "alias": alias, **source.tags(),
            **(source.seen or prepared.seen).tags()}  # the rows the config was chosen on, for a later check
    what = pyfunc.artifact_name(cfg)
    run_name = f"promotion {name}: {what}, {seeds} seeds"
    with tracking.run_context(kind=KIND, run_name=run_name, tags=tags) as run:
        run_id = run.info.run_id
        tracking.log_config(cfg, extra={"promotion.seeds": seeds, "promotion.alias": alias,
                                        "promotion.seed_list": ",".join(map(str, seed_list))})
        if development is not None:
            tracking.log_batch(run_id, development.metrics(), tags=development.tags())
        members = ensemble.retrain(cfg, seed_list, view, what=what, run_id=run_id, progress=progress)
        ens = ensemble.evaluate_once(cfg, view, seed_list, members)
        ev, metrics = ens.ev, ens.metrics
        tracking.log_batch(run_id, metrics, params=ev.ci_params, tags={"best_baseline": ev.best_baseline})
        looks = ledger.record_look(source.study_run_id, run_id)
        per_seed = {f"probability_seed_{seed}": p for seed, p in zip(seed_list, ens.test, strict=True)}
        table = ev.predictions().assign(probability_deployed=ens.deployed, **per_seed)
        tracking.log_frame(table, "predictions/test.parquet")
        for path, figure in figures(ev, "test (ensemble)").items():
            mlflow.log_figure(figure, path)

        comparison = None
        if holder is not None:
            comparison, extra = previous.compare(holder, cfg, view, ens.test.mean(0))
            if extra:
                tracking.log_batch(run_id, extra, tags={"previous_version": holder.version})

        said = development.note() if development else absent(source)

        def describe(version: str) -> str:
            return notes.promotion_note(source.label, cfg, metrics, (ev, ens.ev_val), seed_list, version,
                                        name, said)

        version = register(name=name, alias=alias, cfg=cfg, prepared=view, ensemble=ens, source=source,
                           run_id=run_id, describe=describe,
                           development=development.version_tags() if development else {TAG: said})
        tracking.log_batch(run_id, tags={"registered_version": version, notes.NOTE: describe(version)})
        if source.study_run_id is not None:
            line = notes.evidence(metrics, ev.best_baseline, "test")
            ledger.note_held_out(source.study_run_id, run_id, version, name, line)
    dates = view.dates("test")
    return Promotion(run_id, name, alias, version, source, seed_list, ens.seed_metrics, metrics,
                     ev.best_baseline, ev.verdict(), len(view.labels("test")),
                     (str(dates[0].date()), str(dates[-1].date())), looks, comparison, development,
                     cfg.data.folds, view.date_range(REPORT))
