"""A first sync appends into a table the destination lacks; anything unsafe makes it merge."""

import math
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from extend_source.cursor import SyncCursor
from extend_source.errors import FirstLoadConflictError
from extend_source.normalize import TABLE_SCHEMA
from pipelines.extend_pipeline import make_pipeline, run_sync
from tests.conftest import FAST_RETRIES, RUNS, expected_rows, row_count, table_rows

PAGE = 300


def schemas(db_path) -> set[str]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.execute("select schema_name from information_schema.schemata").fetchall()
    return {row[0] for row in rows}


def test_a_first_sync_appends_without_a_staging_copy_and_the_next_one_merges(fake, sync, db_path):
    sync()

    assert "extend_staging" not in schemas(db_path)
    assert table_rows(db_path) == expected_rows(fake.state)

    in_flight = fake.state.in_flight_ids()
    fake.state.settle_run(in_flight[0], "PROCESSED")
    fake.state.add_runs(5, status="PROCESSING")
    sync()

    assert "extend_staging" in schemas(db_path)
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 5


def test_a_run_listed_on_two_pages_turns_the_first_sync_into_a_merge(fake, sync, db_path, caplog):
    fake.state.page_quirks = {2: "overlap"}

    result = sync(page_size=PAGE)

    assert "on two pages; loading this first sync with merge instead" in caplog.text
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS
    assert result.stats.pages == math.ceil(RUNS / PAGE)
    assert result.stats.requests == len(fake.state.requests), "both attempts are counted"


def test_pages_oldest_first_turn_the_first_sync_into_a_merge(fake, sync, db_path, caplog):
    fake.state.oldest_first = True

    sync(page_size=PAGE)

    assert "not returning runs newest first; loading this first sync with merge" in caplog.text
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS


def test_a_table_another_pipeline_loaded_is_merged_into_not_appended_to(
    fake, tmp_path, db_path, monkeypatch
):
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)
    settings = {"base_url": fake.url, **FAST_RETRIES}
    first = make_pipeline(pipelines_dir=tmp_path / "a", duckdb_file=db_path)
    run_sync(first, **settings)
    fake.state.add_runs(3)

    other = make_pipeline(
        pipeline_name="extend_other", pipelines_dir=tmp_path / "b", duckdb_file=db_path
    )
    run_sync(other, **settings)

    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 3


def page(ids: list[str], created: list[datetime]) -> pa.Table:
    columns = {field.name: pa.nulls(len(ids), field.type) for field in TABLE_SCHEMA}
    columns["id"] = pa.array(ids)
    columns["status"] = pa.array(["PROCESSED"] * len(ids))
    columns["created_at"] = pa.array(created, TABLE_SCHEMA.field("created_at").type)
    return pa.Table.from_pydict(columns, schema=TABLE_SCHEMA)


def test_a_run_repeated_across_a_page_of_one_created_at_is_caught():
    t = datetime(2026, 11, 30, tzinfo=UTC)
    cursor = SyncCursor(start_date=None, window=timedelta(hours=24), unique=True)
    cursor.observe(page(["a", "b", "c"], [t + timedelta(seconds=1), t, t]))
    cursor.observe(page(["d", "e"], [t, t]))

    with pytest.raises(FirstLoadConflictError, match="run b on two pages"):
        cursor.observe(page(["b", "f"], [t, t - timedelta(seconds=1)]))


def test_a_run_twice_on_one_page_is_caught():
    t = datetime(2026, 11, 30, tzinfo=UTC)
    cursor = SyncCursor(start_date=None, window=timedelta(hours=24), unique=True)

    with pytest.raises(FirstLoadConflictError, match="lists a run twice"):
        cursor.observe(page(["a", "b", "a"], [t, t, t]))
