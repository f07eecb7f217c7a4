"""One experiment whatever the launch path: `mlflow run .` hands its process MLFLOW_EXPERIMENT_ID=0,
`python -m ...` has none; both land in the store's default experiment, named `direction` and tagged for
the UI's model-training view."""

import os
import subprocess
import sys

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


def test_processes_starting_together_on_a_new_sqlite_store_all_get_the_experiment(tmp_path):
    """Four processes set up one new sqlite store at once (MLflow's table creation and migrations are not
    safe against a second process): each gets the one experiment, and the store holds only it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
