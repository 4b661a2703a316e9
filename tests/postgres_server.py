"""A throwaway PostgreSQL server on 127.0.0.1 for the tests, run as an unprivileged user.

PostgreSQL refuses to run as root, so under root (as in CI) the server runs as the
`postgres` user that Debian's package creates, or `nobody`, in a data folder of its
own under the system temp folder. Durability is switched off: nothing here outlives
the test session.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

# Debian and Ubuntu keep the server programs out of PATH, one folder per major version.
DEBIAN_SERVER_DIRS = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED_USERS = ("postgres", "nobody")
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "40",
}


def find_server_programs() -> Path | None:
    """The folder holding initdb and postgres, newest version first; None when absent."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = sorted(
        Path("/").glob(DEBIAN_SERVER_DIRS.lstrip("/")),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    return next((folder for folder in reversed(found) if (folder / "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, but there is no postgres or nobody user to run as")


class PostgresServer:
    """One server: `start()`, then `create_database()` per test, then `stop()`."""

    def __init__(self, programs: Path) -> None:
        self.programs = programs
        self.port = _free_port()
        self.user = _server_user()
        self.data_dir = Path(tempfile.mkdtemp(prefix="extend-test-pg-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.data_dir / "server.log"
        self._databases = 0

    def start(self) -> None:
        """Create a cluster and start the server; return once it accepts connections."""
        cluster = self.data_dir / "cluster"
        cluster.mkdir()
        if self.user:
            shutil.chown(self.data_dir, self.user)
            shutil.chown(cluster, self.user)
        self._as_server_user(
            [
                self.programs / "initdb",
                "--pgdata",
                cluster,
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )
        settings = [arg for k, v in SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}")]
        listen = ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(cluster)]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [self.programs / "postgres", "-D", cluster, *listen, *settings],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
            )
        self._wait_until_ready()

    def dsn(self, database: str = "postgres") -> str:
        """A connection string for `database`, in the form dlt's credentials take."""
        return f"postgresql://postgres:unused@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; return its connection string."""
        self._databases += 1
        name = f"extend_test_{self._databases}"
        connection = psycopg2.connect(self.dsn())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"create database {name}")
        finally:
            connection.close()
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _as_server_user(self, command: list) -> None:
        result = subprocess.run(command, capture_output=True, user=self.user, check=False)
        if result.returncode:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"{Path(command[0]).name} failed: {output[-2000:]}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process and self._process.poll() is not None:
                break
            try:
                psycopg2.connect(self.dsn(), connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        log = self._log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {log}")
