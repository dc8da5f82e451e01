"""A private PostgreSQL server for the tests, and the fixture that runs a test on each backend.

The server is a fresh cluster (``initdb``) in a temporary directory, started once per session with
``pg_ctl`` and listening only on a Unix socket in that directory (no TCP: nothing else on the
machine can reach it). Each test gets its own database. PostgreSQL refuses to run as root, which
is how CI runs: then ``initdb`` and ``pg_ctl`` run as the ``postgres`` user (the Debian package
creates it), else as ``nobody``, through ``runuser``, and the directory is given to that user.

The binaries are looked up on PATH, then in /usr/lib/postgresql/<version>/bin (Debian's place,
not on PATH), newest first. Without them the PostgreSQL variants are skipped, saying why; the
SQLite variants still run. ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")
NOT_FOUND = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
    "/usr/lib/postgresql/*/bin; install them (apt-get install postgresql) to run these tests"
)


def find_bin_dir() -> Path | None:
    """The directory holding both ``initdb`` and ``pg_ctl``, or None."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []

    def version(d: str) -> tuple[int, ...]:
        parts = Path(d).parent.name.split(".")
        return tuple(int(p) for p in parts if p.isdigit())

    for pattern in BIN_GLOBS:
        candidates += [Path(d) for d in sorted(glob.glob(pattern), key=version, reverse=True)]
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _free_port() -> int:
    # Only names the socket file (.s.PGSQL.<port>); a free TCP port keeps it unsurprising.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One private cluster: ``start()``, ``new_database()``, ``stop()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root and runuser is missing: cannot start postgres")
            self._as = [runuser, "-u", user, "--"]
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        cmd = [*self._as, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr}{done.stdout}\n{tail}")

    def start(self) -> None:
        data = self.dir / "data"
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' -p {self.port} "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.dir}&port={self.port}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a generated name, not input
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def _unprivileged_user() -> str:
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise RuntimeError("running as root with neither a postgres nor a nobody user")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(NOT_FOUND)
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, not yet created store on each backend: a SQLite file's path, or a database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "events.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
