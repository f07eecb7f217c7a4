"""Many machines: `python -m hpo` workers sharing one study on a real PostgreSQL, logging through a real
`mlflow server` (over PostgreSQL, artifacts proxied), with workers killed and the database restarted.

"Another machine" is a worker with its own `DIRECTION_WORKER_HOST`: its pid means nothing here, so a
trial it leaves RUNNING is judged dead from its heartbeat in the storage alone. Heartbeats every second
and a grace of 8 s stand for the 60 s and 600 s of a real study."""

import os
import signal
import subprocess
import sys
import time
import uuid

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.storage import open_storage
from hpo.trial_record import TrialRecord
from tests.conftest import REPO
from tests.servers import PASSWORD
from training import tracking

TINY = ["--model", "itransformer", "--data-tier", "a20", "--input-size", "16", "--batch-size", "256",
        "--max-epochs", "2", "--accelerator", "cpu", "--budgets", "20k,50k"]
STUDY = "itransformer-a20-L16"
FAST = {"DIRECTION_HEARTBEAT_S": "1", "DIRECTION_GRACE_S": "8"}
# import what a worker needs, wait for the wall-clock second in argv[1], then run `python -m hpo ARGS`
SYNCED = ("import runpy, sys, time\n"
          "import hpo.study, training.train\n"
          "start = float(sys.argv[1])\n"
          "time.sleep(max(0.0, start - time.time()))\n"
          "sys.argv = ['hpo', *sys.argv[2:]]\n"
          "runpy.run_module('hpo', run_name='__main__')\n")


@pytest.fixture
def servers(pg_server, tracking_server, monkeypatch, tmp_path):
    """This test's own Optuna database and MLflow experiment on the session's servers."""
    name = f"t{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    mlflow.set_tracking_uri(tracking_server.uri)
    # created (and tagged) before the workers: every worker checks the experiment at start, and MLflow's
    # create-or-tag is not atomic when four do it in the same second
    tracking.experiment_id()
    return url


class Worker:
    """`python -m hpo ARGS` in `cwd`, output to files (four chatty workers would fill pipes)."""

    def __init__(self, cwd, args, name, env=None, synced_at=None):
        self.name, self.out, self.err = name, cwd / f"{name}.out", cwd / f"{name}.err"
        cmd = ([sys.executable, "-c", SYNCED, str(synced_at), *args] if synced_at is not None
               else [sys.executable, "-m", "hpo", *args])
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{self.name} still running after {timeout} s:\n{self.stderr()[-3000:]}")

    def stdout(self):
        return self.out.read_text()

    def stderr(self):
        return self.err.read_text()


def wait_all(workers, timeout=400):
    deadline = time.monotonic() + timeout
    for w in workers:
        rc = w.wait(max(1.0, deadline - time.monotonic()))
        assert rc == 0, f"{w.name} exited {rc}:\n{w.stderr()[-4000:]}"


def load(url):
    return optuna.load_study(study_name=STUDY, storage=open_storage(url)[0])


def counted(study):
    return [t for t in study.trials if t.state != TrialState.WAITING and TrialRecord.of(t).counts]


def runs_of_test():
    client = MlflowClient()
    exp = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    return client.search_runs([exp.experiment_id], max_results=1000)


def check_study_and_runs(study, trials):
    """Exactly `trials` counted; numbers unique; nothing RUNNING; one parent, every trial run nested under
    it and closed; no password in any param or tag."""
    states = [(t.number, t.state.name, TrialRecord.of(t).failed_reason) for t in study.trials]
    assert len(counted(study)) == trials, states
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    runs = runs_of_test()
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "study"]
    children = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [t.number for t in study.trials]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert "RUNNING" not in {r.info.status for r in runs}
    assert parent.info.status == "FINISHED"
    for r in runs:
        for value in [*r.data.params.values(), *r.data.tags.values()]:
            assert PASSWORD not in value, (r.info.run_id, value)
    assert parent.data.tags["storage"].startswith("postgresql://direction:***@127.0.0.1:")
    return parent, {int(r.data.tags["trial_number"]): r for r in children}


def running_trial_of(url, host, deadline):
    """Wait for a RUNNING trial with an MLflow run whose worker names `host`; returns it."""
    storage = open_storage(url)[0]
    while time.monotonic() < deadline:
        try:
            study_id = storage.get_study_id_from_name(STUDY)
        except KeyError:
            time.sleep(0.5)
            continue
        for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
            if (r := TrialRecord.of(t)).worker is not None and r.worker.host == host and r.mlflow_run_id is not None:
                return t
        time.sleep(0.2)
    pytest.fail(f"no running trial of worker {host}")


@pytest.mark.slow  # minutes of several `python -m hpo` processes; CI runs it (-m slow)
def test_four_workers_start_at_once_one_killed_on_another_machine_and_restarted(servers, tmp_path,
                                                                                 tracking_server):
    """Four workers enter `python -m hpo` in the same second (the study and its parent created once); the one
    on "machine-b" is SIGKILLed mid-trial and the command started again on "machine-c"."""
    trials = 6
    args = [*TINY, "--trials", str(trials), "--storage", servers]
    start = time.time() + 20  # time for four interpreters to import torch, Lightning, MLflow and Optuna
    workers = [Worker(tmp_path, args, f"w{i}", FAST, synced_at=start) for i in range(3)]
    victim = Worker(tmp_path, args, "victim", {**FAST, "DIRECTION_WORKER_HOST": "machine-b"}, synced_at=start)
    killed = running_trial_of(servers, "machine-b", time.monotonic() + 300)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    # the same command started again on a third machine: no one can see that machine-b's pid is gone
    again = Worker(tmp_path, args, "again", {**FAST, "DIRECTION_WORKER_HOST": "machine-c"})
    wait_all([*workers, again])

    study = load(servers)
    trial = study.trials[killed.number]
    assert trial.state == TrialState.FAIL and "no heartbeat for" in TrialRecord.of(trial).failed_reason
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted(study)), [
        (t.number, t.state.name, TrialRecord.of(t).error) for t in counted(study)]
    parent, runs = check_study_and_runs(study, trials)
    assert runs[killed.number].info.status == "FAILED"
    assert runs[killed.number].data.tags["trial_state"] == "FAIL"
    outs = [w.stdout() for w in [*workers, victim]]
    assert sum(f"study {STUDY!r} created in" in o for o in outs) == 1, outs
    assert all(f"MLflow: parent run {parent.info.run_id}" in o for o in [*outs[:3], again.stdout()])
    everything = "".join(w.stdout() + w.stderr() for w in [*workers, victim, again])
    assert PASSWORD not in everything and "direction:***@" in everything
    assert f"trials {killed.number} were left RUNNING by a dead worker" in everything
    # artifacts went through the server: nothing under the workers' directory, the plots on the server's side
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    plots = {p.name for p in tracking_server.artifacts.rglob(f"{parent.info.run_id}/artifacts/plots/*.png")}
    assert "optimization_history.png" in plots


@pytest.mark.slow  # minutes of several `python -m hpo` processes; CI runs it (-m slow)
def test_postgres_restarted_mid_study(servers, tmp_path, pg_server):
    trials = 3
    args = [*TINY, "--trials", str(trials), "--storage", servers]
    workers = [Worker(tmp_path, args, f"w{i}", FAST) for i in range(2)]
    deadline = time.monotonic() + 300
    storage = open_storage(servers)[0]
    pids = {w.proc.pid for w in workers}
    while True:  # restart once both workers are in the study and a trial is training, inside its MLflow run
        assert time.monotonic() < deadline, "no trial started on each worker"
        try:
            so_far = storage.get_all_trials(storage.get_study_id_from_name(STUDY))
        except KeyError:
            so_far = []
        joined = {TrialRecord.of(t).worker.pid for t in so_far if TrialRecord.of(t).worker is not None}
        training = [t for t in so_far if t.state == TrialState.RUNNING and TrialRecord.of(t).mlflow_run_id]
        if pids <= joined and training:
            break
        time.sleep(0.2)
    pg_server.restart()
    wait_all(workers)

    study = load(servers)
    # each trial survived the restart, or failed cleanly (its error recorded, its run closed) and counted
    for t in study.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) or TrialRecord.of(t).error is not None, t
    check_study_and_runs(study, trials)


def test_postgres_urls_open_with_psycopg_and_never_show_the_password(pg_server):
    from conventions.cli import mask
    from conventions.errors import UserError
    from hpo.storage import engine_url

    url = pg_server.url("optuna")
    assert engine_url(url) == pg_server.url("optuna", "postgresql+psycopg")
    assert engine_url(url.replace("postgresql://", "postgres://")) == engine_url(url)
    assert engine_url("postgresql+psycopg2://u:p@h/d") == "postgresql+psycopg2://u:p@h/d"  # a driver named: kept
    storage, shown = open_storage(url)
    assert shown == mask(url) and PASSWORD not in shown
    assert storage.inner._backend.engine.url.drivername == "postgresql+psycopg"
    study = optuna.create_study(storage=storage, study_name=f"s{uuid.uuid4().hex[:8]}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2
    wrong = url.replace(PASSWORD, "not-the-password")
    with pytest.raises(UserError) as err:
        open_storage(wrong)
    text = str(err.value)
    assert text.startswith("cannot open storage postgresql://direction:***@127.0.0.1:") and "\n" not in text
    assert "not-the-password" not in text and "password authentication failed" in text


def test_storage_calls_wait_out_a_database_outage(pg_server, capfd):
    """Every call of a study retries while the server is down (2 s here) and goes on when it is back."""
    import threading

    storage, _ = open_storage(pg_server.url("optuna"))
    study = optuna.create_study(storage=storage, study_name=f"s{uuid.uuid4().hex[:8]}")

    def outage():
        pg_server.stop()
        time.sleep(2)
        pg_server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    made = 0
    while thread.is_alive() or made < 20:  # (creating a trial has retries of its own in Optuna)
        study.set_user_attr("calls", made)
        made += 1 + len(study.get_trials(deepcopy=False))
        time.sleep(0.02)
    thread.join()
    study.enqueue_trial({"x": 0.5})
    assert study.user_attrs["calls"] == made - 1 and len(study.trials) == 1
    err = capfd.readouterr().err
    assert "unavailable during" in err and "back after" in err and PASSWORD not in err


def test_admission_is_one_worker_at_a_time(pg_server, tmp_path, monkeypatch, capfd):
    """Counting the study and creating its next trial: one worker at a time, on PostgreSQL across machines,
    on a journal file within one (a lock on the whole file); a worker waits as long as it takes, and says so."""
    import threading

    from hpo import storage
    from hpo.storage import Admission

    monkeypatch.setattr(storage, "ADMISSION_NOTICE_S", 0.2)

    journal = tmp_path / "optuna.journal"
    journal.write_text("")
    for url in (pg_server.url("optuna"), str(journal)):
        first, second = Admission(url, "s"), Admission(url, "s")
        order = []
        first.acquire()
        if url.startswith("postgresql"):  # on PostgreSQL each study has its own lock: free while "s" is held
            other = Admission(url, "another study")
            other.acquire()
            other.release()

        def contend(second=second, order=order):
            with second:
                order.append("second")

        thread = threading.Thread(target=contend)
        thread.start()
        time.sleep(0.5)
        order.append("first")
        first.release()
        first.release()  # idempotent
        thread.join(10)
        assert order == ["first", "second"], url
        assert capfd.readouterr().err.count("waiting for study 's'") == 1, url
