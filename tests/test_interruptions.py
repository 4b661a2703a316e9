"""A sync killed at any step, started twice, or locked out of its DuckDB file loses nothing."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from extend_source.fake_api import FakeExtendServer, FakeExtendState
from pipelines.cli import EXIT_BUSY, EXIT_DESTINATION, EXIT_OK, main
from pipelines.extend_pipeline import make_pipeline
from pipelines.guard import LOCK_SUFFIX
from tests.conftest import expected_rows, row_count, serving, table_rows

DRIVER = Path(__file__).with_name("sync_driver.py")
HOLD_DUCKDB = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
    "print('holding', flush=True); time.sleep(60)"
)
RUNS = 300


@pytest.fixture
def fake() -> Iterator[FakeExtendServer]:
    """A small fake: 300 runs, three pages of 100."""
    with serving(RUNS) as server:
        yield server


@pytest.fixture
def flags(fake: FakeExtendServer, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """extend-sync flags for the fake and the test's DuckDB file."""
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)
    return ["--base-url", fake.url, "--duckdb-file", str(db_path), "--page-size", "100"]


def start_child(point: str, marker: Path, flags: list[str]) -> subprocess.Popen:
    """extend-sync in a child process that halts at `point` (see sync_driver.py)."""
    log = marker.with_suffix(".log").open("w")
    return subprocess.Popen(
        [sys.executable, str(DRIVER), point, str(marker), *flags], stdout=log, stderr=log
    )


def wait_until(condition: Callable[[], bool], child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert child.poll() is None, f"the child sync ended early with {child.returncode}"
        assert time.monotonic() < deadline, "the child sync never reached its halt"
        time.sleep(0.02)


def change_the_api(state: FakeExtendState) -> None:
    """New runs, and some of the runs in flight finish: what a later sync must pick up."""
    in_flight = state.in_flight_ids()
    state.settle_run(in_flight[0], "PROCESSED")
    state.settle_run(in_flight[1], "FAILED")
    state.add_runs(150, status="PROCESSING")


def pending_packages(db_path: Path) -> list[str]:
    """Load ids dlt holds for the CLI's pipeline, extracted or normalised but not loaded."""
    pipeline = make_pipeline(duckdb_file=db_path)
    return pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()


def recorded_loads(db_path: Path) -> set[str]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {row[0] for row in con.execute("select load_id from extend._dlt_loads").fetchall()}


@pytest.mark.parametrize(
    ("point", "left_pending"),
    [("extract", 0), ("normalize", 1), ("load", 1), ("load-commit", 1)],
    ids=["mid-extract", "mid-normalize", "mid-load-before-merge", "mid-load-before-commit"],
)
def test_a_sync_killed_mid_step_is_finished_by_the_next_with_every_run_once(
    fake, flags, db_path, tmp_path, point, left_pending
):
    assert main(flags) == EXIT_OK
    change_the_api(fake.state)
    marker = tmp_path / "halted"
    if point == "extract":
        fake.state.block_on_page = fake.state.list_pages_served + 2

    child = start_child("none" if point == "extract" else point, marker, flags)
    wait_until(lambda: marker.exists() or fake.state.page_blocked.is_set(), child)
    child.kill()
    child.wait()
    fake.state.unblock.set()
    fake.state.add_runs(20)
    pending = pending_packages(db_path)
    assert len(pending) == left_pending

    assert main(flags) == EXIT_OK
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 170
    assert pending_packages(db_path) == []
    assert set(pending) <= recorded_loads(db_path)


@pytest.mark.parametrize(
    "point",
    ["normalize", "load-after-insert", "load-commit"],
    ids=["mid-normalize", "after-the-append-before-it-is-marked-done", "mid-load-before-commit"],
)
def test_a_first_sync_killed_mid_step_leaves_no_run_twice(
    fake, flags, db_path, tmp_path, capsys, point
):
    marker = tmp_path / "halted"
    child = start_child(point, marker, flags)
    wait_until(marker.exists, child)
    child.kill()
    child.wait()
    fake.state.add_runs(20)
    assert len(pending_packages(db_path)) == 1

    assert main(flags) == EXIT_OK
    assert "interrupted first sync left 1 load package(s) that append" in capsys.readouterr().err
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 20
    assert pending_packages(db_path) == []


def test_a_killed_first_sync_is_not_appended_into_a_table_another_pipeline_filled_since(
    fake, flags, db_path, tmp_path
):
    marker = tmp_path / "halted"
    child = start_child("normalize", marker, flags)
    wait_until(marker.exists, child)
    child.kill()
    child.wait()

    assert main([*flags, "--pipeline-name", "other"]) == EXIT_OK
    assert main(flags) == EXIT_OK
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS


@pytest.mark.parametrize(
    ("second_flags", "held_lock"),
    [([], "extend" + LOCK_SUFFIX), (["--pipeline-name", "other"], "duckdb" + LOCK_SUFFIX)],
    ids=["same-pipeline", "other-pipeline-same-duckdb-file"],
)
def test_a_second_sync_started_meanwhile_stops_at_once_and_names_the_lock(
    fake, flags, db_path, tmp_path, capsys, second_flags, held_lock
):
    fake.state.block_on_page = 2
    child = start_child("none", tmp_path / "first", flags)
    wait_until(fake.state.page_blocked.is_set, child)

    started = time.monotonic()
    code = main([*flags, *second_flags])
    waited = time.monotonic() - started
    fake.state.unblock.set()

    assert code == EXIT_BUSY
    assert waited < 5
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "another sync is running" in error and held_lock in error
    assert child.wait(timeout=60) == EXIT_OK
    assert table_rows(db_path) == expected_rows(fake.state)
    assert main(flags) == EXIT_OK
    assert row_count(db_path) == RUNS


def test_a_duckdb_file_another_program_holds_fails_with_exit_4_and_the_next_sync_recovers(
    fake, flags, db_path, capsys
):
    assert main(flags) == EXIT_OK
    change_the_api(fake.state)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DUCKDB, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    holder.stdout.readline()

    try:
        code = main(flags)
    finally:
        holder.kill()
        holder.wait()

    assert code == EXIT_DESTINATION
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "destination failed" in error and "lock" in error
    assert main(flags) == EXIT_OK
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 150
