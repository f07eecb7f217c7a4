"""Study wall time with 1, 2 and 4 workers: `python -m bench.workers` from the repository root.

The same tiny study (itransformer, a20, L16, 2 epochs, `--trials` trials) on a real PostgreSQL with a real
`mlflow server` (bench/soak.py's `Cluster`, 127.0.0.1 only), run by 1, 2 and 4 `python -m hpo` workers
started at once; each run has its own database and experiment. Prints, per worker count: the wall time
from starting the workers to the last one's exit, the time until the study held all its trials finished,
and the speed-up over one worker (wall time of 1 worker / wall time of N).

Torch runs on one thread per worker. On a 2-core machine 2 is the ceiling of the speed-up (two workers
already use both cores; four share them), and each worker's start (imports, data) is paid in parallel
but on the same two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from bench.soak import STUDY, TINY, Cluster, spawn


def finished_at(storage, trials: int) -> bool:
    from optuna.trial import TrialState

    try:
        study_id = storage.get_study_id_from_name(STUDY)
    except KeyError:
        return False
    done = storage.get_all_trials(study_id, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return len(done) >= trials


def one(cluster: Cluster, workers: int, trials: int) -> tuple[float, float]:
    from hpo.storage import open_storage

    url, experiment, cwd = cluster.study()
    args = [*TINY, "--trials", str(trials), "--storage", url]
    start = time.monotonic()
    procs = [spawn(cwd, args, experiment, f"w{i}", f"w{i}") for i in range(workers)]
    storage, full = open_storage(url)[0], None
    while any(p.poll() is None for p in procs):
        if full is None and finished_at(storage, trials):
            full = time.monotonic() - start
        time.sleep(0.2)
    wall = time.monotonic() - start
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise SystemExit(f"workers failed ({bad}); logs in {cwd}")
    return wall, full if full is not None else wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--tiny", action="store_true", help="2 trials, 1 and 2 workers")
    args = parser.parse_args(argv)
    if args.tiny:
        args.trials, args.workers = 2, "1,2"
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    with contextlib.ExitStack() as stack:
        cluster = Cluster(stack)
        for n in counts:
            rows.append((n, *one(cluster, n, args.trials)))
            print(f"{n} workers: {rows[-1][1]:.1f} s", flush=True)
    base = rows[0][1]
    print(f"\nstudy of {args.trials} tiny trials (PostgreSQL + mlflow server on 127.0.0.1, 2 CPU cores)")
    print(f"{'workers':>7}  {'wall s':>7}  {'trials done s':>13}  {'speed-up':>8}")
    for n, wall, full in rows:
        print(f"{n:>7}  {wall:>7.1f}  {full:>13.1f}  {base / wall:>8.2f}")
    print("on 2 cores the speed-up cannot exceed 2 (one thread per worker; 4 workers share 2 cores)")


if __name__ == "__main__":
    main()
