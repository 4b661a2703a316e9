"""The analytics views, checked figure by figure against runs with known values.

The same assertions run on DuckDB and on PostgreSQL: the views are written once.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import psycopg2
import pytest

from pipelines import views
from pipelines.views import View
from tests.known_runs import KNOWN_RUNS

DAY_1, DAY_2 = date(2026, 11, 29), date(2026, 11, 30)


@pytest.fixture(params=["duckdb", "postgres"])
def loaded(request, fake, sync, db_path: Path) -> Callable[[str], list[tuple]]:
    """The known runs synced into one destination; returns a query function for it."""
    fake.state.load(KNOWN_RUNS)
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres")
        sync(destination="postgres")
        return lambda sql: _postgres_query(dsn, sql)
    sync()
    return lambda sql: _duckdb_query(db_path, sql)


def _postgres_query(dsn: str, sql: str) -> list[tuple]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _duckdb_query(db_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_runs_daily_counts_runs_pages_and_credits_per_utc_day_and_status(loaded):
    rows = loaded("select * from extend.runs_daily order by run_date, status")

    assert rows == [
        (DAY_1, "FAILED", 1, 0, 0.0),
        (DAY_1, "PROCESSED", 4, 8, 12.0),
        (DAY_2, "CANCELLED", 1, 0, 0.0),
        (DAY_2, "FAILED", 2, 0, 0.0),
        (DAY_2, "PENDING", 1, 0, 0.0),
        (DAY_2, "PROCESSED", 1, 10, 15.0),
        (DAY_2, "PROCESSING", 1, 0, 0.0),
    ]


def test_failure_reasons_count_runs_with_first_and_last_seen_and_an_example(loaded):
    rows = loaded("select * from extend.failure_reasons order by failure_reason")

    corrupt, ocr = rows
    assert corrupt[:4] == (
        "CORRUPT_FILE",
        2,
        datetime(2026, 11, 29, 11, tzinfo=UTC),
        datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
    )
    assert corrupt[4] in {"The file appears to be corrupted.", "Corrupt again."}
    assert ocr[:2] == ("OCR_ERROR", 1) and ocr[2] == ocr[3]


def test_processing_times_give_percentiles_per_day_and_file_type(loaded):
    rows = loaded("select * from extend.processing_times order by run_date, file_type")

    assert [row[:3] for row in rows] == [(DAY_1, "IMG", 1), (DAY_1, "PDF", 3), (DAY_2, "PDF", 1)]
    # Linear interpolation over 1000, 2000 and 3000 ms.
    assert rows[1][3:] == pytest.approx((2000.0, 2800.0, 2980.0))
    assert rows[0][3:] == pytest.approx((500.0, 500.0, 500.0))
    assert rows[2][3:] == pytest.approx((10000.0, 10000.0, 10000.0))


def test_runs_in_flight_lists_unfinished_runs_with_their_age(loaded):
    rows = loaded("select id, status, age_hours from extend.runs_in_flight order by id")

    now = datetime.now(UTC)
    expected_age = {
        "pr_b4": (now - datetime(2026, 11, 30, 10, tzinfo=UTC)).total_seconds() / 3600,
        "pr_b5": (now - datetime(2026, 11, 30, 11, tzinfo=UTC)).total_seconds() / 3600,
    }
    assert [row[:2] for row in rows] == [("pr_b4", "PROCESSING"), ("pr_b5", "PENDING")]
    for run_id, _, age_hours in rows:
        assert age_hours == pytest.approx(expected_age[run_id], abs=0.05)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_views_are_replaced_after_a_full_refresh(request, fake, sync, destination):
    fake.state.load(KNOWN_RUNS)
    target = None
    if destination == "postgres":
        request.getfixturevalue("postgres")
        target = "postgres"
    sync(destination=target)
    fake.state.load(KNOWN_RUNS[:3])

    result = sync(destination=target, full_refresh=True)

    assert result.rows_loaded == 3


def test_a_view_the_destination_cannot_run_is_skipped_with_a_warning(
    fake, sync, db_path, monkeypatch, caplog
):
    broken = View(
        "broken_view", "uses a function DuckDB lacks", "select no_such_fn(id) from {table}"
    )
    monkeypatch.setattr(views, "VIEWS", (*views.VIEWS, broken))
    fake.state.load(KNOWN_RUNS)

    sync()

    assert "view broken_view was not created" in caplog.text
    names = {row[0] for row in _duckdb_query(db_path, "select view_name from duckdb_views()")}
    assert set(views.VIEW_NAMES) <= names and "broken_view" not in names
