"""Fast-CPU fixtures. Every test gets its own MLflow sqlite store and feature cache: never the user's."""

import pytest


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DIRECTION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # ./mlruns artifacts and any relative output land in the temp dir
    mlflow.set_tracking_uri(uri)
    yield
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)
