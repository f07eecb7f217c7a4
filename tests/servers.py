"""Real, throwaway servers for the tests and benchmarks: a PostgreSQL cluster and an MLflow tracking server
(open, or with MLflow's basic-auth app), both listening on 127.0.0.1 only, on free ports, in temporary
directories removed afterwards.

PostgreSQL comes from Debian's packages (`apt-get install postgresql`; `.ci/run` installs it when missing).
As root, the cluster runs as the `postgres` user (PostgreSQL refuses root) in a directory it owns; as
anyone else, as that user. Missing binaries raise: tests that need these servers fail, they never skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

USER, PASSWORD = "direction", "s3cret-pw"  # the password tests look for in MLflow params and tags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path:
    """The directory holding initdb and pg_ctl: `pg_config --bindir`, else /usr/lib/postgresql/*/bin."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for d in candidates:
        if d and (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                       "apt-get install postgresql (.ci/run does it when they are missing)")


class Postgres:
    """A cluster in `root` (owned by the server's user), its socket in `root`, TCP on 127.0.0.1:`port`.
    `url(db)` is a `postgresql://` URL with the password user `USER`."""

    def __init__(self, root: Path, port: int):
        self.root, self.port, self.bin = root, port, pg_bindir()
        self.data, self.log = root / "data", root / "server.log"
        self.as_root = os.geteuid() == 0

    def _cmd(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                               f"{self.server_log()}")
        return proc

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    @property
    def _options(self) -> str:
        # no TCP but 127.0.0.1; the socket in our own directory, not /var/run/postgresql
        return f"-k {self.root} -h 127.0.0.1 -p {self.port} -c max_connections=200 -c fsync=off"

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, "postgres")
        self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        pwfile.unlink()

    def start(self) -> None:
        self._cmd("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", self._options)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: open connections are closed, transactions in flight rolled back."""
        self._cmd("pg_ctl", "restart", "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t", "60",
                  "-o", self._options)

    def stop(self) -> None:
        self._cmd("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)

    def sql(self, statement: str, db: str = "postgres") -> str:
        """One statement as the superuser, through the socket."""
        return self._cmd("psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", db,
                         "-v", "ON_ERROR_STOP=1", "-tA", "-c", statement).stdout.strip()

    def create_database(self, name: str) -> str:
        """A new database owned by `USER`; returns its URL."""
        self.sql(f'CREATE DATABASE "{name}" OWNER {USER}')
        return self.url(name)

    def url(self, db: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def postgres(databases: tuple[str, ...] = ("optuna", "mlflow")) -> Iterator[Postgres]:
    """A running cluster with the user `USER` (password `PASSWORD`) and `databases`, removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="direction-pg-"))  # under /tmp: reachable by the postgres user
    try:
        root.chmod(0o700)
        server = Postgres(root, free_port())
        if server.as_root:
            shutil.chown(root, "postgres", "postgres")
        server.init()
        server.start()
        try:
            server.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            for db in databases:
                server.create_database(db)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class BasicAuth:
    """MLflow's basic-auth app (`mlflow server --app-name basic-auth`, extra `server`): its user store in
    `database_uri`, the admin `admin` with `admin_password` (given on the first start: MLflow ships no default
    one), `default_permission` for every user on what they neither created nor were granted, a checked
    password remembered `cache_s` seconds (a check is a deliberately slow hash: ~0.5 s on a busy core)."""

    database_uri: str
    admin_password: str
    default_permission: str = "READ"
    admin: str = "admin"
    cache_s: int = 60

    def config(self) -> str:
        """The server's `basic_auth.ini` (MLFLOW_AUTH_CONFIG_PATH); the admin's password stays out of it."""
        return (f"[mlflow]\ndefault_permission = {self.default_permission}\n"
                f"database_uri = {self.database_uri}\nadmin_username = {self.admin}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                f"auth_cache_ttl_seconds = {self.cache_s}\n")


class Tracker:
    """An `mlflow server` subprocess: its URI, its artifacts directory and its log; `auth` when it runs the
    basic-auth app."""

    def __init__(self, uri: str, artifacts: Path, log: Path, proc: subprocess.Popen, auth: BasicAuth | None = None):
        self.uri, self.artifacts, self.log, self.proc, self.auth = uri, artifacts, log, proc, auth

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-5000:]
        except OSError:
            return ""

    def admin_request(self, path: str, method: str = "POST", **fields: str) -> dict:
        """One call of the basic-auth app's REST API (`/api/2.0/mlflow/users/create`, …) as its admin."""
        url = f"{self.uri}{path}"
        creds = (self.auth.admin, self.auth.admin_password)
        r = (requests.get(url, params=fields, auth=creds, timeout=30) if method == "GET"
             else requests.request(method, url, json=fields, auth=creds, timeout=30))
        r.raise_for_status()
        return r.json() if r.content else {}

    def create_user(self, username: str, password: str) -> None:
        self.admin_request("/api/2.0/mlflow/users/create", username=username, password=password)

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """`permission` (READ, USE, EDIT, MANAGE, NO_PERMISSIONS) for `username` on one experiment or
        registered model."""
        self.admin_request("/api/3.0/mlflow/users/permissions/grant", username=username, resource_type=resource_type,
                           resource_id=resource_id, permission=permission)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, workdir: Path, workers: int = 2, timeout: float = 180,
                  auth: BasicAuth | None = None) -> Iterator[Tracker]:
    """`mlflow server --backend-store-uri BACKEND --artifacts-destination WORKDIR/artifacts` on 127.0.0.1 (with
    the default `--serve-artifacts`: clients upload artifacts through it), stopped at the end; with `auth`, as
    `--app-name basic-auth` (its admin created on the first start)."""
    port, artifacts, log = free_port(), workdir / "artifacts", workdir / "mlflow-server.log"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if auth is not None:
        ini = workdir / "basic_auth.ini"
        ini.write_text(auth.config())
        cmd += ["--app-name", "basic-auth"]
        env |= {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": auth.admin_password,
                # the CSRF key of the sign-up form, the same in every worker process
                "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    tracker = Tracker(f"http://127.0.0.1:{port}", artifacts, log, proc, auth)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({proc.returncode}):\n{tracker.server_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not up after {timeout:.0f} s:\n{tracker.server_log()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{tracker.uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
            time.sleep(0.5)
        yield tracker
    finally:
        stop_group(proc)


@dataclass(frozen=True)
class Served:
    url: str  # the model's /invocations endpoint
    start_seconds: float  # from the server's launch to its first answer on /ping


@contextlib.contextmanager
def model_server(uri: str, cwd: Path, threads: int | None = None, timeout: float = 300) -> Iterator[Served]:
    """`mlflow models serve -m uri` on 127.0.0.1 (one worker), without PYTHONPATH (the server imports the
    project from the code the model carries, nothing else), once it answers /ping; stopped at the end.
    `threads`: its OMP_NUM_THREADS (None: as this process has it)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # mlflow starts `uvicorn` by name: this interpreter's scripts first, activated or not
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
           "--host", "127.0.0.1", "-p", str(port), "-w", "1"]
    log = cwd / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        start, deadline = time.perf_counter(), time.monotonic() + timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow models serve did not come up:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                time.sleep(0.25)
        yield Served(f"http://127.0.0.1:{port}/invocations", time.perf_counter() - start)
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """The server and the workers it forked (its own process group), TERM then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=5)  # uvicorn waits for clients' keep-alive connections: not for long
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
