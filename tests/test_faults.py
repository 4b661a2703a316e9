"""Faults an unattended sync meets, against the fake API and a real DuckDB file.

Every sync here either loads exactly the fake's runs, once each, or fails with one
line (and the exit code the CLI would give) while the table and the stored cursor
stay as the last good sync left them; the next sync then recovers every run once.
After each test, the API key is searched for in every log line (all at DEBUG),
printed text, error, file and table the test produced.
"""

import json
import shutil
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from extend_source.fake_api import (
    FakeExtendServer,
    FakeExtendState,
    Fault,
    generate_runs,
)
from pipelines.cli import EXIT_API, describe_failure
from pipelines.extend_pipeline import make_pipeline, run_sync
from tests.conftest import (
    FAST_RETRIES,
    NEWEST,
    expected_rows,
    row_count,
    serving,
    stored_cursor,
    table_rows,
)
from tests.leaks import log_everything, logged_text, places_holding

RUNS = 300
PAGE = 100
ATTEMPTS = FAST_RETRIES["request_max_attempts"]
SHORT_TIMEOUT = {"request_timeout": 0.3}
HTML_502 = Fault(
    status=502,
    body=b"<html>\n<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body>\n</html>",
    content_type="text/html",
)

Setup = Callable[[FakeExtendState], None]


@pytest.fixture
def fake() -> Iterator[FakeExtendServer]:
    """A small fake: 300 runs, three pages of 100."""
    with serving(RUNS) as server:
        yield server


@pytest.fixture(autouse=True)
def key_stays_secret(
    fake: FakeExtendServer,
    tmp_path: Path,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """Log everything during the test; after it, the fake's key is in none of it."""
    log_everything(caplog, monkeypatch)
    yield
    printed = "".join(capfd.readouterr())
    logged = logged_text(caplog)
    assert places_holding(fake.state.api_key, tmp_path, db_path, logged, printed) == []


def error_text(exc: BaseException) -> str:
    """The exception as a log or a --verbose run would show it, chained causes and all."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture(scope="module")
def one_good_sync(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the pipeline and DuckDB file one sync of the small fake leaves."""
    folder = tmp_path_factory.mktemp("one_good_sync")
    state = FakeExtendState()
    state.load(generate_runs(RUNS, newest=NEWEST))
    with FakeExtendServer(state) as server, pytest.MonkeyPatch.context() as env:
        env.setenv("DLT_DATA_DIR", str(folder / "dlt_data"))
        pipeline = make_pipeline(
            pipelines_dir=folder / "pipelines", duckdb_file=folder / "extend_runs.duckdb"
        )
        run_sync(pipeline, api_key=state.api_key, base_url=server.url, page_size=PAGE)
    return folder


@pytest.fixture
def synced(one_good_sync: Path, tmp_path: Path) -> None:
    """This test's folder as one good sync of `fake` left it; copied, being the same each time."""
    shutil.copytree(one_good_sync, tmp_path, dirs_exist_ok=True)


def change_the_api(state: FakeExtendState) -> None:
    """What the next sync must pick up: new runs over two pages, and runs that finished."""
    in_flight = state.in_flight_ids()
    state.settle_run(in_flight[0], "PROCESSED")
    state.settle_run(in_flight[1], "FAILED")
    state.add_runs(150, status="PROCESSING")


def from_page_2(*faults: Fault) -> Setup:
    """Serve `faults`, one per request, from the second list request of the next sync on."""

    def setup(state: FakeExtendState) -> None:
        state.faults = [Fault(), *faults]

    return setup


def with_quirks(quirks: dict[int, str]) -> Setup:
    """Bend the next sync's pages by number (see fake_api.PAGE_QUIRKS)."""

    def setup(state: FakeExtendState) -> None:
        state.list_pages_served = 0
        state.page_quirks = quirks

    return setup


def failing_after(pages: int) -> Setup:
    def setup(state: FakeExtendState) -> None:
        state.list_pages_served = 0
        state.fail_after_pages = pages

    return setup


def a_run(**changes: Any) -> dict[str, Any]:
    """A valid run newer than the fake's; a change to None drops that field."""
    run = generate_runs(1, newest=NEWEST + timedelta(days=1), start_index=90_000)[0]
    run.update(changes)
    return {k: v for k, v in run.items() if v is not None}


def raw_page(*records: Any) -> Fault:
    """A 200 answer holding exactly `records`, and no next page."""
    return Fault(status=200, body=orjson.dumps({"object": "list", "data": list(records)}))


def nested_page(depth: int) -> Fault:
    """A 200 answer whose one run has metadata nested `depth` levels deep."""
    body = orjson.dumps({"object": "list", "data": [a_run(metadata="DEEP")]})
    nested = b'{"k":' * depth + b"1" + b"}" * depth
    return Fault(status=200, body=body.replace(b'"DEEP"', nested))


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def loaded(db_path: Path) -> dict:
    """table_rows, or nothing when no sync has created the table yet."""
    if not db_path.exists():
        return {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'extend' and table_name = 'parse_runs'"
        ).fetchone()
    return table_rows(db_path) if tables[0] else {}


def clear_faults(state: FakeExtendState) -> None:
    state.faults, state.page_quirks, state.fail_after_pages = [], {}, None


TRANSIENT_FAULTS = [
    pytest.param([Fault(status=429, retry_after="1")], {}, 0.9, id="429-retry-after-seconds"),
    pytest.param([Fault(status=429, retry_after_date=2)], {}, 0.9, id="429-retry-after-date"),
    pytest.param([Fault(status=429, retry_after="0")] * (ATTEMPTS - 1), {}, 0, id="429-storm"),
    pytest.param([Fault(status=500), Fault(status=503)], {}, 0, id="500-then-503"),
    pytest.param([HTML_502], {}, 0, id="502-html-page"),
    pytest.param(
        [Fault(status=504, body=b"upstream timed out", content_type="text/plain")],
        {},
        0,
        id="504-plain-text",
    ),
    pytest.param([Fault(reset=True)], {}, 0, id="connection-reset"),
    pytest.param([Fault(delay=1.0)], SHORT_TIMEOUT, 0.3, id="answer-past-the-timeout"),
    pytest.param([Fault(cut_body=True)], {}, 0, id="body-cut-off"),
]


@pytest.mark.parametrize(("faults", "settings", "min_wait"), TRANSIENT_FAULTS)
def test_a_passing_fault_on_a_page_is_retried_and_every_run_loaded_once(
    fake, sync, db_path, faults, settings, min_wait
):
    from_page_2(*faults)(fake.state)

    sync(page_size=PAGE, **settings)

    requests = fake.state.requests
    assert len(requests) == RUNS // PAGE + len(faults)
    assert requests[2].at - requests[1].at >= min_wait
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS


def test_a_first_sync_that_fails_part_way_stores_nothing_and_the_next_loads_every_run(
    fake, sync, db_path, tmp_path
):
    fake.state.fail_after_pages = 2

    with pytest.raises(Exception, match="INTERNAL_ERROR") as failure:
        sync(page_size=PAGE)

    assert fake.state.api_key not in error_text(failure.value)
    assert loaded(db_path) == {}
    assert stored_cursor(tmp_path) == {}
    fake.state.fail_after_pages = None
    sync(page_size=PAGE)
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS


FAILURES = [
    pytest.param(
        from_page_2(*[Fault(status=429, retry_after="0")] * ATTEMPTS),
        {},
        "HTTP 429",
        id="429-storm-past-every-retry",
    ),
    pytest.param(
        from_page_2(*[HTML_502] * ATTEMPTS),
        {},
        "502 Bad Gateway",
        id="502-html-page-every-time",
    ),
    pytest.param(
        from_page_2(*[Fault(status=503)] * ATTEMPTS), {}, "requestId req_fake_", id="503-every-time"
    ),
    pytest.param(failing_after(1), {}, "INTERNAL_ERROR", id="500-from-page-2-on"),
    pytest.param(from_page_2(*[Fault(reset=True)] * ATTEMPTS), {}, "reset", id="resets"),
    pytest.param(
        from_page_2(*[Fault(delay=0.6)] * ATTEMPTS),
        SHORT_TIMEOUT,
        "request_timeout",
        id="timeouts",
    ),
    pytest.param(from_page_2(*[Fault(cut_body=True)] * ATTEMPTS), {}, "cut off", id="cut-bodies"),
    pytest.param(
        from_page_2(Fault(status=200, body=b"<html>Sign in</html>", content_type="text/html")),
        {},
        "not JSON",
        id="html-page-with-200",
    ),
    pytest.param(with_quirks({2: "repeat-token"}), {}, "same nextPageToken", id="same-token-twice"),
    pytest.param(
        with_quirks(dict.fromkeys(range(2, 60), "hollow")),
        {},
        "empty pages",
        id="endless-empty-pages",
    ),
    pytest.param(from_page_2(raw_page(a_run(id=None))), {}, "'id'", id="run-without-id"),
    pytest.param(
        from_page_2(raw_page(a_run(createdAt=None))), {}, "'createdAt'", id="run-without-createdAt"
    ),
    pytest.param(
        from_page_2(raw_page(a_run(createdAt="yesterday"))),
        {},
        "RFC 3339",
        id="createdAt-not-a-time",
    ),
    pytest.param(from_page_2(raw_page("pr_text")), {}, "not a run", id="run-not-an-object"),
    pytest.param(
        from_page_2(raw_page(a_run(metrics={"processingTimeMs": 1e300}))),
        {},
        "processingTimeMs=1e+300, which is not a whole number",
        id="processing-time-past-bigint",
    ),
    pytest.param(
        from_page_2(Fault(status=200, body=b'{"object": "list", "data": {"id": "pr_1"}}')),
        {},
        "'data'",
        id="data-not-a-list",
    ),
    pytest.param(from_page_2(nested_page(1020)), {}, "nested", id="metadata-1020-levels-deep"),
    pytest.param(from_page_2(nested_page(3000)), {}, "nested", id="answer-3000-levels-deep"),
]


@pytest.mark.parametrize(("setup", "settings", "expected"), FAILURES)
def test_a_sync_that_cannot_finish_fails_in_one_line_and_keeps_the_last_good_sync(
    fake, synced, sync, db_path, tmp_path, setup, settings, expected
):
    before = (table_rows(db_path), stored_cursor(tmp_path))
    change_the_api(fake.state)
    setup(fake.state)

    with pytest.raises(Exception) as failure:
        sync(page_size=PAGE, **settings)

    code, message = describe_failure(failure.value)
    assert code == EXIT_API
    assert expected in message
    assert "\n" not in message
    assert fake.state.api_key not in error_text(failure.value)
    assert (table_rows(db_path), stored_cursor(tmp_path)) == before
    clear_faults(fake.state)
    sync(page_size=PAGE)
    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 150


@pytest.mark.parametrize(
    "quirks",
    [
        {1: "hollow"},
        {2: "hollow"},
        dict.fromkeys(range(2, 21), "hollow"),
        {2: "null-data"},
        {3: "blank-token"},
        {2: "overlap", 3: "overlap"},
    ],
    ids=[
        "empty-first-page-with-token",
        "empty-page-with-token",
        "19-empty-pages-in-a-row",
        "data-null-with-token",
        "empty-string-token-on-the-last-page",
        "pages-that-overlap",
    ],
)
def test_a_misbehaving_page_is_read_through_and_every_run_loaded_once(fake, sync, db_path, quirks):
    fake.state.page_quirks = quirks

    sync(page_size=PAGE)

    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS


NAMES = [
    "請求書_2026年.pdf",
    "счёт-фактура №7.pdf",
    "فاتورة ٢٠٢٦.pdf",
    "חשבונית מס.pdf",
    "बीजक.pdf",
    "ใบแจ้งหนี้.pdf",
    "청구서.pdf",
    "Τιμολόγιο.pdf",
    "🧾 receipt 👩🏽‍💻.pdf",
    "e\u0301te\u0301 zero\u200bwidth \u202eright-to-left.pdf",
    "tab\tand\nnewline.pdf",
    "nul\x00byte.pdf",
]


def odd_runs(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs that are valid but odd, each newer than the last, keyed by a readable id."""
    without_optional = {k: v for k, v in base.items() if k not in ("metrics", "usage", "batchId")}
    bare_file = {k: v for k, v in base["file"].items() if k not in ("metadata", "type")}
    runs = [
        {**base, "id": "pr_nofile", "file": None},
        {
            **base,
            "id": "pr_newenum",
            "status": "ARCHIVED",
            "failureReason": "NEW_REASON",
            "file": {**base["file"], "type": "HEIC"},
        },
        {**base, "id": "pr_extra", "shinyNewField": {"a": 1}, "output": {"chunks": []}},
        {**base, "id": "pr_nulls", "metrics": None, "usage": None, "metadata": None},
        {**without_optional, "id": "pr_missing", "file": bare_file},
        {**base, "id": "pr_large", "metadata": {"blob": "x" * 1_000_000, "ключ": "值"}},
        {**base, "id": "pr_deep300", "metadata": nested(300)},
        {**base, "id": "pr_deep800", "metadata": nested(800)},
    ]
    for number, name in enumerate(NAMES):
        runs.append({**base, "id": f"pr_name{number}", "file": {**base["file"], "name": name}})
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for offset, run in enumerate(runs):
        created = start + timedelta(seconds=offset, microseconds=offset * 1001)
        run["createdAt"] = created.isoformat().replace("+00:00", "Z")
    return runs


def test_odd_but_valid_records_are_stored_exactly(fake, sync, db_path):
    runs = odd_runs(next(r for r in fake.state.runs() if r["status"] == "PROCESSED"))
    fake.state.load(runs)

    sync()

    rows = table_rows(
        db_path,
        "id, status, failure_reason, file_type, file_id, page_count, credits, "
        "file_page_count, batch_id, file_name, created_at, metadata",
    )
    assert len(rows) == len(runs)
    assert rows["pr_nofile"][4] is None
    assert rows["pr_newenum"][1:4] == ("ARCHIVED", "NEW_REASON", "HEIC")
    assert rows["pr_extra"][0] == "pr_extra"
    assert rows["pr_nulls"][5:7] == (None, None) and rows["pr_nulls"][11] is None
    assert rows["pr_missing"][3] is None and rows["pr_missing"][5:9] == (None,) * 4
    for run in runs:
        stored = rows[run["id"]]
        assert stored[9] == (run["file"] or {}).get("name")
        assert stored[10] == datetime.fromisoformat(run["createdAt"])
        assert (json.loads(stored[11]) if stored[11] else None) == run.get("metadata")
