"""`python -m training --model NAME --data-tier TIER ...`: one tracked training run."""

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
    result = train(cfg, progress=not args.quiet, tags=tags)
    print(f"run {result.run_id}: best epoch {result.best_epoch} of {result.epochs}, "
          f"{result.params_count:,} parameters")
    print(f"  {evidence_line(result.metrics, result.best_baseline)}")
    print(tracking.browse_hint(mlflow.get_run(result.run_id).info.experiment_id))


if __name__ == "__main__":
    run_main(main)
