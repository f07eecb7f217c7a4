"""Which RUNNING trials are stale: a dead worker on this host at once, another host's after the grace."""

import datetime
import signal
import subprocess
import time

from optuna.trial import TrialState, create_trial

from hpo.recovery import GRACE_S, Worker, _start_ticks, stale_reason


def running(**user_attrs):
    return create_trial(state=TrialState.RUNNING, user_attrs=user_attrs)


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
    alive = {"host": me.host, "pid": me.pid, "started": me.started}
    assert stale_reason(running(worker=alive, heartbeat=now), now) is None
    elsewhere = {"host": "other-host/1", "pid": 1, "started": "1"}
    assert stale_reason(running(worker=elsewhere, heartbeat=now - 60), now) is None
    assert "no heartbeat for" in stale_reason(running(worker=elsewhere, heartbeat=now - GRACE_S - 1), now)
    dead = {**alive, "started": "0"}
    assert "is gone" in stale_reason(running(worker=dead, heartbeat=now), now)
    started = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_S + 5)
    unknown = create_trial(state=TrialState.RUNNING)
    unknown.datetime_start = started
    assert "before it recorded its worker" in stale_reason(unknown, now)
