"""Throw-away PostgreSQL databases on the machine's server (127.0.0.1:5432, trust auth), for tests, benches
and the local cluster: each gets a database of its own, dropped afterwards. And `PostgresServer`, a server of
its own that a drill can stop and start again."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ADMIN_URL = os.environ.get("DOCENT_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
"""A libpq URL of a database on the server from which others can be created and dropped."""


def _server_url(admin_url: str, database: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + database


def create_database(admin_url: str = ADMIN_URL, prefix: str = "docent_test") -> str:
    """A new empty database; returns its libpq URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return _server_url(admin_url, name)


def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    """Drop a database made by `create_database`, closing whatever is still connected to it."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_database(admin_url: str = ADMIN_URL, prefix: str = "docent_test") -> Iterator[str]:
    """A fresh database for the duration of the block (its libpq URL), dropped after."""
    url = create_database(admin_url, prefix)
    try:
        yield url
    finally:
        drop_database(url, admin_url)


class PostgresServer:
    """A PostgreSQL server of its own (`initdb` + `postgres` from Debian's package) on a free loopback port,
    trust auth, user `postgres`, for drills that stop the database under a running Docent and start it again
    (same port, same files). Stopped by its PID; `close` also removes its files.

    PostgreSQL refuses to run as root: run as root, it runs as `nobody` in a directory of its own under /tmp.
    """

    def __init__(self, port: int | None = None) -> None:
        from bench.support.servers import free_port

        self.port = port or free_port()
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        """libpq URL of its `postgres` database (create others from it with `create_database`)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self, timeout: float = 60) -> str:
        """Create its cluster on first start, start the server and wait until it accepts connections; returns
        `admin_url`."""
        if self.pid is not None:
            return self.admin_url
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="docent-pg-"))
            os.chown(self._dir, *_server_user())
            self._run_as_server_user(
                [_pg_binary("initdb"), "-D", str(self._data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            )
        command = [_pg_binary("postgres"), "-D", str(self._data), "-p", str(self.port), "-k", str(self._dir)]
        with (self._dir / "server.log").open("ab") as log:
            self._process = subprocess.Popen(
                [*command, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **_as_server_user(),
            )
        self._wait_until_up(timeout)
        return self.admin_url

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: open sessions are ended) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def _data(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    def _run_as_server_user(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **_as_server_user())
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")

    def _wait_until_up(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self._dir / "server.log").read_text(errors="replace") if self._dir else ""
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{log[-4000:]}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise TimeoutError(f"postgres on port {self.port} did not accept connections within {timeout}s")

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _pg_binary(name: str) -> str:
    """A PostgreSQL program: on PATH, else from Debian's newest postgresql-NN package."""
    if found := shutil.which(name):
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise FileNotFoundError(f"{name} not found: install Debian's postgresql package")
    return str(candidates[-1])


def _server_user() -> tuple[int, int]:
    """uid and gid the server runs as: ours, or `nobody`'s when we are root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _as_server_user() -> dict[str, Any]:
    """subprocess keyword arguments that run a PostgreSQL program as `_server_user`."""
    if os.geteuid() != 0:
        return {}
    uid, gid = _server_user()
    return {"user": uid, "group": gid, "extra_groups": [], "cwd": "/tmp"}
