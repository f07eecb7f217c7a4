"""Many machines, locked: the README's recipe of a basic-auth `mlflow server` (MLflow's `basic-auth` app,
extra `server`) over the throwaway PostgreSQL, on 127.0.0.1. Workers authenticate through
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD; every other user READs (the app's default permission).

One server for the module; the tests run in file order: the worker's study first (and its promotion, a
slow test), then the read-only user and the wrong password against what they left, then the search for the
passwords."""

import os
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.storage import open_storage
from hpo.trial_record import TrialRecord
from tests.conftest import REPO
from tests.servers import BasicAuth, mlflow_server
from training import tracking

pytestmark = pytest.mark.slow  # a basic-auth `mlflow server` (about a minute to start) and real studies;
# CI runs it (-m slow)

ADMIN_PW, WORKER_PW, VIEWER_PW = "admin-Xq7-pw-41d9", "worker-Jm2-pw-7c3e", "viewer-Rt5-pw-0b8a"
LEAVER_PW, EXPIRING_PW, CHANGED_PW = "leaver-Pw9-pw-5e21", "expiring-Hv3-pw-2a7f", "changed-Pw4-pw-9d0c"
EDITOR_PW = "editor-Kd8-pw-3f6b"
SECRETS = (ADMIN_PW, WORKER_PW, VIEWER_PW, LEAVER_PW, EXPIRING_PW, CHANGED_PW, EDITOR_PW)
TINY = ["--model", "itransformer", "--data-tier", "a20", "--input-size", "16", "--batch-size", "256",
        "--max-epochs", "2", "--accelerator", "cpu"]
STUDY, MODEL = "itransformer-a20-L16", "spy-direction"
OUTPUTS: list[str] = []  # every line the workers printed, searched for the passwords at the end


@pytest.fixture(scope="module")
def locked(pg_server, tmp_path_factory):
    """The basic-auth server (runs and users in databases of their own) with a `worker` and a `viewer`."""
    tag = uuid.uuid4().hex[:8]
    backend, users = (pg_server.create_database(f"{what}_{tag}").replace("postgresql://", "postgresql+psycopg://")
                      for what in ("runs", "users"))
    auth = BasicAuth(users, ADMIN_PW)
    with mlflow_server(backend, tmp_path_factory.mktemp("locked"), workers=1, auth=auth) as tracker:
        tracker.create_user("worker", WORKER_PW)
        tracker.create_user("viewer", VIEWER_PW)
        yield tracker


@pytest.fixture(scope="module")
def optuna_db(pg_server):
    """The workers' study storage (the database side: a password user, scram-sha-256)."""
    return pg_server.create_database(f"optuna_{uuid.uuid4().hex[:8]}")


def as_user(tracker, user: str | None, password: str | None, monkeypatch) -> MlflowClient:
    """This process and the commands it starts talk to `tracker` as `user` (anonymous when None)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)
    for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    import mlflow

    mlflow.set_tracking_uri(tracker.uri)
    return MlflowClient(tracker.uri)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """One feature cache for the module's commands: the a20 features are built once."""
    return tmp_path_factory.mktemp("features")


def cli(tmp_path, features, module, *args, timeout=300):
    """`python -m MODULE ARGS` as a worker starts it: credentials in the environment only."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIRECTION_CACHE_DIR": str(features)}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=timeout)
    OUTPUTS.extend((proc.stdout, proc.stderr))
    return proc


def all_runs(client):
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


def test_an_anonymous_request_is_refused(locked):
    api = f"{locked.uri}/api/2.0/mlflow/experiments/search"
    assert requests.get(api, params={"max_results": 5}, timeout=30).status_code == 401
    wrong = ("worker", "not-the-pw-123")
    assert requests.get(api, params={"max_results": 5}, auth=wrong, timeout=30).status_code == 401
    assert requests.get(api, params={"max_results": 5}, auth=("worker", WORKER_PW), timeout=30).status_code == 200


def test_a_worker_runs_a_study_to_the_end(locked, optuna_db, features, monkeypatch, tmp_path):
    """With only a user's rights the worker creates the project's experiment (so owns it) and runs a
    study to the end."""
    client = as_user(locked, "worker", WORKER_PW, monkeypatch)
    study = cli(tmp_path, features, "hpo", *TINY, "--budgets", "20k,50k", "--trials", "2", "--storage", optuna_db)
    assert study.returncode == 0, study.stderr[-3000:]
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment.tags[tracking.KIND_TAG] == tracking.KIND
    assert client.get_experiment("0").name == "Default"  # nobody's experiment renamed
    runs = all_runs(client)
    assert sorted(r.data.tags["kind"] for r in runs) == ["study", "trial", "trial"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert f"browse {locked.uri}/#/experiments/{experiment.experiment_id}?" in study.stdout


def test_a_worker_promotes_the_study(locked, optuna_db, features, monkeypatch, tmp_path):
    """`training.promote` as the worker: the seeds' runs, the pyfunc uploaded through the server, a new
    registered model (the worker owns it) and its `champion` alias."""
    client = as_user(locked, "worker", WORKER_PW, monkeypatch)
    promoted = cli(tmp_path, features, "training.promote", "--study", STUDY, "--storage", optuna_db, "--name", MODEL,
                   "--seeds", "1", "--max-epochs", "2")
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"


def champion(client: MlflowClient) -> str:
    """The `champion` of MODEL (the worker registers a version of one of its runs when the slow promotion
    test has not)."""
    if not client.search_registered_models(f"name = '{MODEL}'"):
        run = client.create_run(client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id)
        client.set_terminated(run.info.run_id)
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", version.version)
    return client.get_model_version_by_alias(MODEL, "champion").version


def test_a_read_only_user_cannot_move_the_champion(locked, monkeypatch):
    version = champion(as_user(locked, "worker", WORKER_PW, monkeypatch))
    client = as_user(locked, "viewer", VIEWER_PW, monkeypatch)
    assert client.get_model_version_by_alias(MODEL, "champion").version == version  # reading is allowed
    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(MODEL, "champion", version)
    assert refused.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException):
        client.delete_registered_model_alias(MODEL, "champion")
    with pytest.raises(MlflowException):
        client.create_model_version(MODEL, "runs:/x/model")
    # nor run anything in the project's experiment: every command says so before it opens a run
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    with pytest.raises(tracking.TrackingRefused) as told:
        tracking.experiment_id()
    assert str(told.value) == (
        f"user 'viewer' may not write to experiment 'direction' (id {experiment}) on the MLflow tracking server "
        f"{locked.uri}: ask its admin for EDIT permission on it, or set MLFLOW_EXPERIMENT_NAME to an experiment "
        "you may write to")
    assert client.get_model_version_by_alias(MODEL, "champion").version == version
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == int(version)


def test_promoting_into_a_model_another_user_owns_is_refused_before_training(locked, features, monkeypatch,
                                                                             tmp_path):
    """EDIT on the experiment but only the default READ on MODEL (the worker's): one line before any seed
    trains, no run, no version."""
    from training.config import RunConfig

    version = champion(as_user(locked, "worker", WORKER_PW, monkeypatch))
    admin = as_user(locked, "admin", ADMIN_PW, monkeypatch)
    locked.create_user("editor", EDITOR_PW)
    locked.grant("editor", "experiment", admin.get_experiment_by_name(tracking.EXPERIMENT).experiment_id, "EDIT")
    before = {r.info.run_id for r in all_runs(admin)}
    config = tmp_path / "config.json"
    config.write_text(RunConfig().override({"data.tier": "a20", "data.input_size": 16}).to_json())
    as_user(locked, "editor", EDITOR_PW, monkeypatch)
    refused = cli(tmp_path, features, "training.promote", "--use-best-from", str(config), "--name", MODEL,
                  "--seeds", "1")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: user 'editor' may not add a version to registered model '{MODEL}' on the MLflow tracking server "
        f"{locked.uri}: ask its admin for EDIT permission on it, or promote under another --name")
    assert "): training" not in refused.stdout  # no seed trained ("seed 42 (1 of 1): training")
    as_user(locked, "admin", ADMIN_PW, monkeypatch)
    assert {r.info.run_id for r in all_runs(admin)} == before
    assert len(admin.search_model_versions(f"name = '{MODEL}'")) == int(version)
    assert admin.get_model_version_by_alias(MODEL, "champion").version == version


def test_a_worker_with_a_wrong_password_gets_one_line_and_leaves_nothing(locked, optuna_db, features, monkeypatch,
                                                                          tmp_path):
    admin = as_user(locked, "admin", ADMIN_PW, monkeypatch)
    before = {r.info.run_id for r in all_runs(admin)}
    as_user(locked, "worker", "wrong-password-1234", monkeypatch)
    worker = cli(tmp_path, features, "hpo", *TINY, "--budgets", "20k,50k", "--trials", "2", "--storage", optuna_db,
                 "--study-name", "refused")
    assert worker.returncode == 2
    assert worker.stderr.strip().splitlines() == [
        f"error: the MLflow tracking server {locked.uri} refused user 'worker' (401: a wrong password or an "
        "unknown user): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of that server"]
    as_user(locked, None, None, monkeypatch)  # and without credentials
    with pytest.raises(tracking.TrackingRefused) as told:
        tracking.experiment_id()
    assert str(told.value) == (f"the MLflow tracking server {locked.uri} asks who you are (401): set "
                               "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment")
    as_user(locked, "admin", ADMIN_PW, monkeypatch)
    runs = all_runs(admin)
    assert {r.info.run_id for r in runs} == before
    assert "RUNNING" not in {r.info.status for r in runs}
    assert "refused" not in optuna.get_all_study_names(open_storage(optuna_db)[0])


def test_credentials_that_stop_passing_end_a_run_with_one_line(locked, monkeypatch):
    """A user whose password the admin changes while a run is open: the next write is refused, and the run
    ends in `TrackingRefused` (the 401's one line), not in the error of the failed attempt to close it."""
    locked.create_user("leaver", LEAVER_PW)
    client = as_user(locked, "leaver", LEAVER_PW, monkeypatch)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "leaver")  # one the user creates, so owns
    with pytest.raises(tracking.TrackingRefused) as told, tracking.run_context(kind="train") as run:
        client.log_metric(run.info.run_id, "x", 1.0)
        locked.admin_request("/api/2.0/mlflow/users/update-password", "PATCH", username="leaver",
                             password=CHANGED_PW)
        client.log_metric(run.info.run_id, "x", 2.0)
    assert str(told.value) == (f"the MLflow tracking server {locked.uri} refused user 'leaver' (401: a wrong "
                               "password or an unknown user): set MLFLOW_TRACKING_USERNAME and "
                               "MLFLOW_TRACKING_PASSWORD to a user of that server")
    admin = as_user(locked, "admin", ADMIN_PW, monkeypatch)
    assert [m.value for m in admin.get_metric_history(run.info.run_id, "x")] == [1.0]


def test_a_worker_whose_password_changes_mid_study_stops_and_the_study_goes_on(locked, optuna_db, features,
                                                                              monkeypatch, tmp_path):
    """`expiring` runs a study in its own experiment; once a trial's run is open, the admin changes its
    password: it stops with the 401's one line, its trial failed and not counted. `worker` (granted EDIT)
    then finishes the study: the refused trial's run closed, nothing RUNNING."""
    locked.create_user("expiring", EXPIRING_PW)
    client = as_user(locked, "expiring", EXPIRING_PW, monkeypatch)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "expiring")
    experiment = tracking.experiment_id()
    args = [*TINY, "--max-epochs", "6", "--budgets", "20k", "--trials", "3", "--storage", optuna_db,
            "--study-name", "expiring", "--no-pruning"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIRECTION_CACHE_DIR": str(features)}
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "hpo", *args], cwd=tmp_path, env=env, stderr=err,
                                stdout=subprocess.DEVNULL)
    try:
        while not client.search_runs([experiment], "tags.kind = 'trial' and attributes.status = 'RUNNING'"):
            assert proc.poll() is None, (tmp_path / "err").read_text()[-3000:]
            time.sleep(0.5)
        locked.admin_request("/api/2.0/mlflow/users/update-password", "PATCH", username="expiring",
                             password=CHANGED_PW)
        assert proc.wait(timeout=300) == 2
    finally:
        proc.kill()
    stderr = (tmp_path / "err").read_text()
    OUTPUTS.append(stderr)
    assert stderr.strip().splitlines()[-1].startswith(f"error: the MLflow tracking server {locked.uri} refused "
                                                      "user 'expiring' (401")
    storage = open_storage(optuna_db)[0]
    (refused,) = [t for t in optuna.load_study(study_name="expiring", storage=storage).trials
                  if TrialRecord.of(t).failed_reason == "refused by the tracking server"]
    locked.grant("worker", "experiment", experiment, "EDIT")
    as_user(locked, "worker", WORKER_PW, monkeypatch)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "expiring")
    assert cli(tmp_path, features, "hpo", *args).returncode == 0
    study = optuna.load_study(study_name="expiring", storage=storage)
    assert len([t for t in study.trials if TrialRecord.of(t).failed_reason is None]) == 3
    runs = MlflowClient(locked.uri).search_runs([experiment], "tags.kind = 'trial'")
    assert "RUNNING" not in {r.info.status for r in runs}
    (run,) = [r for r in runs if r.data.tags["trial_number"] == str(refused.number)]
    assert run.info.status == "FAILED"


def test_no_password_in_any_log_tag_param_artifact_or_output(locked, monkeypatch):
    admin = as_user(locked, "admin", ADMIN_PW, monkeypatch)
    runs = all_runs(admin)
    assert len(runs) >= 3  # the study's: the store searched is not empty
    stored = [locked.log.read_text(), *OUTPUTS]
    for run in runs:
        stored += [*run.data.params.values(), *run.data.tags.values(), *run.data.params, *run.data.tags]
    for experiment in admin.search_experiments():
        stored += [*experiment.tags.values(), experiment.artifact_location]
    for version in admin.search_model_versions(f"name = '{MODEL}'"):
        stored += [*version.tags.values(), version.description or "", version.source]
    for path in locked.artifacts.rglob("*"):
        if path.is_file():
            stored.append(path.read_bytes().decode("latin-1"))
    assert len(OUTPUTS) >= 4
    for secret in SECRETS:
        assert not [text[:200] for text in stored if secret in text], secret
