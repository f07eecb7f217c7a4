"""Fast-CPU fixtures. Every test gets its own MLflow sqlite store and feature cache: never the user's."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny networks on 2 shared cores: several OpenMP threads per process make a step up to ~50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the CLI subprocesses
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory):
    """A new MLflow sqlite store with its tables made, once per test session: making them (MLflow's alembic
    migrations) takes seconds, copying the file milliseconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").get_experiment("0")
    return path


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch, migrated_store):
    """Each test's own sqlite store (a copy of `migrated_store`, its Default experiment's artifacts in the
    test's ./mlruns, as a new store made there would have them) and feature cache."""
    import shutil
    import sqlite3

    import mlflow

    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                   (str(tmp_path / "mlruns" / "0"),))
    db.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DIRECTION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # ./mlruns artifacts and any relative output land in the temp dir
    mlflow.set_tracking_uri(uri)
    yield
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m MODULE ARGS...` as a user would, from the temp dir, with the repo importable."""
    import os
    import subprocess
    import sys

    def run(module, *args, timeout=600):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(
            [sys.executable, "-m", module, *map(str, args)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def tiny_config():
    """A run that trains in seconds on 2 CPU cores: embedded a20 data, short context, tiny network."""
    from training.config import RunConfig

    return RunConfig().override({
        "data.tier": "a20", "data.input_size": 16, "data.batch_size": 256,
        "model.name": "itransformer", "model.hidden_size": 16, "model.n_layers": 1, "model.n_heads": 2,
        "model.patch_len": 4, "model.stride": 4,
        "train.max_epochs": 2, "train.patience": 2, "train.accelerator": "cpu",
    })


# Real servers (tests/servers.py), one of each per test session, started only by the tests that ask for them.
# Missing PostgreSQL binaries make those tests fail, never skip (.ci/run installs them).


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 with databases `optuna` and `mlflow` (tests/servers.py)."""
    from tests.servers import postgres

    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def tracking_server(pg_server, tmp_path_factory):
    """`mlflow server` on 127.0.0.1 over `pg_server`'s `mlflow` database, artifacts proxied into its own
    directory (`tracking_server.artifacts`)."""
    from tests.servers import mlflow_server

    with mlflow_server(pg_server.url("mlflow", "postgresql+psycopg"), tmp_path_factory.mktemp("tracker")) as tracker:
        yield tracker
