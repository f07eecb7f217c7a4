"""`python -m training --model NAME --data-tier TIER ...`: one tracked training run; with `--folds K` (K > 1)
one per walk-forward fold, nested under a run that holds their mean."""

import os

import mlflow

from conventions.cli import Parser, run_main
from training import tracking
from training.cli import add_run_arguments, config_from_args
from training.train import evidence_line, train


def build_parser() -> Parser:
    parser = Parser(prog="python -m training", description=__doc__)
    add_run_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    from training.threads import apply_default_threads

    apply_default_threads()
    tags = {"transferred_from": args.use_best_from} if args.use_best_from else None
    if cfg.data.folds > 1:
        from training.walkforward import fold_line, run_folds

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per fold's predictions
        folds = run_folds(cfg, progress=not args.quiet, tags=tags)
        print(f"run {folds.run_id}: {cfg.data.folds} walk-forward folds ({cfg.data.window} window)")
        for fold in folds.folds:
            print(f"  {fold_line(fold)}")
        print(f"  mean over folds: {evidence_line(folds.metrics, folds.best_baseline)}")
        print(tracking.browse_hint(mlflow.get_run(folds.run_id).info.experiment_id))
        return
    result = train(cfg, progress=not args.quiet, tags=tags)
    print(f"run {result.run_id}: best epoch {result.best_epoch} of {result.epochs}, "
          f"{result.params_count:,} parameters")
    print(f"  {evidence_line(result.metrics, result.best_baseline)}")
    print(tracking.browse_hint(mlflow.get_run(result.run_id).info.experiment_id))


if __name__ == "__main__":
    run_main(main)
