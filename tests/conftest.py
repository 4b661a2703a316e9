"""Fixtures: the project's fake Extend API on loopback, and a pipeline on a temp DuckDB file."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from extend_source.fake_api import FakeExtendServer, FakeExtendState, generate_runs
from pipelines.extend_pipeline import SyncResult, make_pipeline, run_sync
from tests.postgres_server import PostgresServer, find_server_programs

NEWEST = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RUNS = 2500
FAST_RETRIES = {"request_backoff_factor": 0.01, "request_max_attempts": 4, "request_timeout": 5}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own folder, with no key or dlt setting from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    # Whatever .dlt folder dlt happens to read, tests never send its telemetry.
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    for name in ("EXTEND_API_KEY", "SOURCES__EXTEND__API_KEY", "DESTINATION__DUCKDB__CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def serving(count: int) -> Iterator[FakeExtendServer]:
    """The fake API on loopback, serving `count` realistic runs, newest at NEWEST."""
    state = FakeExtendState()
    state.load(generate_runs(count, newest=NEWEST))
    with FakeExtendServer(state) as server:
        yield server


@pytest.fixture
def fake() -> Iterator[FakeExtendServer]:
    """The fake API serving RUNS runs."""
    with serving(RUNS) as server:
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "extend_runs.duckdb"


@pytest.fixture
def sync(
    fake: FakeExtendServer, tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., SyncResult]:
    """Run one sync of the fake into db_path, or into `destination` with a pipeline of its
    own; the other keyword arguments go to the source."""
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)

    def run(*, full_refresh: bool = False, destination: Any = None, **settings: Any) -> SyncResult:
        pipelines_dir = tmp_path / (
            "pipelines" if destination is None else f"pipelines-{destination}"
        )
        pipeline = make_pipeline(
            pipelines_dir=pipelines_dir, duckdb_file=db_path, destination=destination
        )
        settings = {"base_url": fake.url, **FAST_RETRIES, **settings}
        return run_sync(pipeline, full_refresh=full_refresh, **settings)

    return run


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session, stopped at its end."""
    programs = find_server_programs()
    if programs is None:
        message = "PostgreSQL server not installed; bash scripts/test installs it when root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(programs)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database, set as dlt's postgres credentials; returns its connection string."""
    dsn = postgres_server.create_database()
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    return dsn


def table_rows(db_path: Path, columns: str = "id, status, created_at, updated_at") -> dict:
    """parse_runs as {id: row tuple}, read from the real DuckDB file."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.execute(f"select {columns} from extend.parse_runs").fetchall()
    return {row[0]: row for row in rows}


def row_count(db_path: Path) -> int:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute("select count(*) from extend.parse_runs").fetchone()[0]


def expected_rows(state: FakeExtendState) -> dict:
    """What the table must hold for the fake's runs, in table_rows' shape."""
    return {
        r["id"]: (
            r["id"],
            r["status"],
            datetime.fromisoformat(r["createdAt"]),
            datetime.fromisoformat(r["updatedAt"]),
        )
        for r in state.runs()
    }


def stored_cursor(tmp_path: Path) -> dict:
    """The cursor the pipeline stored for the unfiltered view, read back from dlt's state."""
    pipeline = make_pipeline(pipelines_dir=tmp_path / "pipelines")
    resources = pipeline.state.get("sources", {}).get("extend", {}).get("resources", {})
    cursors = resources.get("parse_runs", {}).get("cursors", {})
    return next(iter(cursors.values()), {})
