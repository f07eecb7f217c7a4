"""`python -m training --model NAME --data-tier TIER ...`: one tracked training run."""

import argparse

import mlflow

from training.cli import add_run_arguments, config_from_args, run_main
from training.train import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    add_run_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    result = train(config_from_args(args), progress=not args.quiet)
    best = {k: v for k, v in result.metrics.items() if k.endswith("auroc") or "auroc_vs" in k}
    print(f"run {result.run_id}: best epoch {result.best_epoch} of {result.epochs}, "
          f"{result.params_count:,} parameters")
    for key, value in sorted(best.items()):
        print(f"  {key} = {value:.4f}")
    print(f"tracking URI: {mlflow.get_tracking_uri()}  (browse with `mlflow ui`)")


if __name__ == "__main__":
    run_main(main)
