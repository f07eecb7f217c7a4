"""MLflow side of every command: the store check, the project's one experiment, the one run lifecycle
(`ending`, `run_context`), batched metrics, the dataset input, artifacts.

One experiment whatever the launch path: `MLFLOW_EXPERIMENT_ID` or `MLFLOW_EXPERIMENT_NAME` when set
(`mlflow run --experiment-name` sets the first; it honours the second), else `direction`. On a local
(sqlite) store, MLflow's default experiment (id 0, where `mlflow run` puts its runs) is renamed `direction`
on first use; on a tracking server, shared by users with their own rights, `direction` is used or created
(its creator owns it) and nobody else's experiment is renamed. It is tagged so that the MLflow UI opens it
as model training, not in its GenAI mode.

A server that refuses the user (401: no or wrong credentials; 403: no permission) is one `TrackingRefused`
error naming what to set or ask for, before any run is opened when the check at start fails, and as a run
ends when it happens later (credentials that expired).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytorch_lightning as pl
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Metric, Param, RunTag
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conventions.cli import mask
from conventions.errors import UserError
from training import study_tags
from training.config import RunConfig

# "Creating initial MLflow database tables..." on a new store: noise beside a one-line error
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
# MLflow's bar for every artifact a command reads back (a fold's predictions, a trial's in the audit): noise
# between the commands' own progress lines; a user who wants it sets the variable
os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")

EXPERIMENT = "direction"
DEFAULT_EXPERIMENT_ID = "0"
KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"  # the MLflow UI's "model training" mode
STORE_ATTEMPTS = 4  # tries to reach or set up the tracking store before it counts as unusable
DATASET_ATTEMPTS = 3  # tries to log a run's dataset (see log_dataset)
# MLflow's error codes for a server's 401 (who are you?) and 403 (you may not)
REFUSED = {"UNAUTHENTICATED": 401, "CUSTOMER_UNAUTHORIZED": 401, "PERMISSION_DENIED": 403}
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


class TrackingRefused(UserError):
    """The tracking server refused this user: 401 (no or wrong credentials) or 403 (no permission)."""


def experiment_id() -> str:
    """Check the tracking store (a `UserError` when it cannot be used or refuses this user) and return the
    experiment every run of this project goes to, creating, naming and tagging it on first use. Workers that
    start together race to do that: on one sqlite file they take turns (MLflow's table creation and
    migrations are not safe against a second process), elsewhere the loser tries again."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("file:") or "://" not in uri and not uri.startswith(("databricks", "sqlite")):
        raise UserError(f"tracking URI {mask(uri)}: MLflow's file store is not supported; use a database "
                        "(sqlite:///mlflow.db, the default) or a server (http://host:5000)")
    _reachable(uri)
    attempt = 0
    while True:
        try:
            with _sqlite_turn(uri):
                exp_id = _experiment_id(MlflowClient(), local=sqlite_file(uri) is not None)
            _writable(uri)
            return exp_id
        except UserError:
            raise
        except Exception as err:  # the store's own errors (MLflow, SQLAlchemy, OS, HTTP) come in many classes
            refused = refusal(err)
            if refused is not None:
                raise refused from None
            attempt += 1
            if attempt == STORE_ATTEMPTS:
                raise UserError(f"cannot use the MLflow tracking store {mask(uri)}: {_first_line(err)}") from None
            time.sleep(0.5 * attempt)


def _reachable(uri: str) -> None:
    """A tracking server that refuses or drops the connection is one error now, not after MLflow's retries
    (about 16 minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=10)
    except requests.RequestException as err:
        raise UserError(f"cannot reach the MLflow tracking server {mask(uri)}: {type(err).__name__}") from None


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI, None for other stores."""
    return Path(uri.removeprefix("sqlite:///").partition("?")[0]) if uri.startswith("sqlite:///") else None


def _writable(uri: str) -> None:
    """A sqlite store that cannot be written (a read-only file or directory) is one error before any run."""
    path = sqlite_file(uri)
    if path is not None and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise UserError(f"the MLflow tracking store {uri} is read-only here: runs cannot be written to it")


@contextlib.contextmanager
def _sqlite_turn(uri: str) -> Iterator[None]:
    """An exclusive `flock` on a sqlite store's file (created empty if missing, which sqlite reads as a new
    database) while the block runs; nothing for other stores. SQLite's own locks are `fcntl` locks, which a
    `flock` leaves alone."""
    path = sqlite_file(uri)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _experiment_id(client: MlflowClient, local: bool) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    given = os.environ.get("MLFLOW_EXPERIMENT_ID")  # `mlflow run` sets it (to 0 unless told otherwise)
    if (local and not name and given in (None, "", DEFAULT_EXPERIMENT_ID)
            and client.get_experiment_by_name(EXPERIMENT) is None
            and client.get_experiment(DEFAULT_EXPERIMENT_ID).name == "Default"):
        client.rename_experiment(DEFAULT_EXPERIMENT_ID, EXPERIMENT)  # local stores only: one user, every right
    experiment = client.get_experiment(given) if given else _named(client, name or EXPERIMENT)
    if experiment.tags.get(KIND_TAG) != KIND or not local:
        # on a server also the check that this user may write here: tagging an experiment takes the
        # permission that creating runs in it takes (EDIT), so a refusal comes before any run is opened
        try:
            client.set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
        except MlflowException as err:
            if err.error_code != "PERMISSION_DENIED":
                raise
            raise TrackingRefused(
                f"user {user()} may not write to experiment {experiment.name!r} (id {experiment.experiment_id}) "
                f"on the MLflow tracking server {mask(mlflow.get_tracking_uri())}: ask its admin for EDIT "
                "permission on it, or set MLFLOW_EXPERIMENT_NAME to an experiment you may write to") from None
    return experiment.experiment_id


def _named(client: MlflowClient, name: str):
    """The experiment `name`, created (tagged) when missing: on a basic-auth server its creator owns it."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        client.create_experiment(name, tags={KIND_TAG: KIND})
        experiment = client.get_experiment_by_name(name)
    return experiment


def user() -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return repr(user) if user else "(none: MLFLOW_TRACKING_USERNAME is not set)"


def refusal(err: BaseException | None) -> TrackingRefused | None:
    """The one-line error for a tracking server's 401 or 403 anywhere in `err`'s chain of causes (an MLflow
    REST error, or the HTTP error of an artifact upload or download), None for any other error."""
    import requests

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, TrackingRefused):
            return err
        status, what = None, None
        if isinstance(err, MlflowException):
            status = REFUSED.get(err.error_code)
            found = re.search(r"endpoint (\S+)", str(err.message))
            what = found.group(1) if found else None
        elif isinstance(err, requests.HTTPError) and err.response is not None:
            status = err.response.status_code if err.response.status_code in (401, 403) else None
            what = urllib.parse.urlparse(err.response.url).path
        if status is not None:
            return TrackingRefused(_refused(status, what))
        err = err.__cause__ or err.__context__
    return None


def _refused(status: int, what: str | None) -> str:
    server = f"the MLflow tracking server {mask(mlflow.get_tracking_uri())}"
    if status == 403:
        return (f"{server} refused user {user()} permission for {what or 'a request'} (403): ask its admin "
                "for that permission")
    if not os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return f"{server} asks who you are (401): set {CREDENTIALS} in the environment"
    return (f"{server} refused user {user()} (401: a wrong password or an unknown user): set {CREDENTIALS} "
            "to a user of that server")


def browse_hint(experiment: str) -> str:
    """How to look at the runs: the UI command (a server is its own UI) and the experiment's page in the
    model-training view (MLflow 3.17's UI opens experiments in its GenAI view unless the URL asks otherwise)."""
    uri = mask(mlflow.get_tracking_uri())
    page = f"/#/experiments/{experiment}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"browse {uri.rstrip('/')}{page}"
    return f"browse with `mlflow ui --backend-store-uri {uri}`, then open http://127.0.0.1:5000{page}"


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "message", "") or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def ending(run_id: str, close: Callable[[str], None] | None = None,
           finished_on: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """End a run by how the block ends: FINISHED (also on an exception in `finished_on`, e.g. a pruned
    trial), FAILED with an `error` tag on an exception, KILLED on Ctrl-C (Lightning turns Ctrl-C in `fit`
    into SystemExit; it is re-raised as KeyboardInterrupt). Never left RUNNING, unless the server refuses
    this user from then on (credentials that expired): that is raised as `TrackingRefused`, and the run is
    left to whoever may still write it. `close(status)` ends it (default: `set_terminated`)."""
    client = MlflowClient()
    status, refused = "FAILED", None
    try:
        yield
        status = "FINISHED"
    except finished_on:
        status = "FINISHED"
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        status = "KILLED"
        raise KeyboardInterrupt from err
    except Exception as err:
        refused = refusal(err)
        if refused is not None:  # nothing more can be written to the run: the one-line error says why
            raise refused from None
        client.set_tag(run_id, "error", f"{type(err).__name__}: {err}"[:4000])
        raise
    finally:
        try:
            if mlflow.active_run() is not None and mlflow.active_run().info.run_id == run_id:
                mlflow.end_run(status)
            elif close is not None:
                close(status)
            else:
                client.set_terminated(run_id, status)
        except Exception:
            if refused is None:
                raise


@contextlib.contextmanager
def run_context(
    *, kind: str, run_name: str | None = None, tags: dict | None = None, parent_run_id: str | None = None,
    experiment: str | None = None, finished_on: tuple[type[BaseException], ...] = (),
) -> Iterator[mlflow.ActiveRun]:
    """Log into the active run when the caller owns one (an HPO trial, tagged by its owner); otherwise
    start a run of this `kind` (nested under `parent_run_id` when given, in `experiment` when given, else
    in the project's) and end it as `ending` says.

    Under `mlflow run`, the first run started resumes the launcher's run (MLFLOW_RUN_ID)."""
    active = mlflow.active_run()
    if active is not None and parent_run_id is None:
        mlflow.set_tags(tags or {})
        yield active
        return
    exp_id = experiment or experiment_id()
    run = mlflow.start_run(
        run_name=run_name, nested=parent_run_id is not None or active is not None,
        parent_run_id=parent_run_id, tags={study_tags.KIND: kind, **(tags or {})},
        experiment_id=None if "MLFLOW_RUN_ID" in os.environ else exp_id,
    )
    with ending(run.info.run_id, finished_on=finished_on):
        yield run


def log_batch(run_id: str, metrics: dict[str, float] | None = None, step: int = 0,
              params: dict[str, object] | None = None, tags: dict[str, str] | None = None) -> None:
    """Many metrics, params and tags in one call (each separate call costs ~6 ms on sqlite)."""
    now = int(time.time() * 1000)
    MlflowClient().log_batch(
        run_id, metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def log_config(cfg: RunConfig, extra: dict[str, object] | None = None) -> None:
    log_batch(mlflow.active_run().info.run_id, params={**cfg.to_params(), **(extra or {})})
    mlflow.log_text(cfg.to_json(), "config.json")


def log_frame(frame: pd.DataFrame, artifact_path: str) -> None:
    """A table as a parquet artifact of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_path).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_path).parent))


def read_frame(run_id: str, artifact_path: str) -> pd.DataFrame:
    """A table a run logged with `log_frame`."""
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(MlflowClient().download_artifacts(run_id, artifact_path, tmp))


def log_dataset(*, source_path: str, name: str, digest: str, tags: dict[str, str]) -> None:
    """Record the data a run saw as an MLflow input: its source file, fingerprint, tier and dates."""
    dataset = MetaDataset(LocalArtifactDatasetSource(source_path), name=name, digest=digest[:36])
    for attempt in range(DATASET_ATTEMPTS):
        try:
            mlflow.log_input(dataset, context="training", tags=tags)
            return
        except MlflowException as err:
            # MLflow reads whether the dataset exists, then inserts it: of runs logging one new dataset at once
            # (workers that start together), the losers get BAD_REQUEST for a duplicate key and find it next time
            if err.error_code != "BAD_REQUEST" or attempt == DATASET_ATTEMPTS - 1:
                raise


class EpochLogger(pl.Callback):
    """Logs every `train/` and `val/` metric once per epoch, in one batched MLflow call."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.seconds = 0.0  # time spent in MLflow, for the logging-share benchmark

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        start = time.perf_counter()
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}
        if metrics:
            log_batch(self.run_id, metrics, step=trainer.current_epoch)
        self.seconds += time.perf_counter() - start
