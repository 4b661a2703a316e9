"""End-to-end syncs of the fake Extend API into a real DuckDB file."""

import math
from datetime import UTC, datetime

import pytest

from extend_source.errors import ExtendAuthError
from extend_source.fake_api import Fault, list_requests
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


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(status=429, retry_after="0"), Fault(status=429, retry_after="0")],
        [Fault(status=503), Fault(status=500)],
        [Fault(status=502, body=b"<html>Bad gateway</html>", content_type="text/html")],
    ],
    ids=["429-twice", "5xx", "html-502"],
)
def test_rate_limits_and_server_errors_are_retried(fake, sync, db_path, faults):
    fake.state.faults = list(faults)

    result = sync()

    assert table_rows(db_path) == expected_rows(fake.state)
    assert result.stats.requests == result.stats.pages + len(faults)


def test_a_rejected_key_fails_with_a_clear_error_that_hides_the_key(fake, sync, monkeypatch):
    monkeypatch.setenv("EXTEND_API_KEY", "sk_wrong_secret_123")

    with pytest.raises(Exception) as failure:
        sync()

    error = failure.value
    while not isinstance(error, ExtendAuthError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ExtendAuthError)
    assert "401" in str(error) and "UNAUTHORIZED" in str(error) and "req_fake_" in str(error)
    assert "sk_wrong_secret_123" not in str(error)


def test_failure_mid_pagination_keeps_the_last_good_sync_and_the_next_recovers(fake, sync, db_path):
    sync(page_size=500)
    before_rows, before_cursor = table_rows(db_path), stored_cursor(db_path.parent)
    fake.state.add_runs(1200)
    fake.state.list_pages_served = 0
    fake.state.fail_after_pages = 2

    with pytest.raises(Exception, match="INTERNAL_ERROR"):
        sync(page_size=500)

    assert table_rows(db_path) == before_rows
    assert stored_cursor(db_path.parent) == before_cursor
    fake.state.fail_after_pages = None
    sync(page_size=500)
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 1200


def test_pages_not_newest_first_are_read_to_the_end_with_a_warning(fake, sync, db_path, caplog):
    sync()
    fake.state.oldest_first = True
    fake.state.add_runs(3)
    fake.state.requests.clear()

    result = sync()

    assert result.stats.pages == math.ceil((RUNS + 3) / 1000)
    assert "not returning runs newest first" in caplog.text
    assert table_rows(db_path) == expected_rows(fake.state)


def test_messy_records_are_stored_as_they_come(fake, sync, db_path):
    base = fake.state.runs()[0]
    odd = [
        {**base, "id": "pr_nofile", "file": None, "createdAt": "2026-12-01T00:00:03Z"},
        {
            **base,
            "id": "pr_newenum",
            "status": "ARCHIVED",
            "failureReason": "NEW_REASON",
            "file": {**base["file"], "type": "HEIC"},
            "createdAt": "2026-12-01T00:00:02.5Z",
        },
        {
            **base,
            "id": "pr_extra",
            "shinyNewField": {"a": 1},
            "output": {"chunks": []},
            "createdAt": "2026-12-01T00:00:01.123456Z",
            "metrics": None,
            "usage": None,
        },
    ]
    fake.state.load(odd)

    sync()

    rows = table_rows(
        db_path, "id, status, failure_reason, file_type, file_id, created_at, credits"
    )
    assert rows["pr_nofile"][4] is None
    assert rows["pr_newenum"][1:4] == ("ARCHIVED", "NEW_REASON", "HEIC")
    assert rows["pr_newenum"][5] == datetime(2026, 12, 1, 0, 0, 2, 500000, tzinfo=UTC)
    assert rows["pr_extra"][5] == datetime(2026, 12, 1, 0, 0, 1, 123456, tzinfo=UTC)
    assert rows["pr_extra"][6] is None


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
