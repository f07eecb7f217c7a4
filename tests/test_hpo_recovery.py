"""Which RUNNING trials are stale: a dead worker on this host at once, another host's after the grace."""

import datetime
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo.recovery import (
    GRACE_S,
    Heartbeat,
    fail_stale_trials,
    stale_reason,
)
from hpo.trial_record import TrialRecord, TrialWriter
from hpo.worker import Worker, _start_ticks


def running(worker: Worker, heartbeat: float):
    return create_trial(state=TrialState.RUNNING, user_attrs=TrialRecord(worker=worker, heartbeat=heartbeat).attrs())


def test_a_killed_worker_on_this_host_is_gone_at_once_even_unreaped():
    me = Worker.me()
    assert not me.gone()
    proc = subprocess.Popen(["sleep", "30"])
    worker = Worker(me.host, proc.pid, _start_ticks(proc.pid))
    assert not worker.gone()
    proc.send_signal(signal.SIGKILL)
    time.sleep(0.3)
    assert worker.gone()  # a zombie until reaped: already gone
    proc.wait()
    assert worker.gone()
    assert Worker(me.host, me.pid, "1").gone()  # our pid with another start time: the pid was reused


def test_stale_reasons():
    now = time.time()
    me = Worker.me()
    alive = me
    assert stale_reason(running(worker=alive, heartbeat=now), now) is None
    elsewhere = Worker("other-host/1", 1, "1")
    assert stale_reason(running(worker=elsewhere, heartbeat=now - 60), now) is None
    assert "no heartbeat for" in stale_reason(running(worker=elsewhere, heartbeat=now - GRACE_S - 1), now)
    dead = Worker(me.host, me.pid, "0")
    assert "is gone" in stale_reason(running(worker=dead, heartbeat=now), now)
    started = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_S + 5)
    unknown = create_trial(state=TrialState.RUNNING)
    unknown.datetime_start = started
    assert "before it recorded its worker" in stale_reason(unknown, now)


def test_heartbeat_grace_and_host_from_the_environment(monkeypatch):
    from conventions.errors import UserError
    from hpo.recovery import check_timing, grace_s, heartbeat_s
    from hpo.worker import _host

    assert (heartbeat_s(), grace_s()) == (60.0, GRACE_S)
    default_host = _host()
    monkeypatch.setenv("DIRECTION_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("DIRECTION_GRACE_S", "3")
    monkeypatch.setenv("DIRECTION_WORKER_HOST", "machine-b")
    assert (heartbeat_s(), grace_s()) == (0.5, 3.0)
    check_timing()
    assert Worker.me().host == "machine-b" != default_host
    for name, value, message in (("DIRECTION_GRACE_S", "0.9", "at least twice"),
                                 ("DIRECTION_GRACE_S", "soon", "number of seconds"),
                                 ("DIRECTION_HEARTBEAT_S", "-1", "positive")):
        monkeypatch.setenv(name, value)
        with pytest.raises(UserError, match=message):
            check_timing()
        monkeypatch.setenv(name, {"DIRECTION_GRACE_S": "3", "DIRECTION_HEARTBEAT_S": "0.5"}[name])


def test_a_stale_heartbeat_is_dead_whatever_host_it_names(monkeypatch):
    """Liveness comes from the storage: a trial that stopped beating is failed even when its worker names our
    host and its pid is alive (a worker on another machine that happens to share our host identity)."""
    now = time.time()
    me = Worker.me()
    alive_here = me
    assert "no heartbeat for 11 s" in stale_reason(running(worker=alive_here, heartbeat=now - 11), now, grace=10)
    assert stale_reason(running(worker=alive_here, heartbeat=now - 9), now, grace=10) is None
    # another machine's dead pid is not checked here: the grace (from the environment) decides
    monkeypatch.setenv("DIRECTION_GRACE_S", "5")
    elsewhere = Worker("machine-b", 2 ** 22 + 1, "1")
    assert stale_reason(running(worker=elsewhere, heartbeat=now - 4), now) is None
    assert "no heartbeat" in stale_reason(running(worker=elsewhere, heartbeat=now - 6), now)


def test_fail_stale_trials_and_a_heartbeat_that_outlives_a_storage_error(monkeypatch):
    monkeypatch.setenv("DIRECTION_GRACE_S", "5")
    study = optuna.create_study()
    now = time.time()
    elsewhere = Worker("machine-b", 1, "1")
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5))
    for beat in (now - 60, now):
        trial_id = study._storage.create_new_trial(study._study_id)
        write = TrialWriter.stored(study._storage, trial_id)
        write.worker(elsewhere)
        write.beat(at=beat)
    assert fail_stale_trials(study, study._storage) == [1]
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING]
    assert TrialRecord.of(study.trials[1]).failed_reason.startswith("stale: no heartbeat for")

    trial = optuna.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, 2))
    calls = []
    real = trial.set_user_attr

    def flaky(key, value):
        calls.append(key)
        if len(calls) == 3:  # the first beat after entering: the storage is down
            raise RuntimeError("connection refused")
        real(key, value)

    monkeypatch.setattr(trial, "set_user_attr", flaky)
    with Heartbeat(trial, interval=0.05):
        time.sleep(0.4)
    assert calls.count("heartbeat") >= 4  # it kept beating after the failed beat
