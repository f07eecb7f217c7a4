"""Fast-CPU fixtures. Every test gets its own MLflow sqlite store and feature cache: never the user's."""

import contextlib
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


def copy_store(template: Path, directory: Path) -> None:
    """`directory/mlflow.db`: a copy of the migrated `template`, its Default experiment's artifacts in
    `directory/mlruns`, as a new store made there would have them."""
    import shutil
    import sqlite3

    shutil.copyfile(template, directory / "mlflow.db")
    with sqlite3.connect(directory / "mlflow.db") as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                   (str(directory / "mlruns" / "0"),))
    db.close()


def use_store(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Point MLflow, the feature cache and the working directory at `directory` (its `mlflow.db`)."""
    import mlflow

    uri = f"sqlite:///{directory / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DIRECTION_CACHE_DIR", str(directory / "cache"))
    monkeypatch.chdir(directory)  # ./mlruns artifacts and any relative output land there
    mlflow.set_tracking_uri(uri)


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch, migrated_store):
    """Each test's own sqlite store (a copy of `migrated_store`) and feature cache."""
    import mlflow

    copy_store(migrated_store, tmp_path)
    use_store(monkeypatch, tmp_path)
    yield
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory, migrated_store):
    """A store shared by the tests of one module, for work done once and read by several tests (a module
    fixture builds it inside `shared(module_store)`; each reading test calls `use_store` on it)."""
    directory = tmp_path_factory.mktemp("module-store")
    copy_store(migrated_store, directory)
    return directory


@contextlib.contextmanager
def shared(directory: Path):
    """Inside: MLflow, the feature cache and the working directory are `directory`'s (restored after)."""
    import mlflow

    with pytest.MonkeyPatch.context() as monkeypatch:
        use_store(monkeypatch, directory)
        try:
            yield
        finally:
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
    return tiny()


def tiny():
    """`tiny_config`, for fixtures of a wider scope."""
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
