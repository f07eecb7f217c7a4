"""Wall time of the HPO dry run (18 forced configs) beside the floor `python -c "import torch"`, and which
heavy modules the dry run imports. One run:

    python -m bench.dry_run [--repeats 3]
    python -m bench.dry_run --tiny   # 1 repeat

1. `python -m hpo --model itransformer --data-tier a200 --trials 70 --forced-extremes --dry-run` and
   `python -c "import torch"` as subprocesses, interleaved, median of `--repeats` each.
2. The dry run once more under `python -X importtime`: for each heavy module (mlflow, optuna,
   pytorch_lightning, neuralforecast; torch and a few others beside), whether it is imported and its
   cumulative import time as importtime reports it (a module first imported inside another one is
   counted inside that one's cumulative time too; importtime itself adds some overhead).

Each subprocess runs in a temporary directory with the repository on PYTHONPATH, its own MLflow store
and feature cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRY_RUN = ["-m", "hpo", "--model", "itransformer", "--data-tier", "a200", "--trials", "70", "--forced-extremes",
           "--dry-run"]
FLOOR = ["-c", "import torch"]
HEAVY = ("mlflow", "optuna", "pytorch_lightning", "neuralforecast")
BESIDE = ("torch", "lightning", "pandas", "scipy", "sklearn", "matplotlib", "pyarrow", "talib", "arch")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`python {' '.join(args)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc


def import_times(stderr: str) -> dict[str, int]:
    """Top-level module -> cumulative microseconds, from `-X importtime` lines
    `import time: self [us] | cumulative | imported package`."""
    out = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        if name.strip() and cumulative.strip().isdigit():
            out.setdefault(name.strip(), int(cumulative))  # first (and only) import of each module
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="1 repeat")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats = 1

    with tempfile.TemporaryDirectory(prefix="dry-run-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
               "DIRECTION_CACHE_DIR": str(work / "cache")}
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        print(f"python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f} (1 min) at the start; "
              "other work may run beside")
        times = {"dry": [], "floor": []}
        for _ in range(args.repeats):
            seconds, proc = run(DRY_RUN, work, env)
            times["dry"].append(seconds)
            seconds, _ = run(FLOOR, work, env)
            times["floor"].append(seconds)
        configs = sum(1 for line in proc.stdout.splitlines() if line.strip().split(" ", 1)[0].isdigit())
        _, traced = run(["-X", "importtime", *DRY_RUN], work, env)
        imported = import_times(traced.stderr)
        leftovers = sorted(p.name for p in work.iterdir() if p.name != "cache")

    dry, floor = statistics.median(times["dry"]), statistics.median(times["floor"])
    print(f"\n## wall time, median of {args.repeats} (subprocess start to exit)")
    print(f"{'command':<48} {'seconds':>8} {'runs':>24}")
    for label, key, median in (("python -m hpo ... --dry-run", "dry", dry),
                               ('python -c "import torch" (floor)', "floor", floor)):
        print(f"{label:<48} {median:8.2f} {', '.join(f'{t:.2f}' for t in times[key]):>24}")
    print(f"{'dry run minus floor':<48} {dry - floor:8.2f}   ratio dry/floor {dry / floor:.2f}")
    print(f"forced configs listed: {configs}; files the dry run left in its directory: {leftovers or 'none'}")

    print("\n## imports of the dry run (python -X importtime; cumulative, seconds)")
    print(f"{'module':<20} {'imported':>9} {'cumulative s':>13}")
    for name in (*HEAVY, *BESIDE):
        us = imported.get(name)
        print(f"{name:<20} {'yes' if us is not None else 'no':>9} "
              f"{'' if us is None else f'{us / 1e6:.2f}':>13}")
    ours = {k: v for k, v in imported.items() if k.split(".")[0] in ("datamodules", "models", "training", "hpo")
            and "." not in k}
    print("project packages: " + ", ".join(f"{k} {v / 1e6:.2f} s" for k, v in sorted(ours.items())))


if __name__ == "__main__":
    main()
