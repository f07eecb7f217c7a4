"""Kill safety. A SIGKILLed worker leaves its Optuna trial RUNNING and the trial's MLflow run RUNNING.

Optuna 5's JournalStorage has no heartbeat (only RDBStorage does), so every trial records its worker
(host, pid and the process's start time, which guards against pid reuse) and a heartbeat every
`HEARTBEAT_S` seconds, as user attributes: this works on any storage. A RUNNING trial is stale when its
worker ran on this host and that process is gone (detected at once, so rerunning a killed command recovers
immediately), or when its heartbeat is older than `GRACE_S` (a worker on another host). Stale trials are
marked FAIL (`failed_reason` says why) and their MLflow runs FAILED with `trial_state=FAIL`. Trials that
finished keep their state; trial numbers are never reused; a forced config whose trial was killed is not
enqueued again (it ran, and failed).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

import optuna
from mlflow.tracking import MlflowClient
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

HEARTBEAT_S = 60.0
GRACE_S = 600.0
FAILED_REASON = "failed_reason"  # on trials whose worker died or was interrupted: they do not count as run


@dataclass(frozen=True)
class Worker:
    host: str  # hostname and pid namespace: two containers may share a hostname, never a namespace
    pid: int
    started: str | None  # process start time in clock ticks since boot (Linux), None elsewhere

    @classmethod
    def me(cls) -> Worker:
        return cls(_host(), os.getpid(), _start_ticks(os.getpid()))

    def gone(self) -> bool:
        """True when this worker ran here and its process no longer exists (False for other hosts)."""
        if self.host != _host():
            return False
        if self.started is not None:
            return _start_ticks(self.pid) != self.started
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _host() -> str:
    try:
        return f"{socket.gethostname()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """The process's start time, or None when it does not exist or is a zombie (killed, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after `(comm)`, which may hold spaces
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # fields 3 (state) and 22 (starttime)


class Heartbeat:
    """Records the worker on the trial, then a heartbeat every `interval` seconds until the block ends."""

    def __init__(self, trial: optuna.Trial, interval: float = HEARTBEAT_S):
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial.number}")

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr("worker", asdict(Worker.me()))
        self.trial.set_user_attr("heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except UpdateFinishedTrialError:  # another worker judged it stale; the objective will find out
                return


def stale_reason(trial: FrozenTrial, now: float, grace: float = GRACE_S) -> str | None:
    worker = trial.user_attrs.get("worker")
    beat = trial.user_attrs.get("heartbeat")
    if worker is not None and Worker(**worker).gone():
        return f"its worker (pid {worker['pid']}) is gone"
    if beat is not None and now - beat > grace:
        return f"no heartbeat for {now - beat:.0f} s"
    if worker is None and trial.datetime_start is not None and now - trial.datetime_start.timestamp() > grace:
        return "killed before it recorded its worker"
    return None


def fail_stale_trials(study: optuna.Study, storage: BaseStorage, grace: float = GRACE_S) -> list[int]:
    """Mark stale RUNNING trials FAIL; returns their numbers. Safe when several workers do it at once."""
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, now, grace)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, FAILED_REASON, f"stale: {reason}")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        failed.append(trial.number)
    return failed


def close_orphan_runs(study: optuna.Study, parent_run_id: str) -> list[str]:
    """End the RUNNING MLflow trial runs under the study's parent whose Optuna trial has finished (their
    worker died): FAILED with `trial_state=FAIL` (or FINISHED with the trial's state). Returns their ids.

    Only trials already finished in the snapshot taken first are touched, so a trial that another worker
    starts meanwhile keeps its run."""
    finished = {t.number: t.state for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.kind = 'trial' and attributes.status = 'RUNNING'",
    )
    closed = []
    for run in runs:
        state = finished.get(int(run.data.tags.get("trial_number", -1)))
        if state is None:
            continue
        label = "FAIL" if state == TrialState.FAIL else state.name
        client.set_tag(run.info.run_id, "trial_state", label)
        if state == TrialState.FAIL:
            client.set_tag(run.info.run_id, "error", "the worker running this trial died")
        client.set_terminated(run.info.run_id, "FAILED" if state == TrialState.FAIL else "FINISHED")
        closed.append(run.info.run_id)
    return closed
