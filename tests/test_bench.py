"""Every benchmark in bench/ runs its tiny mode (`--tiny`: the real code path at the smallest sizes), so that
a benchmark that rots breaks the build, not its next reader. The modules and scripts are discovered from the
folder: a new benchmark without a tiny mode fails here. Python benchmarks run in-process (`main(argv)`);
those that start servers or several processes are in the slow set (`pytest -m slow`, run by CI too)."""

import importlib
import logging
import os
import subprocess

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench"
# PostgreSQL and `mlflow server` (soak, workers), `mlflow models serve` (predict_latency), fresh
# interpreters (datamodule_memory, dry_run, hpo_pruning, demo_threads.sh) or busy processes beside
# (threads): tens of seconds even tiny
SLOW = {"soak", "workers", "predict_latency", "datamodule_memory", "dry_run", "hpo_pruning", "threads",
        "demo_threads.sh"}
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")
SCRIPTS = sorted(p.name for p in BENCH.glob("*.sh"))
LOGGERS = ("pytorch_lightning", "lightning", "mlflow", "optuna")


def cases(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def test_every_benchmark_is_found():
    assert {"train_throughput", "accelerator", "soak"} <= set(MODULES) and "demo_threads.sh" in SCRIPTS
    assert set(MODULES) | set(SCRIPTS) >= SLOW


@pytest.mark.parametrize("name", cases(MODULES))
def test_a_python_benchmark_runs_its_tiny_mode(name, capsys):
    environ = dict(os.environ)
    levels = {n: logging.getLogger(n).level for n in LOGGERS}
    try:
        importlib.import_module(f"bench.{name}").main(["--tiny"])
    finally:  # benchmarks point MLflow and the feature cache at their own temporary directories
        os.environ.clear()
        os.environ.update(environ)
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) >= 2, out


@pytest.mark.parametrize("name", cases(SCRIPTS))
def test_a_shell_benchmark_runs_its_tiny_mode(name):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(BENCH / name), "--tiny"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines and all("exit 0" in line for line in lines), proc.stdout
