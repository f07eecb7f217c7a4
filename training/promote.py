"""`python -m training.promote (--study NAME [--storage URL] | --run RUN_ID | --use-best-from SRC) --name NAME
[--alias champion] [--seeds 5] [run flags]`: the one command that reads the test split.

It retrains the chosen config (a study's best trial, chosen on val_select; a run; or any `--use-best-from`
source; flags given beside it override its data and training settings) with `--seeds` seeds (seed, seed+1, ...),
each exactly as a trial trains (early stopping on val), as `train` runs nested under one run of kind
`promotion`. Then, once, it scores each seed's best checkpoint and their mean-probability ensemble on test
beside every baseline with block-bootstrap intervals, fits a Platt calibrator on the ensemble's val predictions,
and registers the ensemble as a new version of the MLflow model `--name` (a pyfunc, `training.pyfunc`), moving
`--alias` to it. Every input is checked before any run is opened; registering is the last step, so bad input
leaves no run RUNNING and no version or alias behind.

Test ledger: a promotion whose config comes from a study (or one of its trials, or an earlier promotion of
it) is recorded on the study's parent run: a tag `test_read.<promotion run id>` per read (its own key, so
promotions running at the same time never overwrite each other's record) and the metric `test_evaluations`
(the count, step = count); a warning says how often that study's test split has been read before.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from conventions.cli import Parser, mask, optional, run_main
from conventions.errors import UserError
from datamodules import tiers
from datamodules.prepared import Seen
from training.cli import add_run_arguments, config_from_args, one_fold

KIND = "promotion"
ALIAS = "champion"
DEFAULT_SEEDS = 5
LEDGER_COUNT, LEDGER_READ = "test_evaluations", "test_read."  # metric; tag prefix


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m training.promote", description=__doc__.split("\n\n")[0])
    what = parser.add_argument_group("what to promote (one of --study, --run, --use-best-from)")
    what.add_argument("--study", type=optional(str), default=None,
                      help="a study's name (its MLflow parent run): its best trial (by val_select AUROC)")
    what.add_argument("--storage", type=optional(str), default=None,
                      help="the study's Optuna storage as given to python -m hpo: picks among studies of one name")
    what.add_argument("--run", type=optional(str), default=None, help="an MLflow run id holding a run config")
    out = parser.add_argument_group("registry")
    out.add_argument("--name", required=True, help="registered model name (a new version per promotion)")
    out.add_argument("--alias", type=optional(str), default=None, help=f"alias set on the new version (default {ALIAS})")
    out.add_argument("--seeds", type=optional(int), default=None,
                     help=f"seeds to retrain and ensemble (default {DEFAULT_SEEDS})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true",
                        help="Lightning's own messages too (model summaries, accelerator banners)")
    add_run_arguments(parser)
    return parser


@dataclass
class Source:
    uri: str  # what the config is read from: runs:/ID, models:/..., or a config.json path
    label: str  # for people
    run_id: str | None = None  # the run whose params are the config
    study: str | None = None
    study_run_id: str | None = None  # the study's parent run: where the test ledger lives
    trial: str | None = None
    transferred: bool = False  # from --use-best-from: the run is tagged `transferred_from`
    seen: Seen | None = None  # the rows the config was chosen on (None: a config file, or a run made before)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    seeds = DEFAULT_SEEDS if args.seeds is None else args.seeds
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    from training import registry, tracking

    name, alias = registry.check_model_name(args.name), registry.check_alias(args.alias or ALIAS)
    given = [flag for flag, value in (("--study", args.study), ("--run", args.run),
                                      ("--use-best-from", args.use_best_from)) if value]
    if len(given) != 1:
        raise UserError("give exactly one of --study NAME, --run RUN_ID, --use-best-from SRC"
                        + (f" (got {', '.join(given)})" if given else ""))
    if args.storage and not args.study:
        raise UserError("--storage picks a study: it goes with --study")
    tracking.experiment_id()  # a tracking store that cannot be used fails here, before anything is read
    source = find_source(args)
    args.use_best_from = source.uri
    cfg = one_fold(config_from_args(args))
    if cfg.data.tier == tiers.FILE_TIER:
        raise UserError("a model on tier 'file' cannot be promoted: the registered model builds its features "
                        "from OHLCV; promote a config of tier a20, a50 or a200")
    from datamodules.prepared import prepare
    from training.threads import apply_default_threads

    apply_default_threads()
    prepared = prepare(cfg.data)  # bad data fails here, before anything is written
    prepared.check_test_labels()
    source.seen = chosen_on(source)
    mismatch = data_mismatch(source.seen, prepared)
    if mismatch:
        raise UserError(f"{source.label}: {mismatch}")
    overlap = _held_out_from(source.seen, registry.resolve_config(source.uri), prepared)
    if overlap:
        raise UserError(f"{source.label}: {overlap}; promote it with the data and split settings it was chosen on")
    looks = ledger(source.study_run_id)
    if looks:
        print(f"warning: the test split of study {source.study!r} has been read {len(looks)} time(s) before "
              f"(promotion runs {', '.join(looks)}); each extra look makes the test number less held-out",
              file=sys.stderr)
    previous = registry.alias_holder(name, alias)
    if not args.verbose:  # third-party banners and model summaries are logged at INFO
        for logger in ("pytorch_lightning", "lightning", "lightning_fabric"):
            logging.getLogger(logger).setLevel(logging.WARNING)
    promotion = promote(cfg, prepared, source, name=name, alias=alias, seeds=seeds, previous=previous,
                        progress=not args.quiet)
    promotion.report(print)


def find_source(args: argparse.Namespace) -> Source:
    """The run (or file) the config comes from, and the study it belongs to, if any."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.registry import source_run

    client = MlflowClient()
    if args.study:
        return study_source(args.study, args.storage)
    if args.run:
        uri = f"runs:/{args.run}"
    elif "://" in args.use_best_from or args.use_best_from.startswith(("runs:", "models:")):
        uri = args.use_best_from
    else:
        return Source(uri=args.use_best_from, label=f"config file {args.use_best_from}", transferred=True)
    try:
        run_id, _ = source_run(uri)
    except UserError:
        if args.run:  # a study's parent run holds no config: promote its best trial
            try:
                run = client.get_run(args.run)
            except MlflowException:
                raise UserError(f"unknown run {args.run!r}: no such run in the tracking store") from None
            if run.data.tags.get("kind") == "study":
                return study_source(run.info.run_name, run_id=args.run)
        raise
    tags = client.get_run(run_id).data.tags
    kind = tags.get("kind")
    source = Source(uri=uri, label=f"{uri} (run {run_id}, kind {kind})", run_id=run_id,
                    transferred=not args.run)
    if kind == "trial" and tags.get("mlflow.parentRunId"):
        source.study, source.study_run_id = tags.get("study_name"), tags["mlflow.parentRunId"]
        source.trial = tags.get("trial_number")
    elif kind == KIND and tags.get("study_run_id"):
        source.study, source.study_run_id, source.trial = tags.get("study"), tags["study_run_id"], tags.get("trial")
    return source


def study_source(name: str, storage: str | None = None, run_id: str | None = None) -> Source:
    """A study's parent run (by name, and by its `storage` tag when `storage` is given) and its best trial."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if run_id is None:
        studies = _search("tags.kind = 'study'")
        matches = [r for r in studies if r.info.run_name == name]
        if storage is not None:
            matches = [r for r in matches if _same_storage(r.data.tags.get("storage", ""), storage)]
        if not matches:
            known = sorted({r.info.run_name for r in studies})
            where = f" with storage {mask(storage)}" if storage is not None else ""
            raise UserError(f"unknown study {name!r}{where}; studies in the tracking store: "
                            f"{', '.join(known) or 'none'}")
        places = sorted({r.data.tags.get("storage", "?") for r in matches})
        if len(places) > 1:
            raise UserError(f"{len(places)} studies are named {name!r} (storages: {', '.join(places)}): pass "
                            "--storage to choose one")
        parent = max(matches, key=lambda r: r.info.start_time)
    else:
        parent = client.get_run(run_id)
    best = parent.data.tags.get("best_run_id")
    if not best:
        raise UserError(f"study {name!r} has no completed trial yet: nothing to promote")
    trial = parent.data.tags.get("best_trial")
    return Source(uri=f"runs:/{best}", label=f"study {name!r}, best trial {trial} (run {best})", run_id=best,
                  study=name, study_run_id=parent.info.run_id, trial=trial)


def _search(filter_string: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs, token = [], None
    while True:
        page = client.search_runs(experiments, filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _same_storage(tag: str, storage: str) -> bool:
    shown = mask(storage)
    if tag == shown:
        return True
    return "://" not in tag and "://" not in shown and Path(tag).resolve() == Path(shown).resolve()


def ledger(study_run_id: str | None) -> list[str]:
    """The promotion runs that read the study's test split so far, oldest first."""
    if study_run_id is None:
        return []
    from mlflow.tracking import MlflowClient

    tags = MlflowClient().get_run(study_run_id).data.tags
    reads = sorted((when, key.removeprefix(LEDGER_READ)) for key, when in tags.items() if key.startswith(LEDGER_READ))
    return [run for _, run in reads]


def record_look(study_run_id: str | None, promotion_run_id: str) -> int:
    """Add a read of the test split to the study's ledger; returns the count, this read included."""
    if study_run_id is None:
        return 0
    from training import tracking

    tracking.log_batch(study_run_id, tags={f"{LEDGER_READ}{promotion_run_id}": f"{time.time_ns():020d}"})
    count = len(ledger(study_run_id))
    tracking.log_batch(study_run_id, {LEDGER_COUNT: count}, step=count)
    return count


@dataclass
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

    def report(self, echo) -> None:
        m = self.metrics
        echo(f"promotion run {self.run_id} (kind {KIND}) of {self.source.label}, {len(self.seeds)} seeds")
        for k, (seed, s) in enumerate(zip(self.seeds, self.seed_metrics, strict=True)):
            echo(f"  seed {seed} ({k + 1} of {len(self.seeds)}): best/val/auroc {s['best/val/auroc']:.4f}, test/auroc {s['test/auroc']:.4f} "
                 f"(best epoch {s['best_epoch']:.0f} of {s['epochs']:.0f})")
        echo(f"  seeds' test/auroc: mean {m['test/auroc_seed_mean']:.4f}, sd {m['test/auroc_seed_sd']:.4f}")
        echo(f"ensemble on test ({self.n_test} samples, {self.test_dates[0]} .. {self.test_dates[1]}): test/auroc "
             f"{m['test/auroc']:.4f} [95% CI {m['test/auroc_ci_low']:.4f}, {m['test/auroc_ci_high']:.4f}]; "
             f"on val_report (the report half of val) best/val/auroc {m['best/val/auroc']:.4f} "
             f"[{m['best/val/auroc_ci_low']:.4f}, {m['best/val/auroc_ci_high']:.4f}]")
        names = sorted(k.split("/")[1] for k in m if k.startswith("baseline/") and k.endswith("/test/auroc")
                       and not k.startswith("baseline/best/"))
        echo("  baselines on the same samples: " + ", ".join(
            f"{n} {m[f'baseline/{n}/test/auroc']:.4f} [{m[f'baseline/{n}/test/auroc_ci_low']:.4f}, "
            f"{m[f'baseline/{n}/test/auroc_ci_high']:.4f}]" for n in names))
        echo(f"  model minus the best baseline ({self.best_baseline}): [{m['test/auroc_vs_best_baseline_ci_low']:+.4f}, "
             f"{m['test/auroc_vs_best_baseline_ci_high']:+.4f}]: the model {self.verdict}")
        echo(f"  Brier on test: raw {m['test/brier']:.4f}, cross-fitted calibration {m['test/brier_calibrated']:.4f}, "
             f"the model's val-fit calibration {m['test/brier_val_calibrated']:.4f}")
        if self.comparison:
            echo(self.comparison)
        if self.looks:
            echo(f"test ledger: study {self.source.study!r} has had its test split read {self.looks} time(s)")
        echo(f"registered {self.name} version {self.version}, alias {self.alias!r}: "
             f"python -m training.predict --model-uri models:/{self.name}@{self.alias} --data OHLCV.csv")


def promote(cfg, prepared, source: Source, *, name: str, alias: str, seeds: int, previous=None,
            progress: bool = True) -> Promotion:
    """Retrain, evaluate on test once, register; see the module docstring. Inputs are checked by the caller."""
    import mlflow

    from datamodules.datamodule import TierDataModule
    from models import baselines
    from models.calibration import fit_calibrator
    from models.intervals import Setting, rank_auroc
    from training import notes, pyfunc, tracking
    from training.evaluate import evaluate, figures, predict_probs
    from training.train import REPORT, on_report, train

    seed_list = [cfg.train.seed + k for k in range(seeds)]
    tags = {"source": source.uri, "registered_model": name, "alias": alias,
            **({"transferred_from": source.uri} if source.transferred else {}),
            **{k: v for k, v in (("study", source.study), ("study_run_id", source.study_run_id),
                                 ("trial", source.trial), ("source_run_id", source.run_id)) if v},
            **(source.seen or prepared.seen).tags()}  # the rows the config was chosen on, for a later check
    what = pyfunc.artifact_name(cfg)
    with tracking.run_context(kind=KIND, run_name=f"promotion {name}: {what}, {seeds} seeds", tags=tags) as run:
        run_id = run.info.run_id
        tracking.log_config(cfg, extra={"promotion.seeds": seeds, "promotion.seed_list": ",".join(map(str, seed_list)),
                                        "promotion.alias": alias})
        members = []
        for k, seed in enumerate(seed_list):
            print(f"seed {seed} ({k + 1} of {seeds}): training", flush=True)
            members.append(train(cfg.override({"train.seed": seed}), parent_run_id=run_id, progress=progress,
                                 plots=False, log_checkpoint=True, run_name=f"{what} seed {seed}",
                                 tags={"promotion_run_id": run_id, "promotion_seed": str(seed)}))
        dm = TierDataModule(cfg.data)
        dm.setup()

        def probs(stage: str) -> np.ndarray:
            return np.stack([predict_probs(r.model, dm.eval_loader(stage)) for r in members])

        val, report, test = probs("val"), probs(REPORT), probs("test")  # the only read of test
        h, s = cfg.data.horizon, cfg.train.seed
        setting = Setting(h, prepared.labels("train"), s)
        best = baselines.choose(prepared, s)  # on val_select, as the config was
        y_test = prepared.labels("test")
        ev = evaluate("test", y_test, prepared.dates("test"), test.mean(0), baselines.scores(prepared, "test", s),
                      best_baseline=best, setting=setting)
        ev_val = evaluate("val", prepared.labels(REPORT), prepared.dates(REPORT), report.mean(0),
                          baselines.scores(prepared, REPORT, s), best_baseline=best, setting=setting)
        calibrator = fit_calibrator(val.mean(0), prepared.labels("val"))
        deployed = calibrator.transform(test.mean(0))
        seed_metrics = [{"best/val/auroc": r.val_auroc, "test/auroc": float(rank_auroc(y_test, p)),
                         "best_epoch": r.best_epoch, "epochs": r.epochs} for r, p in zip(members, test, strict=True)]
        seed_test = np.array([m["test/auroc"] for m in seed_metrics])
        seed_val = np.array([m["best/val/auroc"] for m in seed_metrics])
        # the ensemble on val_report as `best/val/*`: `val/*` is the per-epoch val_select AUROC in every run kind
        metrics = {**ev.metrics, **on_report(ev_val.metrics),
                   "test/auroc_seed_mean": float(seed_test.mean()), "test/auroc_seed_sd": _sd(seed_test),
                   "best/val/auroc_seed_mean": float(seed_val.mean()), "best/val/auroc_seed_sd": _sd(seed_val),
                   "test/brier_val_calibrated": float(np.mean((deployed - y_test) ** 2)),
                   "calibrator/a": calibrator.a, "calibrator/b": calibrator.b, "test/samples": len(y_test),
                   **{f"seed/{seed}/{key}": v for seed, m in zip(seed_list, seed_metrics, strict=True)
                      for key, v in m.items()}}
        tracking.log_batch(run_id, metrics, params=ev.ci_params, tags={"best_baseline": ev.best_baseline})
        looks = record_look(source.study_run_id, run_id)
        table = ev.predictions().assign(probability_deployed=deployed,
                                        **{f"probability_seed_{seed}": p for seed, p in zip(seed_list, test,
                                                                                            strict=True)})
        tracking.log_frame(table, "predictions/test.parquet")
        for path, figure in figures(ev, "test (ensemble)").items():
            mlflow.log_figure(figure, path)

        comparison = None
        if previous is not None:
            comparison, extra = compare(previous, cfg, prepared, test.mean(0))
            if extra:
                tracking.log_batch(run_id, extra, tags={"previous_version": previous.version})

        version = register(
            name=name, alias=alias, cfg=cfg, prepared=prepared, calibrator=calibrator, members=members,
            info={"promotion_run_id": run_id, "model": cfg.model.name, "tier": cfg.data.tier,
                  "input_size": cfg.data.input_size, "horizon": h, "threshold": cfg.data.threshold,
                  "seeds": seeds, "test_start": str(prepared.dates("test")[0].date()),
                  **{key.replace("/", "_"): metrics[key] for key in (
                      "test/auroc", "test/auroc_ci_low", "test/auroc_ci_high", "test/brier_val_calibrated")}},
            tags={"study": source.study or "", "trial": source.trial or "", "source": source.uri,
                  "promotion_run_id": run_id, "model": cfg.model.name, "tier": cfg.data.tier,
                  "input_size": cfg.data.input_size, "horizon": h, "threshold": cfg.data.threshold,
                  "data_fingerprint": prepared.data_fingerprint, "fingerprint": prepared.fingerprint,
                  **(source.seen or prepared.seen).tags(),
                  "seeds": seeds, "best_baseline": ev.best_baseline,
                  "best_baseline_test_auroc": _fmt(metrics["baseline/best/test/auroc"]),
                  **{key.removeprefix("best/").replace("/", "_"): _fmt(metrics[key]) for key in (
                      "best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high", "test/auroc",
                      "test/auroc_ci_low", "test/auroc_ci_high", "test/auroc_vs_best_baseline_ci_low",
                      "test/auroc_vs_best_baseline_ci_high")}},
            describe=lambda version: notes.promotion_note(source.label, cfg, metrics, (ev, ev_val), seed_list,
                                                          version, name),
        )
        tracking.log_batch(run_id, tags={"registered_version": version, notes.NOTE: notes.promotion_note(
            source.label, cfg, metrics, (ev, ev_val), seed_list, version, name)})
        if source.study_run_id is not None:
            held_out(source.study_run_id, run_id, version, name, notes.evidence(metrics, ev.best_baseline, "test"))
    dates = prepared.dates("test")
    return Promotion(run_id, name, alias, version, source, seed_list, seed_metrics, metrics, ev.best_baseline,
                     ev.verdict(), len(y_test), (str(dates[0].date()), str(dates[-1].date())), looks, comparison)


def chosen_on(source: Source) -> Seen | None:
    """The rows the source's config was chosen on, as its run recorded them (`Seen.tags`)."""
    from mlflow.tracking import MlflowClient

    return None if source.run_id is None else Seen.from_tags(MlflowClient().get_run(source.run_id).data.tags)


def data_mismatch(seen: Seen | None, prepared) -> str | None:
    """Why this data is not the data the config was chosen on (every row through `seen.until` the same), or
    None when it is (rows after that date may differ or be new) or nothing was recorded."""
    if seen is None:
        return None
    ours = prepared.fingerprint_through(seen.until)
    if ours == seen.fingerprint:
        return None
    return (f"the data differs from the data the config was chosen on: rows through {seen.until} of "
            f"{prepared.source} (dates {prepared.source_dates[0]} .. {prepared.source_dates[1]}) have fingerprint "
            f"{ours}, the config was chosen on rows through {seen.until} of {seen.source} with fingerprint "
            f"{seen.fingerprint}; promote it with that data (rows after {seen.until} may be added)")


def _held_out_from(seen: Seen | None, chosen_on_cfg, prepared) -> str | None:
    """Why this promotion's test split is not held out from the data the config was selected and trained on,
    or None when it is: every test label must start after the last label of that config's val split has
    ended. `seen` (the rows through that label's end, checked by `data_mismatch`) says where; without it
    (a config file, or a run made before it was recorded) the config's own data is read again: its last val
    date plus its horizon, in rows of this promotion's data."""
    from datamodules.prepared import prepare

    first = prepared.dates("test")[0]
    if seen is not None:
        if first >= pd.Timestamp(seen.until):
            return None
        return (f"the test split starts {first.date()}, but the config was chosen on rows through {seen.until} "
                "(its last val label's end): the test split would not be held out")
    try:
        seen = prepare(chosen_on_cfg.data).dates("val")[-1]
    except UserError as err:
        return f"its own data cannot be read to check that the test split is held out from it ({err})"
    index = prepared.index
    rows_after = index.get_loc(first) - (index.searchsorted(seen, side="right") - 1)
    if first > seen and rows_after >= chosen_on_cfg.data.horizon:
        return None
    return (f"the test split starts {first.date()}, but the config was chosen on a val split that ends "
            f"{seen.date()} with labels {chosen_on_cfg.data.horizon} day(s) ahead: the test split would not be held out")


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6f}"


def compare(previous, cfg, prepared, new_probs: np.ndarray) -> tuple[str, dict[str, float]]:
    """The version that held the alias, scored by its own pyfunc on this promotion's test samples, beside the
    new ensemble: AUROCs and the paired interval of new minus previous."""
    import mlflow

    from datamodules import sources
    from models.intervals import Setting
    from training.registry import resolve_config

    label = f"previous holder of the alias: version {previous.version}"
    seen = Seen.from_tags(previous.tags)
    try:
        overlap = data_mismatch(seen, prepared) or _held_out_from(
            seen, resolve_config(f"models:/{previous.name}/{previous.version}"), prepared)
    except UserError as err:
        overlap = f"its config cannot be read ({err})"
    if overlap:
        return f"{label} not compared: {overlap}", {}
    try:
        model = mlflow.pyfunc.load_model(f"models:/{previous.name}/{previous.version}")
        frame = sources.load_ohlcv(cfg.data.path).reset_index().rename(columns={"date": "Date"})
        out = model.predict(frame)
        scores = pd.Series(out["probability_raw"].to_numpy(), index=out["date"].astype(str))
    except Exception as err:  # any model may hold the alias; the comparison is a report, not a gate
        return f"{label} could not be scored on this test split ({type(err).__name__}: {err})", {}
    dates = prepared.dates("test").strftime("%Y-%m-%d")
    old = scores.reindex(dates).to_numpy(dtype=np.float64)
    keep = np.isfinite(old)
    if keep.sum() < 2:
        return f"{label} scores none of this promotion's test dates", {}
    y = prepared.labels("test")[keep]
    iv = Setting(cfg.data.horizon, prepared.labels("train"), cfg.train.seed).intervals(
        y, {"new": new_probs[keep], "previous": old[keep]})
    low, high = iv.diff["new", "previous"]
    extra = {"previous/test/auroc": iv.point["previous"], "test/auroc_vs_previous_ci_low": low,
             "test/auroc_vs_previous_ci_high": high}
    return (f"{label}: on the same {int(keep.sum())} test samples test/auroc {iv.point['previous']:.4f} "
            f"[{iv.ci['previous'][0]:.4f}, {iv.ci['previous'][1]:.4f}] vs the new version's {iv.point['new']:.4f}; "
            f"new minus previous [{low:+.4f}, {high:+.4f}]"), extra


def held_out(study_run_id: str, run_id: str, version: str, name: str, line: str) -> None:
    """The study's note gets (or replaces) its held-out section: this promotion's test evidence."""
    from mlflow.tracking import MlflowClient

    from training import notes, tracking

    client = MlflowClient()
    note = client.get_run(study_run_id).data.tags.get(notes.NOTE, "")
    link = notes.run_link(f"promotion run {run_id}", client.get_run(run_id).info.experiment_id, run_id)
    tracking.log_batch(study_run_id, tags={notes.NOTE: notes.with_held_out(
        note, f"{line}: {link}, `{name}` version {version}")})


def register(*, name: str, alias: str, cfg, prepared, calibrator, members, info: dict, tags: dict,
             describe) -> str:
    """Log the pyfunc into the active (promotion) run, register it as a new version of `name` with its tags,
    move the alias; `describe(version)`: its Markdown description. On any failure the new version (and a registered model created for it) is deleted again."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from datamodules import sources
    from training import pyfunc, shift

    client = MlflowClient()
    existed = _registered_model_exists(name)
    raw = sources.load_ohlcv(cfg.data.path)
    example = raw.iloc[-(prepared.warmup + cfg.data.input_size + 4):].reset_index().rename(columns={"date": "Date"})
    states = [{k: v.detach().cpu() for k, v in r.model.state_dict().items()} for r in members]
    train = prepared.split == "train"
    reference = shift.reference(prepared.features[train], list(prepared.feature_names), prepared.y[train])
    logged = pyfunc.log(config=cfg, features=list(prepared.feature_names), scaler=prepared.scaler,
                        calibrator=calibrator, states=states, reference=reference, example=example, info=info)
    version = None
    try:
        version = str(mlflow.register_model(logged.model_uri, name, tags={k: str(v) for k, v in tags.items()}).version)
        client.update_model_version(name, version, description=describe(version))
        client.set_registered_model_alias(name, alias, version)
        return version
    except BaseException:
        if version is not None:
            client.delete_model_version(name, version)
        if not existed and _registered_model_exists(name) and not client.search_model_versions(f"name = '{name}'"):
            client.delete_registered_model(name)
        raise


def _registered_model_exists(name: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient().get_registered_model(name)
        return True
    except MlflowException:
        return False


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    run_main(main)
