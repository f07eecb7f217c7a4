"""`python -m hpo --model NAME --data-tier TIER --trials N ...`: a budget-aware Optuna study whose trials
are nested MLflow runs under one study run. Rerunning the same command resumes the study; several
processes running it at once share the work."""

from __future__ import annotations

import argparse

from conventions.cli import SWITCH, Parser, optional, run_main
from conventions.errors import UserError
from hpo.convergence import Convergence
from hpo.dry_run import n_features_of, report
from hpo.settings import DEFAULT_STORAGE, StudySettings
from models.budgets import DEFAULT_BUDGETS, parse_budgets
from training.cli import add_run_arguments, config_from_args, set_overrides

DEFAULT_TRIALS = 50
# `--demo`: a small study on the embedded data that finishes in minutes on 2 CPU cores (flags given win)
DEMO = {"data_tier": "a20", "model": "itransformer", "input_size": 32, "batch_size": 256, "max_epochs": 4,
        "accelerator": "cpu", "budgets": "20k,50k", "trials": 16, "forced_extremes": True,
        "study_name": "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m hpo", description=__doc__)
    add_run_arguments(parser)
    study = parser.add_argument_group("study")
    study.add_argument("--trials", type=optional(int), default=None,
                       help=f"trials the study holds when done (default {DEFAULT_TRIALS}); a rerun runs the rest")
    study.add_argument("--budgets", type=optional(str), default=None,
                       help=f"parameter budgets, e.g. 750k,2M,20M (default {','.join(DEFAULT_BUDGETS)}; "
                            "200M only when listed)")
    study.add_argument("--param-budget", type=optional(str), default=None, help="search one budget only, e.g. 2M")
    study.add_argument("--forced-extremes", **SWITCH,
                       help="first run budgets x styles x {strong, weak} regularisation (18 configs by default)")
    study.add_argument("--early-stop-patience", type=optional(int), default=None,
                       help="stop when the objective (the best val_select AUROC) has not improved over this "
                            "many completed trials")
    study.add_argument("--early-stop-threshold", type=optional(float), default=None,
                       help="the improvement that counts (default 0: any)")
    study.add_argument("--supplementary", **SWITCH,
                       help="phase 2: TPE on the two best budgets of the phase-1 study (--study-name names phase 1)")
    study.add_argument("--no-pruning", **SWITCH, help="run every trial to its end (median pruning by default)")
    study.add_argument("--log-checkpoints", **SWITCH,
                       help="trials upload their best checkpoint (off: promotion retrains from the config)")
    study.add_argument("--storage", type=optional(str), default=None,
                       help=f"Optuna storage: a journal file path (default ./{DEFAULT_STORAGE}) or an RDB URL")
    study.add_argument("--study-name", type=optional(str), default=None,
                       help="default: MODEL-TIER-LINPUT_SIZE (plus -BUDGET with --param-budget, -KFOLDS with "
                            "--folds K > 1)")
    study.add_argument("--dry-run", **SWITCH, help="print the forced configs and the search space; write nothing")
    study.add_argument("--demo", **SWITCH, help="a small study on the embedded data (minutes on 2 CPU cores)")
    return parser


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    if args.demo:
        for key, value in DEMO.items():
            if getattr(args, key) is None or getattr(args, key) is False:  # not `in (None, False)`: 0 == False
                setattr(args, key, value)
    cfg = config_from_args(args)
    if args.param_budget and args.budgets:
        raise UserError("give either --param-budget (one budget) or --budgets (several), not both")
    budgets = parse_budgets(args.param_budget or args.budgets or ",".join(DEFAULT_BUDGETS))
    if args.early_stop_threshold is not None and args.early_stop_patience is None:
        raise UserError("--early-stop-threshold needs --early-stop-patience")
    convergence = (Convergence(args.early_stop_patience, args.early_stop_threshold or 0.0)
                   if args.early_stop_patience is not None else None)
    name = args.study_name or f"{cfg.model.name}-{cfg.data.tier}-L{cfg.data.input_size}" + (
        f"-{budgets[0]}" if args.param_budget else "") + (f"-{cfg.data.folds}folds" if cfg.data.folds > 1 else "")
    return StudySettings(
        base=cfg, study_name=name, trials=DEFAULT_TRIALS if args.trials is None else args.trials, budgets=budgets,
        pinned=frozenset(set_overrides(args.set)),
        forced_extremes=args.forced_extremes, transfer=args.use_best_from or None, convergence=convergence,
        pruning=not args.no_pruning, storage=args.storage, supplementary=args.supplementary,
        log_checkpoints=args.log_checkpoints,
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    if args.dry_run:
        print(report(settings, n_features_of(settings.base)))
        return
    import mlflow  # the dry run imports neither MLflow nor Optuna
    import optuna

    from datamodules.prepared import prepare
    from hpo.study import run_study
    from hpo.trial_record import TrialRecord
    from training import tracking
    from training.threads import apply_default_threads
    from training.train import OBJECTIVE, REPORT, SELECT, evidence_line

    apply_default_threads()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = prepare(settings.base.data)  # bad data fails here, before anything is written
    tracking.experiment_id()  # so does a tracking store that cannot be used
    outcome = run_study(settings, data)
    print(f"study {outcome.study_name!r}: {outcome.stop_reason}; {outcome.ran} trials run now; "
          + ", ".join(f"{n} {s}" for s, n in outcome.counts.items()))
    if outcome.best is not None:
        b, record = outcome.best, TrialRecord.of(outcome.best)
        print(f"best: trial {b.number}, run {record.mlflow_run_id}, params {b.params}")
        k_folds = settings.base.data.folds
        where = (f"{SELECT} (the selection half of val)" if k_folds == 1 else
                 f"{SELECT} (the selection half of each of the {k_folds} folds' val blocks; the mean over folds)")
        print(f"  selected on {where}: {OBJECTIVE} {b.value:.4f} "
              f"{'exceeds' if b.value > outcome.null_p95 else 'does not exceed'} {outcome.null_p95:.4f}, what the "
              "best of as many random scorers as the completed trials had epoch evaluations reaches on the same "
              f"{SELECT} labels (95th percentile, selection/null_auroc_p95)")
        print(f"  reported on {REPORT} (the report half of val{'' if k_folds == 1 else ', over the folds'}), which "
              "chose nothing: "
              f"{evidence_line(record.evidence, record.best_baseline)}")
        print("  the held-out number comes from `python -m training.promote --study ...`, the only command that "
              "reads test")
    experiment = mlflow.get_run(outcome.parent_run_id).info.experiment_id
    print(f"MLflow: parent run {outcome.parent_run_id} (tag kind=study) in experiment "
          f"{mlflow.get_experiment(experiment).name!r}; the study is in {outcome.storage} (rerun the command "
          "to resume it)")
    print(tracking.browse_hint(experiment))


if __name__ == "__main__":
    run_main(main)
