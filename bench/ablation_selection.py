"""How often a context-length ablation whose input sizes are all noise makes a claim, when each model's best
input size and runner-up are chosen on the samples that then measure them (the ablation before it chose on
val_select) and when they are chosen on val_select and measured on val_report (`hpo.ablation` now).

    python -m bench.ablation_selection [--sizes 5] [--reps 300] [--horizons 1,5] [--n-boot 500]

Labels: the embedded S&P 500's val_select and val_report labels (a20, L=80, threshold 1%). Each input size's
scores are one stationary AR(1) series (phi = 1 - 1/block, the block of `block_length` on the train labels,
as the selection null's scorers) running through both parts, independent of the labels: every size's true
AUROC is 0.5, and so is the majority baseline's. Claims, each at a nominal 2.5% (one side of a 95% interval):
the best size "beats the baseline" (its studentized interval on val_report lies above 0.5, the majority
baseline's AUROC, whose influence series is 0), and the best is "distinguishable from the runner-up" (their
paired interval lies above 0). Prints each claim's rate over `--reps` replications for both ways of choosing.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from datamodules.config import DataConfig
from datamodules.prepared import prepare
from models.intervals import PairedBootstrap, ar1_scores, block_length, rank_auroc


def replicate(select: np.ndarray, report: np.ndarray, boot: PairedBootstrap, sizes: int, phi: float,
              rng) -> dict[str, tuple[bool, bool]]:
    """(beats the baseline, distinguishable from the runner-up) when choosing on each part."""
    n_sel, n_rep = select.size, report.size
    series = ar1_scores(sizes, n_sel + n_rep, phi, rng)
    on_select = rank_auroc(select, series[:, :n_sel])
    report_scores = series[:, n_sel:]
    resampled = [boot.resample(s) for s in report_scores]
    out = {}
    for name, ranking in (("val_report (before)", [r.point for r in resampled]), ("val_select (now)", on_select)):
        best, second = np.argsort(ranking)[::-1][:2]
        beats = boot.interval(resampled[best])[0] > 0.5
        distinguishable = boot.interval(resampled[best] - resampled[second])[0] > 0
        out[name] = (beats, distinguishable)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, default=5, help="input sizes per model (60,80,120,180,220: 5)")
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--horizons", default="1,5")
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--tiny", action="store_true", help="2 sizes, 2 replications, horizon 1, 20 resamples")
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.reps, args.horizons, args.n_boot = 2, 2, "1", 20
    print(f"{args.sizes} noise input sizes, {args.reps} replications, {args.n_boot} resamples; rate of each claim "
          f"(nominal 0.025; Monte Carlo SE {math.sqrt(0.025 * 0.975 / args.reps):.3f})")
    print(f"{'h':>2} {'block':>5} {'chosen on':<20} {'beats baseline':>14} {'beats runner-up':>15}")
    for horizon in map(int, args.horizons.split(",")):
        data = prepare(DataConfig(tier="a20", input_size=80, horizon=horizon, threshold=0.01))
        select, report, train = (data.labels(part) for part in ("val_select", "val_report", "train"))
        block = block_length(report, horizon, history=train)
        rates: dict[str, list[tuple[bool, bool]]] = {}
        for rep in range(args.reps):
            boot = PairedBootstrap(report, horizon=horizon, n_boot=args.n_boot, seed=rep, block=block)
            for name, claims in replicate(select, report, boot, args.sizes, 1 - 1 / block,
                                          np.random.default_rng([horizon, rep])).items():
                rates.setdefault(name, []).append(claims)
        for name, claims in rates.items():
            beats, distinct = np.mean(claims, axis=0)
            print(f"{horizon:>2} {block:>5} {name:<20} {beats:14.3f} {distinct:15.3f}")


if __name__ == "__main__":
    main()
