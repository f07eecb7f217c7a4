"""One experiment whatever the launch path: `mlflow run .` hands its process MLFLOW_EXPERIMENT_ID=0,
`python -m ...` has none; both land in the store's default experiment, named `direction` and tagged for
the UI's model-training view."""

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
