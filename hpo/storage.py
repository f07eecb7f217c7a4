"""Where studies live. Default: Optuna's journal file `optuna.journal` in the working directory (an
append-only log under a file lock: safe for several processes on one machine). A URL with `://` is an
RDB storage (`sqlite:///studies.db`, `postgresql://user:pass@host/db` for workers on several machines);
any other value is a journal file path. Passwords never appear in what is printed or logged.

PostgreSQL goes through psycopg 3: `postgresql://` (and `postgres://`) URLs are opened as
`postgresql+psycopg://`. Connections suit long studies: checked before use (`pool_pre_ping`), recycled,
with TCP keepalives both ways, and every storage call is retried on transient errors (server restart,
network blip, SQLite's busy lock) for up to `DIRECTION_DB_RETRY_S` seconds (default 300, below the
recovery grace of hpo/recovery.py, so that a worker that waits out an outage is not judged dead).
Creating the schema of a new PostgreSQL database is serialised with an advisory lock (several workers
starting at once on an empty database would race in `CREATE TABLE`).

`Admission` makes "does the study need another trial?" and creating that trial one step across workers
(a PostgreSQL advisory lock, or a file lock on the journal or SQLite file), so a study ends with exactly
`--trials` trials however many workers share it.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage, _CachedStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from conventions.cli import mask
from conventions.errors import UserError
from hpo.settings import DEFAULT_STORAGE, env_seconds

DB_RETRY_S = 300.0
ADMISSION_NOTICE_S = 60.0  # a worker waiting this long for admission says so, once
_POSTGRES = ("postgresql://", "postgres://")


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of a storage URL: `postgresql://` and `postgres://` use psycopg 3."""
    for prefix in _POSTGRES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres://"))


def open_storage(url: str | None, must_exist: bool = False) -> tuple[BaseStorage, str]:
    """The storage and its printable name; UserError (password masked) when it cannot be opened.
    `must_exist`: a journal file that is not there is an error instead of being created."""
    url = url or DEFAULT_STORAGE
    shown = mask(url)
    if must_exist and "://" not in url and not Path(url).is_file():
        raise UserError(f"no study storage at {shown}: run phase 1 first, or pass its --storage")
    try:
        if "://" in url:
            return RetryingStorage(_CachedStorage(_rdb(engine_url(url))), shown), shown
        path = Path(url)
        if path.is_dir():
            raise UserError(f"{path} is a directory, not a journal file")
        if not path.parent.is_dir():
            raise UserError(f"directory {path.parent} does not exist")
        if path.is_file():
            _check_journal(path)
        return JournalStorage(JournalFileBackend(str(path))), shown
    except Exception as err:  # SQLAlchemy, driver and OS errors come in many classes
        reason = mask(str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise UserError(f"cannot open storage {shown}: {reason}") from None


def _check_journal(path: Path) -> None:
    """Every line of an existing file is a journal operation, else `UserError`: Optuna would append its own
    to whatever the file holds (it reads a bad last line as a write in progress)."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                ok = not line.strip() or "op_code" in json.loads(line)
            except (ValueError, TypeError):  # JSONDecodeError, UnicodeDecodeError; `in` on a non-dict
                ok = False
            if not ok:
                raise UserError(f"{path} is not an Optuna journal file (line {number}); pass another --storage")


def _rdb(url: str) -> RDBStorage:
    if not _is_postgres(url):
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    with _pg_advisory_lock(url, _key("optuna schema")):  # the first workers on an empty database
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url))


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # several processes on one SQLite file: wait for the lock instead of failing at once
        return {"connect_args": {"timeout": 60}}
    if _is_postgres(url):
        return {"pool_pre_ping": True, "pool_recycle": 1800, "connect_args": _pg_connect_args()}
    return {"pool_pre_ping": True, "pool_recycle": 1800}


def _pg_connect_args() -> dict:
    # client keepalives find a dead server; the server's (options) end the session of a vanished worker,
    # and with it any advisory lock it held
    return {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3, "application_name": "direction-hpo",
            "options": "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"}


def _key(name: str) -> int:
    """A 64-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256(f"direction-research:{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _pg_advisory_lock(url: str, key: int):
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=_pg_connect_args())
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            yield
            # closing the connection releases the lock
    finally:
        engine.dispose()


def db_retry_s() -> float:
    return env_seconds("DIRECTION_DB_RETRY_S", DB_RETRY_S, zero_ok=True)


def transient(err: BaseException) -> bool:
    """A lost or refused connection, a server restarting, a deadlock or SQLite's busy lock: worth a retry."""
    from sqlalchemy import exc

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, exc.OperationalError | exc.InterfaceError):
            return True
        if isinstance(err, exc.DBAPIError) and err.connection_invalidated:
            return True
        err = err.__cause__ or err.__context__
    return False


def retrying(call, shown: str, what: str, patience: float | None = None):
    """`call()`, retried with backoff (0.5 s doubling to 10 s) while it fails transiently, for at most
    `patience` seconds (DIRECTION_DB_RETRY_S); one line on stderr per outage."""
    patience = db_retry_s() if patience is None else patience
    deadline, delay, attempt = time.monotonic() + patience, 0.5, 0
    while True:
        try:
            result = call(attempt)
        except Exception as err:
            if not transient(err) or time.monotonic() + delay > deadline:
                raise
            if attempt == 0:
                print(f"storage {shown} unavailable during {what} ({_reason(err)}): retrying for up to "
                      f"{patience:.0f} s", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay, attempt = min(delay * 2, 10.0), attempt + 1
            continue
        if attempt:
            print(f"storage {shown} back after {attempt} retries", file=sys.stderr, flush=True)
        return result


def _reason(err: BaseException) -> str:
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip().splitlines()
    return mask(f"{type(root).__name__}: {text[0]}" if text else type(root).__name__)


class RetryingStorage(BaseStorage):
    """An RDB storage whose every call is retried on transient errors (see `retrying`).

    Retrying a write whose commit reached the server but whose answer was lost is safe: attributes,
    params and intermediate values are set to the same value again; a trial state that was already set
    reads as done; a trial created twice is left RUNNING without a worker, and recovery fails it."""

    def __init__(self, inner: BaseStorage, shown: str):
        self.inner, self.shown = inner, shown

    def _call(self, name: str, *args, **kwargs):
        return retrying(lambda attempt: getattr(self.inner, name)(*args, **kwargs), self.shown, name)

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        def call(attempt: int) -> bool:
            try:
                return self.inner.set_trial_state_values(trial_id, state, values)
            except UpdateFinishedTrialError:
                if attempt and self.inner.get_trial(trial_id).state == state:
                    return True  # the first try was committed, its answer lost
                raise
        return retrying(call, self.shown, "set_trial_state_values")


def _forward(name: str):
    def method(self, *args, **kwargs):
        return self._call(name, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = getattr(BaseStorage, name).__doc__
    return method


for _name in [n for n in vars(BaseStorage) if not n.startswith("_") and callable(getattr(BaseStorage, n))]:
    if _name not in vars(RetryingStorage):
        setattr(RetryingStorage, _name, _forward(_name))
abc.update_abstractmethods(RetryingStorage)


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


class Admission:
    """One worker at a time from "does the study need another trial?" to that trial existing. Across
    machines on PostgreSQL (an advisory lock, released by the server when the worker's connection dies);
    on one machine for a journal or SQLite file (a `flock` on it); other RDB storages are not locked.
    A worker waits as long as the lock is held: the kernel releases a dead process's `flock`, and the server
    ends a vanished machine's session (its keepalives, `_pg_connect_args`) and with it the advisory lock.
    `release` may be called any number of times."""

    def __init__(self, url: str | None, study_name: str):
        self.url, self.study_name = url or DEFAULT_STORAGE, study_name
        self.shown = mask(self.url)
        self._release = None

    def __enter__(self) -> Admission:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.release()
        if _is_postgres(self.url):
            self._release = retrying(lambda _: self._pg(), self.shown, "admission")
        elif "://" not in self.url or self.url.startswith("sqlite:///"):
            path = self.url.removeprefix("sqlite:///") if "://" in self.url else self.url
            if Path(path).is_file():
                self._release = self._flock(path)

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            with contextlib.suppress(Exception):  # a lost connection has released the lock already
                release()

    def _pg(self):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        engine = sqlalchemy.create_engine(engine_url(self.url), poolclass=NullPool, connect_args=_pg_connect_args())
        conn = engine.connect()
        key = _key(f"admission:{self.study_name}")
        waiting = self._waiting()
        try:
            while not conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                conn.rollback()
                next(waiting)
                time.sleep(0.05)
            conn.commit()
        except BaseException:
            conn.close()
            engine.dispose()
            raise

        def release() -> None:
            try:
                conn.close()
            finally:
                engine.dispose()
        return release

    def _flock(self, path: str):
        fd = os.open(path, os.O_RDONLY)
        waiting = self._waiting()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                next(waiting)
                time.sleep(0.02)
        return lambda: os.close(fd)  # closing releases the lock

    def _waiting(self):
        """Advanced once per failed try: after `ADMISSION_NOTICE_S` it says once on stderr who is waited for."""
        since = time.monotonic()
        while time.monotonic() - since < ADMISSION_NOTICE_S:
            yield
        print(f"waiting for study {self.study_name!r}'s admission lock on {self.shown}: another worker holds it",
              file=sys.stderr, flush=True)
        while True:
            yield
