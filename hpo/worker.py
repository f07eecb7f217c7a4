"""The worker running a trial: its host, pid and process start time (which guards against pid reuse), as
recorded on the trial (`hpo.trial_record`) and judged by `hpo.recovery`."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


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
    """DIRECTION_WORKER_HOST when set, else the hostname and the pid namespace."""
    if os.environ.get("DIRECTION_WORKER_HOST", "").strip():
        return os.environ["DIRECTION_WORKER_HOST"].strip()
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
