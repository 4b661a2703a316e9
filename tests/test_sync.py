"""End-to-end syncs of the fake Extend API into a real DuckDB file."""

import math
from datetime import UTC, datetime

import pytest

from extend_source.fake_api import list_requests
from tests.conftest import RUNS, expected_rows, row_count, stored_cursor, table_rows


def test_full_sync_loads_every_run_once(fake, sync, db_path):
    result = sync()

    assert table_rows(db_path) == expected_rows(fake.state)
    assert result.stats.runs_listed == RUNS
    assert result.stats.pages == math.ceil(RUNS / 1000)
    assert result.rows_loaded == RUNS


def test_second_sync_adds_new_runs_and_picks_up_finished_ones(fake, sync, db_path):
    sync()
    in_flight = fake.state.in_flight_ids()
    assert len(in_flight) >= 3
    fake.state.settle_run(in_flight[0], "PROCESSED")
    fake.state.settle_run(in_flight[1], "FAILED")
    fake.state.settle_run(in_flight[2], "CANCELLED")
    new = fake.state.add_runs(7, status="PROCESSING")
    fake.state.requests.clear()

    result = sync()

    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 7
    stored = table_rows(db_path, "id, status, failure_reason, credits")
    assert stored[in_flight[1]][1:3] == ("FAILED", fake.state.get(in_flight[1])["failureReason"])
    assert stored[in_flight[0]][3] == fake.state.get(in_flight[0])["usage"]["credits"]
    assert result.stats.pages == 1, "the in-flight runs are all on the newest page"
    assert set(stored_cursor(db_path.parent)["in_flight"]) >= {r["id"] for r in new}


def test_sync_with_nothing_new_reads_one_page_and_loads_no_duplicates(fake, sync, db_path):
    sync()
    before = table_rows(db_path)
    fake.state.requests.clear()

    sync()

    assert table_rows(db_path) == before
    assert len(list(list_requests(fake.state))) == 1


def test_old_in_flight_runs_are_refreshed_one_by_one_and_a_404_is_tolerated(fake, sync, db_path):
    sync(inflight_window_hours=0, page_size=5)
    in_flight = fake.state.in_flight_ids()
    finished, deleted = in_flight[-1], in_flight[-2]
    fake.state.settle_run(finished, "PROCESSED")
    fake.state.delete_run(deleted)
    fake.state.requests.clear()

    result = sync(inflight_window_hours=0, page_size=5, refresh_requests_per_second=1000)

    # With no window, paging stops a few minutes below the newest run; every
    # in-flight run it did not list again is fetched by id instead.
    listed = {r["id"] for r in fake.state.runs()[: result.stats.pages * 5]}
    detail_paths = [r.path for r in fake.state.requests if r.path != "/parse_runs"]
    assert sorted(detail_paths) == sorted(f"/parse_runs/{i}" for i in in_flight if i not in listed)
    assert len(detail_paths) > 10
    assert result.stats.runs_gone == 1
    assert table_rows(db_path)[finished][1] == "PROCESSED"
    assert deleted in table_rows(db_path), "a gone run keeps its last row"
    assert deleted not in stored_cursor(db_path.parent)["in_flight"]
    assert finished not in stored_cursor(db_path.parent)["in_flight"]


def test_a_run_that_leaves_a_status_filter_is_fetched_and_updated(fake, sync, db_path):
    sync(status="PROCESSING")
    leaving = fake.state.in_flight_ids()
    leaving = next(i for i in leaving if fake.state.get(i)["status"] == "PROCESSING")
    fake.state.settle_run(leaving, "FAILED")

    result = sync(status="PROCESSING", refresh_requests_per_second=1000)

    assert result.stats.runs_refreshed == 1
    assert table_rows(db_path)[leaving][1] == "FAILED"


def test_start_date_skips_runs_created_before_it_and_stops_paging(fake, sync, db_path):
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)

    result = sync(start_date="2026-11-30", page_size=100)

    expected = {k: v for k, v in expected_rows(fake.state).items() if v[2] >= start}
    assert table_rows(db_path) == expected
    # Paging stops on the first page that reaches past the start date.
    assert result.stats.pages == math.ceil((len(expected) + 1) / 100)


@pytest.mark.parametrize(
    ("setting", "value", "query", "matches"),
    [
        ("status", "FAILED", "status", lambda r: r["status"] == "FAILED"),
        ("batch_id", "bpar_00000007", "batchId", lambda r: r.get("batchId") == "bpar_00000007"),
        ("source", "WORKFLOW_RUN", "source", lambda r: r.get("source") == "WORKFLOW_RUN"),
        ("source_id", "wr_1", "sourceId", lambda r: r.get("sourceId") == "wr_1"),
        (
            "file_name_contains",
            "invoice_1",
            "fileNameContains",
            lambda r: "invoice_1" in r["file"]["name"],
        ),
    ],
    ids=["status", "batch-id", "source", "source-id", "file-name-contains"],
)
def test_each_filter_is_sent_and_only_matching_runs_are_loaded(
    fake, sync, db_path, setting, value, query, matches
):
    sync(**{setting: value})

    expected = {r["id"] for r in fake.state.runs() if matches(r)}
    assert expected
    assert set(table_rows(db_path)) == expected
    assert all(r.query[query] == value for r in list_requests(fake.state))


def test_page_size_is_asked_under_both_names_and_bounds_every_page(fake, sync):
    result = sync(page_size=300)

    requests = list(list_requests(fake.state))
    assert all(r.query["limit"] == "300" and r.query["maxPageSize"] == "300" for r in requests)
    assert result.stats.pages == len(requests) == math.ceil(RUNS / 300)


def test_pages_not_newest_first_are_read_to_the_end_with_a_warning(fake, sync, db_path, caplog):
    sync()
    fake.state.oldest_first = True
    fake.state.add_runs(3)
    fake.state.requests.clear()

    result = sync()

    assert result.stats.pages == math.ceil((RUNS + 3) / 1000)
    assert "not returning runs newest first" in caplog.text
    assert table_rows(db_path) == expected_rows(fake.state)


def test_metadata_is_one_json_column(fake, sync, db_path):
    sync()

    import duckdb

    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'extend'"
            ).fetchall()
        }
        kind = con.execute(
            "select data_type from information_schema.columns where table_schema="
            "'extend' and table_name='parse_runs' and column_name='metadata'"
        ).fetchone()
        customer = con.execute(
            "select metadata->>'customer' from extend.parse_runs where metadata is not null limit 1"
        ).fetchone()[0]
    assert kind == ("JSON",)
    assert customer.startswith("cust_")
    assert not [t for t in tables if t.startswith("parse_runs__")]
