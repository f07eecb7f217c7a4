"""`python -m training --model NAME --data-tier TIER ...`: one tracked training run."""

import mlflow

from training.cli import Parser, add_run_arguments, config_from_args, run_main
from training.train import train


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m training", description=__doc__)
    add_run_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    result = train(config_from_args(args), progress=not args.quiet)
    m = result.metrics
    print(f"run {result.run_id}: best epoch {result.best_epoch} of {result.epochs}, "
          f"{result.params_count:,} parameters")
    print(f"  best/val/auroc {m['best/val/auroc']:.4f}  "
          f"[95% CI {m['best/val/auroc_ci_low']:.4f}, {m['best/val/auroc_ci_high']:.4f}]")
    print(f"  volatility-only baseline {m['baseline/volatility/val/auroc']:.4f}  "
          f"[95% CI {m['baseline/volatility/val/auroc_ci_low']:.4f}, "
          f"{m['baseline/volatility/val/auroc_ci_high']:.4f}]")
    print(f"  model - volatility baseline: 95% CI [{m['best/val/auroc_vs_volatility_ci_low']:+.4f}, "
          f"{m['best/val/auroc_vs_volatility_ci_high']:+.4f}]")
    print(f"tracking URI: {mlflow.get_tracking_uri()}  (browse with `mlflow ui`)")


if __name__ == "__main__":
    run_main(main)
