"""Where studies live. Default: Optuna's journal file `optuna.journal` in the working directory (an
append-only log under a file lock: safe for several processes on one machine). A URL with `://` is an
RDB storage (`sqlite:///studies.db`, `postgresql://user:pass@host/db` for workers on several machines);
any other value is a journal file path. Passwords never appear in what is printed or logged."""

from __future__ import annotations

import re
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from datamodules.errors import UserError

DEFAULT_STORAGE = "optuna.journal"
_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]*)(@)")


def mask(url: str) -> str:
    """'postgresql://me:secret@db/x' -> 'postgresql://me:***@db/x'."""
    return _PASSWORD.sub(r"\1***\3", url)


def open_storage(url: str | None, must_exist: bool = False) -> tuple[BaseStorage, str]:
    """The storage and its printable name; UserError (password masked) when it cannot be opened.
    `must_exist`: a journal file that is not there is an error instead of being created."""
    url = url or DEFAULT_STORAGE
    shown = mask(url)
    if must_exist and "://" not in url and not Path(url).is_file():
        raise UserError(f"no study storage at {shown}: run phase 1 first, or pass its --storage")
    try:
        if "://" in url:
            return RDBStorage(url, engine_kwargs=_engine_kwargs(url)), shown
        path = Path(url)
        if path.is_dir():
            raise UserError(f"{path} is a directory, not a journal file")
        if not path.parent.is_dir():
            raise UserError(f"directory {path.parent} does not exist")
        return JournalStorage(JournalFileBackend(str(path))), shown
    except Exception as err:  # SQLAlchemy, driver and OS errors come in many classes
        reason = mask(str(err).splitlines()[0]) if str(err) else type(err).__name__
        raise UserError(f"cannot open storage {shown}: {reason}") from None


def _engine_kwargs(url: str) -> dict:
    # several processes on one SQLite file: wait for the lock instead of failing at once
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True
