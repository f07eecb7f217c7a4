"""Kill safety. A SIGKILLed worker leaves its Optuna trial RUNNING and the trial's MLflow run RUNNING.

Optuna 5's JournalStorage has no heartbeat (only RDBStorage does), so every trial records its worker
(host, pid and the process's start time, which guards against pid reuse) and a heartbeat every
`heartbeat_s()` seconds, as user attributes: this works on any storage, and across machines, since
liveness is read from the storage. A RUNNING trial is stale when its worker ran on this host and that
process is gone (detected at once, so rerunning a killed command recovers immediately), or when its
heartbeat is older than `grace_s()`, whatever host it names (a worker on another machine, or a live
process that stopped beating). Stale trials are marked FAIL (`failed_reason` says why) and their MLflow
runs FAILED with `trial_state=FAIL`. Trials that finished keep their state; trial numbers are never
reused; a stale trial does not count towards `--trials` (the study runs another) and a forced one is
enqueued again (hpo/study.py).

Settings (environment): `DIRECTION_HEARTBEAT_S` (default 60), `DIRECTION_GRACE_S` (default 600, at least
twice the heartbeat), `DIRECTION_WORKER_HOST` (the host identity a worker records; default hostname and
pid namespace: give each machine's workers a distinct one when hostnames may clash).
"""

from __future__ import annotations

import threading
import time

import optuna
from mlflow.tracking import MlflowClient
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from conventions.errors import UserError
from hpo.settings import env_seconds
from hpo.trial_record import TrialRecord, TrialWriter
from hpo.worker import Worker
from training import notes, study_tags

HEARTBEAT_S = 60.0
GRACE_S = 600.0


def heartbeat_s() -> float:
    """Seconds between a trial's heartbeats: DIRECTION_HEARTBEAT_S, default HEARTBEAT_S."""
    return env_seconds("DIRECTION_HEARTBEAT_S", HEARTBEAT_S)


def grace_s() -> float:
    """Seconds without a heartbeat after which a RUNNING trial is judged dead: DIRECTION_GRACE_S, default GRACE_S."""
    return env_seconds("DIRECTION_GRACE_S", GRACE_S)


def check_timing() -> None:
    """UserError unless the settings are usable: a grace of at least two heartbeats."""
    beat, grace = heartbeat_s(), grace_s()
    if grace < 2 * beat:
        raise UserError(f"DIRECTION_GRACE_S ({grace:g}) must be at least twice DIRECTION_HEARTBEAT_S ({beat:g})")


class Heartbeat:
    """Records the worker on the trial, then a heartbeat every `interval` seconds (default `heartbeat_s()`)
    until the block ends. A beat that fails (the storage unreachable beyond its retries) is skipped."""

    def __init__(self, trial: optuna.Trial, interval: float | None = None):
        self.trial, self.interval = trial, heartbeat_s() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial.number}")

    def __enter__(self) -> Heartbeat:
        write = TrialWriter(self.trial)
        write.worker(Worker.me())
        write.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                TrialWriter(self.trial).beat()
            except UpdateFinishedTrialError:  # another worker judged it stale; the objective will find out
                return
            except Exception:  # the storage is down: the next beat tries again
                continue


def stale_reason(trial: FrozenTrial, now: float, grace: float | None = None) -> str | None:
    grace = grace_s() if grace is None else grace
    record = TrialRecord.of(trial)
    worker, beat = record.worker, record.heartbeat
    if worker is not None and worker.gone():
        return f"its worker (pid {worker.pid}) is gone"
    if beat is not None and now - beat > grace:
        return f"no heartbeat for {now - beat:.0f} s"
    if worker is None and trial.datetime_start is not None and now - trial.datetime_start.timestamp() > grace:
        return "killed before it recorded its worker"
    return None


def fail_stale_trials(study: optuna.Study, storage: BaseStorage, grace: float | None = None) -> list[int]:
    """Mark stale RUNNING trials FAIL; returns their numbers. Safe when several workers do it at once."""
    grace = grace_s() if grace is None else grace
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, now, grace)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            TrialWriter.stored(storage, trial_id).failed(f"stale: {reason}")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        failed.append(trial.number)
    return failed


def close_orphan_runs(study: optuna.Study, parent_run_id: str) -> list[str]:
    """End the RUNNING MLflow trial runs under the study's parent whose Optuna trial has finished (their
    worker died): FAILED with `trial_state=FAIL` (or FINISHED with the trial's state), and the RUNNING runs
    nested under them (a walk-forward trial's folds) FAILED. Returns their ids.

    Only trials already finished in the snapshot taken first are touched, so a trial that another worker
    starts meanwhile keeps its run."""
    finished = {t.number: t.state for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.{study_tags.KIND} = '{study_tags.TRIAL}' "
        "and attributes.status = 'RUNNING'",
    )
    closed = []
    for run in runs:
        state = finished.get(int(run.data.tags.get(study_tags.TRIAL_NUMBER, -1)))
        if state is None:
            continue
        label = "FAIL" if state == TrialState.FAIL else state.name
        client.set_tag(run.info.run_id, "trial_state", label)
        tags = run.data.tags
        number = int(tags[study_tags.TRIAL_NUMBER])
        name = notes.trial_name(number, tags.get("budget"), tags.get("style"), label)
        client.set_tag(run.info.run_id, "mlflow.runName", name)
        if state == TrialState.FAIL:
            client.set_tag(run.info.run_id, "error", "the worker running this trial died")
        client.set_terminated(run.info.run_id, "FAILED" if state == TrialState.FAIL else "FINISHED")
        closed.append(run.info.run_id)
        for fold in client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}' "
                                       "and attributes.status = 'RUNNING'"):  # a walk-forward trial's fold
            client.set_tag(fold.info.run_id, "error", "the worker running this trial died")
            client.set_terminated(fold.info.run_id, "FAILED")
            closed.append(fold.info.run_id)
    return closed
