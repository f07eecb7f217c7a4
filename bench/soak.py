"""Soak benchmark of many workers on one study: `python -m bench.soak` from the repository root.

A real PostgreSQL (Optuna storage and MLflow backend) and a real `mlflow server` (artifacts proxied), both
on 127.0.0.1 (tests/servers.py); N `python -m hpo` workers share one tiny study of M trials, each worker
with its own host identity (`DIRECTION_WORKER_HOST`, as if on its own machine: its trials are recovered
from their heartbeats alone). Every few seconds a random worker is SIGKILLed, mid-trial when one runs,
and started again under a new identity (a fresh machine); the kills stop after `--kills` of them or
`--kill-for` seconds, and the run stops by itself after `--timeout` seconds.

Prints: trials requested, counted when done (COMPLETE, PRUNED or cleanly FAIL), lost (requested but not
counted, or left RUNNING/WAITING), duplicated (counted beyond the request, trial numbers twice, or MLflow
trial runs twice), the trials the kills cost (failed as stale), MLflow runs left RUNNING, parents, wall time.

Heartbeat 1 s and grace 8 s (a real study: 60 s and 600 s). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "itransformer", "--data-tier", "a20", "--input-size", "16", "--batch-size", "256",
        "--max-epochs", "2", "--accelerator", "cpu", "--budgets", "20k,50k"]
STUDY = "itransformer-a20-L16"
FAST = {"DIRECTION_HEARTBEAT_S": "1", "DIRECTION_GRACE_S": "8", "OMP_NUM_THREADS": "1"}


class Cluster:
    """PostgreSQL and an MLflow tracking server for the benchmark's lifetime; `study()` gives each study its
    own database and MLflow experiment."""

    def __init__(self, stack):
        from tests.servers import mlflow_server, postgres

        self.root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cluster-")))
        self.pg = stack.enter_context(postgres())
        self.tracker = stack.enter_context(mlflow_server(self.pg.url("mlflow", "postgresql+psycopg"), self.root))
        os.environ["MLFLOW_TRACKING_URI"] = self.tracker.uri
        os.environ["DIRECTION_CACHE_DIR"] = str(self.root / "cache")

    def study(self) -> tuple[str, str, Path]:
        """(storage URL, experiment name, working directory) of a new study."""
        from training import tracking

        name = f"b{uuid.uuid4().hex[:10]}"
        cwd = self.root / name
        cwd.mkdir()
        os.environ["MLFLOW_EXPERIMENT_NAME"] = name
        tracking.experiment_id()  # created before the workers, which all check it at once when they start
        return self.pg.create_database(name), name, cwd


def spawn(cwd: Path, args: list[str], experiment: str, host: str, log: str) -> subprocess.Popen:
    env = {**os.environ, **FAST, "PYTHONPATH": str(REPO), "MLFLOW_EXPERIMENT_NAME": experiment,
           "DIRECTION_WORKER_HOST": host}
    with open(cwd / f"{log}.log", "w") as out:
        return subprocess.Popen([sys.executable, "-m", "hpo", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def running_hosts(storage) -> dict[str, int]:
    """host -> number of the RUNNING trial it trains (inside its MLflow run)."""
    import optuna

    try:
        study_id = storage.get_study_id_from_name(STUDY)
    except KeyError:
        return {}
    from hpo.trial_record import TrialRecord

    running = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.RUNNING,))
    records = {t.number: TrialRecord.of(t) for t in running}
    return {records[t.number].worker.host: t.number for t in running
            if records[t.number].mlflow_run_id is not None and records[t.number].worker is not None}


def tally(url: str, experiment: str, requested: int) -> dict[str, object]:
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from hpo.storage import open_storage
    from hpo.trial_record import TrialRecord

    trials = optuna.load_study(study_name=STUDY, storage=open_storage(url)[0]).trials
    records = {t.number: TrialRecord.of(t) for t in trials}
    counted = [t for t in trials if t.state != TrialState.WAITING and records[t.number].counts]
    left = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stale = [t for t in trials if (records[t.number].failed_reason or "").startswith("stale")]
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000) if exp else []
    per_number = Counter(r.data.tags.get("trial_number") for r in runs if r.data.tags.get("kind") == "trial")
    numbers = Counter(t.number for t in trials)
    return {
        "requested": requested, "counted": len(counted),
        "lost": max(0, requested - len(counted)) + len(left),
        "duplicated": max(0, len(counted) - requested) + sum(n - 1 for n in numbers.values())
        + sum(n - 1 for n in per_number.values()),
        "stale_failed": len(stale),
        "runs_left_running": sum(r.info.status == "RUNNING" for r in runs),
        "parents": sum(r.data.tags.get("kind") == "study" for r in runs),
    }


def soak(cluster: Cluster, workers: int, trials: int, kills: int, every: float, kill_for: float,
         timeout: float, seed: int) -> dict[str, object]:
    from hpo.storage import open_storage

    rng = random.Random(seed)
    url, experiment, cwd = cluster.study()
    args = [*TINY, "--trials", str(trials), "--storage", url]
    procs = {f"m{i}": spawn(cwd, args, experiment, f"m{i}", f"m{i}") for i in range(workers)}
    storage = open_storage(url)[0]
    start = time.monotonic()
    next_kill, done_kills, mid_trial, machines = start + every, 0, 0, workers
    while any(p.poll() is None for p in procs.values()):
        now = time.monotonic()
        if now - start > timeout:
            for p in procs.values():
                p.kill()
            break
        if done_kills < kills and now - start < kill_for and now >= next_kill:
            alive = [h for h, p in procs.items() if p.poll() is None]
            busy = [h for h in running_hosts(storage) if h in alive]
            if alive:
                host = rng.choice(busy or alive)
                procs[host].send_signal(signal.SIGKILL)
                procs[host].wait()
                done_kills, mid_trial = done_kills + 1, mid_trial + bool(busy)
                new = f"m{machines}"
                machines += 1
                procs[new] = spawn(cwd, args, experiment, new, new)
                del procs[host]
            next_kill = now + rng.uniform(0.5, 1.5) * every
        time.sleep(0.2)
    wall = time.monotonic() - start
    failed = [h for h, p in procs.items() if p.returncode not in (0, -9)]
    return {"workers": workers, **tally(url, experiment, trials), "kills": done_kills,
            "kills_mid_trial": mid_trial, "workers_failed": len(failed), "wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> None:
    import contextlib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--kills", type=int, default=6, help="at most this many SIGKILLs")
    parser.add_argument("--every", type=float, default=8.0, help="seconds between kills (about)")
    parser.add_argument("--kill-for", type=float, default=120.0, help="no kill after this many seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="the soak stops by itself after this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="2 workers, 3 trials, at most 1 kill after 5 s")
    args = parser.parse_args(argv)
    if args.tiny:
        args.workers, args.trials, args.kills, args.every, args.kill_for = 2, 3, 1, 5.0, 30.0
    with contextlib.ExitStack() as stack:
        cluster = Cluster(stack)
        result = soak(cluster, args.workers, args.trials, args.kills, args.every, args.kill_for, args.timeout,
                      args.seed)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
