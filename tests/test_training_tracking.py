"""One experiment whatever the launch path: `mlflow run .` hands its process MLFLOW_EXPERIMENT_ID=0,
`python -m ...` has none; both land in the store's default experiment, named `direction` and tagged for
the UI's model-training view."""

import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from training import tracking


def test_one_experiment_whatever_the_launch_path(monkeypatch):
    client = MlflowClient()
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")  # what `mlflow run .` passes without --experiment-name
    assert tracking.experiment_id() == "0"
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    assert tracking.experiment_id() == "0"  # `python -m training` / `python -m hpo`
    experiment = client.get_experiment("0")
    assert experiment.name == tracking.EXPERIMENT == "direction"
    assert experiment.tags[tracking.KIND_TAG] == "custom_model_development"
    assert [e.name for e in client.search_experiments()] == ["direction"]


def test_a_named_experiment_is_used_as_given(monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    exp_id = tracking.experiment_id()
    assert MlflowClient().get_experiment(exp_id).name == "mine"
    assert MlflowClient().get_experiment("0").name == "Default"  # left alone


@pytest.mark.slow  # four fresh interpreters taking turns on MLflow's migrations; CI runs it (-m slow)
def test_processes_starting_together_on_a_new_sqlite_store_all_get_the_experiment(tmp_path):
    """Four processes set up one new sqlite store at once (MLflow's table creation and migrations are not
    safe against a second process): each gets the one experiment, and the store holds only it."""
    uri = f"sqlite:///{tmp_path / 'new.db'}"  # not the test's own store: that one has its tables made
    code = "from training import tracking; print(tracking.experiment_id())"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(4)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {"0"}
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments()] == ["direction"]


@pytest.mark.slow  # a real `mlflow server` on PostgreSQL and six threads for ten rounds; CI runs it (-m slow)
def test_runs_logging_one_new_dataset_at_once_all_record_it(tracking_server, monkeypatch):
    """Trials of workers that start together log the same new dataset in the same instant. MLflow's
    log_inputs reads whether the dataset exists, then inserts it: the loser of that race gets BAD_REQUEST
    (a duplicate key) from the server. Every run must still record the dataset."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    mlflow.set_tracking_uri(tracking_server.uri)
    client = MlflowClient()
    exp_id = client.create_experiment(f"datasets-{uuid.uuid4().hex[:8]}")
    runs = 6

    def log(barrier: threading.Barrier, run_id: str, digest: str) -> None:
        with mlflow.start_run(run_id=run_id):
            barrier.wait()
            tracking.log_dataset(source_path="/data/spx.csv", name="a20:spx.csv", digest=digest, tags={"tier": "a20"})

    for _ in range(10):  # without the retry, some run loses the race in about half the rounds
        digest, barrier = uuid.uuid4().hex, threading.Barrier(runs)
        ids = [client.create_run(exp_id).info.run_id for _ in range(runs)]
        with ThreadPoolExecutor(runs) as pool:
            for future in [pool.submit(log, barrier, run_id, digest) for run_id in ids]:
                future.result()
        for run_id in ids:
            (logged,) = client.get_run(run_id).inputs.dataset_inputs
            assert (logged.dataset.name, logged.dataset.digest) == ("a20:spx.csv", digest[:36])
