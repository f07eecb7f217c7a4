"""Benchmark of the HPO layer, one run: `python -m bench.hpo_pruning` from the repository root.

1. Pruning: the same study (settings, seed) without and with the median pruner. For each: the trials and
   the epochs it took to come within 0.005 of the best val AUROC of the unpruned study; pruned / unpruned.
2. `--dry-run` wall time for the 18 forced configs (itransformer, a200, L80): the command, and the report
   alone (imports excluded).
3. MLflow's share of the studies' wall time: time spent in MLflow's tracking store and artifact repository
   (timed around their methods), over the wall time of both studies.

Runs in a temporary directory with its own MLflow store and feature cache; small budgets and few epochs so
that it takes minutes on 2 CPU cores. Torch runs on one thread (see `--threads`).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOLERANCE = 0.005


class StoreTimer:
    """Seconds spent inside the methods of the given classes (outermost calls only)."""

    def __init__(self, *classes):
        self.seconds, self._depth = 0.0, 0
        for cls in classes:
            for name, fn in list(vars(cls).items()):
                if inspect.isfunction(fn) and not name.startswith("_"):
                    setattr(cls, name, self._timed(fn))

    def _timed(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self._depth -= 1

        return wrapper


def epochs_of(trial) -> int:
    """The epochs a trial trained (`hpo.trial_record.TrialRecord.epochs`)."""
    from hpo.trial_record import TrialRecord

    return TrialRecord.of(trial).epochs


def to_target(trials, target: float) -> tuple[int | None, int]:
    """(trials run until the best so far reached `target`, epochs spent until then); trials in order."""
    best, epochs = float("-inf"), 0
    for i, t in enumerate(trials, start=1):
        epochs += epochs_of(t)
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        if best >= target:
            return i, epochs
    return None, epochs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hpo_pruning", description=__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--budgets", default="20k,50k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (several on 2 busy cores: slower)")
    parser.add_argument("--tiny", action="store_true", help="2 trials of 1 epoch, budget 20k")
    args = parser.parse_args(argv)
    if args.tiny:
        args.trials, args.max_epochs, args.budgets = 2, 1, "20k"
    repo = Path(__file__).resolve().parents[1]
    work = tempfile.mkdtemp(prefix="bench-hpo-")
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    os.environ["DIRECTION_CACHE_DIR"] = f"{work}/cache"

    import optuna
    import torch
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from datamodules.prepared import prepare
    from hpo.__main__ import build_parser, settings_from_args
    from hpo.dry_run import report
    from hpo.storage import open_storage
    from hpo.study import run_study

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timer = StoreTimer(SqlAlchemyStore, LocalArtifactRepository)
    flags = ["--model", "itransformer", "--data-tier", "a20", "--input-size", "32", "--batch-size", "256",
             "--accelerator", "cpu", "--max-epochs", str(args.max_epochs), "--seed", str(args.seed),
             "--budgets", args.budgets, "--trials", str(args.trials)]
    data = prepare(settings_from_args(build_parser().parse_args(flags)).base.data)

    results = {}
    for label, extra in (("no pruning", ["--no-pruning"]), ("median pruning", [])):
        name = "bench-" + label.replace(" ", "-")
        settings = settings_from_args(build_parser().parse_args([*flags, *extra, "--study-name", name,
                                                                  "--storage", f"{name}.journal"]))
        start = time.perf_counter()
        out = run_study(settings, data, echo=lambda line: print("  " + line, flush=True))
        wall = time.perf_counter() - start
        results[label] = (out, wall)
        print(f"{label}: best {out.best.value:.4f}, {out.counts}, {wall:.0f} s", flush=True)

    trials = {label: optuna.load_study(study_name=out.study_name,
                                       storage=open_storage(f"{out.study_name}.journal")[0]).trials
              for label, (out, _) in results.items()}
    target = results["no pruning"][0].best.value - TOLERANCE
    print(f"\n== pruning: {args.trials} trials, budgets {args.budgets}, max {args.max_epochs} epochs, seed "
          f"{args.seed}; target = best unpruned val AUROC - {TOLERANCE} = {target:.4f}")
    print(f"{'':<16}{'best':>8}{'complete':>10}{'pruned':>8}{'epochs':>8}{'wall s':>8}"
          f"{'trials to target':>18}{'epochs to target':>18}")
    reached = {}
    for label, (out, wall) in results.items():
        n, epochs = to_target(trials[label], target)
        reached[label] = (n, epochs)
        total = sum(epochs_of(t) for t in trials[label])
        print(f"{label:<16}{out.best.value:>8.4f}{out.counts.get('COMPLETE', 0):>10}{out.counts.get('PRUNED', 0):>8}"
              f"{total:>8}{wall:>8.0f}{n if n else 'not reached':>18}{epochs if n else '-':>18}")
    (n0, e0), (n1, e1) = reached["no pruning"], reached["median pruning"]
    if n1:
        print(f"ratio pruned/unpruned: trials to target {n1 / n0:.2f}, epochs to target {e1 / e0:.2f}")
    else:
        print("ratio pruned/unpruned: the pruned study did not reach the target within its trials")
    totals = {label: sum(epochs_of(t) for t in trials[label]) for label in trials}
    print(f"ratio pruned/unpruned over the whole study: epochs {totals['median pruning'] / totals['no pruning']:.2f}, "
          f"wall {results['median pruning'][1] / results['no pruning'][1]:.2f}")

    study_wall = sum(wall for _, wall in results.values())
    print(f"\n== MLflow share: {timer.seconds:.1f} s in MLflow's store and artifact calls of {study_wall:.0f} s of "
          f"study wall time = {timer.seconds / study_wall:.1%}")

    settings = settings_from_args(build_parser().parse_args(
        ["--model", "itransformer", "--data-tier", "a200", "--trials", "70", "--forced-extremes"]))
    start = time.perf_counter()
    text = report(settings, 200)
    in_process = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo", "--model", "itransformer", "--data-tier", "a200", "--trials", "70",
                    "--forced-extremes", "--dry-run"], cwd=work, env={**os.environ, "PYTHONPATH": str(repo)},
                   check=True, capture_output=True)
    command = time.perf_counter() - start
    print(f"\n== dry run, {text.count(' params  ')} forced configs (itransformer, a200, L80, 750k/2M/20M): "
          f"command {command:.1f} s, report alone {in_process:.1f} s (18 configs, 9 shapes solved)")
    print(f"\nstudies, MLflow store and artifacts kept in {work}")


if __name__ == "__main__":
    main()
