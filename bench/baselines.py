"""Every baseline's val AUROC on the embedded S&P 500 with its block-bootstrap interval, beside the i.i.d.
interval's width, at a20, L=80, for horizon 1 and 5 (threshold 1%): what a model must beat, and how much
overlapping labels widen an honest interval.

    python -m bench.baselines [--horizons 1,5] [--tier a20] [--input-size 80]

Measured on `val_report` (the part of val a run's numbers come from); baselines are fit on train only.
"""

from __future__ import annotations

import argparse

from bench import data_arguments
from datamodules.config import DataConfig
from datamodules.prepared import prepare
from models.baselines import scores as baseline_scores
from models.intervals import bootstrap_auroc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_arguments(parser)
    parser.add_argument("--tiny", action="store_true", help="horizon 1, input size 16")
    args = parser.parse_args(argv)
    if args.tiny:
        args.horizons, args.input_size = "1", 16
    print(f"{'h':>2} {'baseline':<11} {'val AUROC':>9} {'block 95% CI':>17} {'width':>6} {'iid width':>9} "
          f"{'ratio':>6}  samples, positive rate, block")
    for horizon in map(int, args.horizons.split(",")):
        data = prepare(DataConfig(tier=args.tier, input_size=args.input_size, horizon=horizon,
                                  threshold=args.threshold))
        labels = data.labels("val_report")
        scores = baseline_scores(data, "val_report", seed=0)
        block = bootstrap_auroc(labels, scores, horizon=horizon, seed=0, history=data.labels("train"))
        iid = bootstrap_auroc(labels, scores, horizon=horizon, seed=0, block=1)
        for name in scores:
            (lo, hi), (ilo, ihi) = block.ci[name], iid.ci[name]
            ratio = (hi - lo) / (ihi - ilo) if ihi > ilo else float("nan")
            print(f"{horizon:>2} {name:<11} {block.point[name]:9.4f} [{lo:.4f}, {hi:.4f}] {hi - lo:6.4f} "
                  f"{ihi - ilo:9.4f} {ratio:6.2f}  {len(labels)}, {labels.mean():.3f}, {block.block}")


if __name__ == "__main__":
    main()
