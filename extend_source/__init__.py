"""dlt source for Extend parse runs: `extend_source()` and its `parse_runs` resource."""

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from extend_source.client import ExtendClient
from extend_source.cursor import SyncCursor, cursor_key
from extend_source.errors import (
    ExtendApiError,
    ExtendConfigError,
    ExtendError,
    FirstLoadConflictError,
)
from extend_source.memory import long_lived_objects_frozen, release_arrow_memory
from extend_source.normalize import (
    APPEND_COLUMN_HINTS,
    COLUMN_HINTS,
    decode_list_page,
    page_to_table,
)
from extend_source.options import SyncOptions
from extend_source.paging import iter_pages
from extend_source.settings import (
    API_KEY_ENV,
    API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_INFLIGHT_WINDOW_HOURS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REFRESH_REQUESTS_PER_SECOND,
    REQUEST_MAX_ATTEMPTS,
    REQUEST_TIMEOUT_SECONDS,
)

__all__ = ["SOURCE_NAME", "TABLE_NAME", "ExtendError", "SyncStats", "extend_source"]

logger = logging.getLogger(__name__)

SOURCE_NAME = "extend"
TABLE_NAME = "parse_runs"
REFRESH_BATCH = 500
# dlt's extract costs about as much per yielded table as converting a page, so
# pages are joined into tables of about this many rows before they are yielded.
YIELD_ROWS = 10_000


class _JsonHintNotice(logging.Filter):
    # Arrow has no JSON type dlt accepts, so `metadata` travels as text with a
    # json hint; dlt warns about that difference on every page, which is noise.
    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintNotice())


@dataclass
class SyncStats:
    """Counts a sync reports at the end."""

    pages: int = 0
    runs_listed: int = 0
    runs_refreshed: int = 0
    runs_gone: int = 0
    requests: int = 0


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def extend_source(
    api_key: str | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    workspace_id: str | None = None,
    api_version: str = API_VERSION,
    page_size: int = DEFAULT_PAGE_SIZE,
    status: str | None = None,
    batch_id: str | None = None,
    source: str | None = None,
    source_id: str | None = None,
    file_name_contains: str | None = None,
    start_date: str | None = None,
    inflight_window_hours: float = DEFAULT_INFLIGHT_WINDOW_HOURS,
    refresh_requests_per_second: float = DEFAULT_REFRESH_REQUESTS_PER_SECOND,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    request_max_attempts: int = REQUEST_MAX_ATTEMPTS,
    request_backoff_factor: float = 1.0,
    stats: SyncStats | None = None,
    first_load: bool = False,
) -> DltResource:
    """Parse runs of one Extend workspace, read incrementally and merged on `id`.

    Settings come from dlt config and secrets (`[sources.extend]`); the key may
    also come from the `EXTEND_API_KEY` environment variable, as with Extend's SDKs.

    `first_load` appends instead, for a destination that has no `parse_runs` table
    yet: it spares the merge's staging copy. The resource then raises
    `FirstLoadConflictError` before the load if a cursor is stored, or the list repeats
    a run or is not newest first; run the sync again without it.
    """
    api_key = api_key or os.environ.get(API_KEY_ENV)
    if not api_key:
        raise ExtendConfigError(
            f"no Extend API key: set {API_KEY_ENV} or sources.extend.api_key in .dlt/secrets.toml"
        )
    options = SyncOptions.build(
        page_size=page_size,
        start_date=start_date,
        inflight_window_hours=inflight_window_hours,
        refresh_requests_per_second=refresh_requests_per_second,
        status=status,
        batch_id=batch_id,
        source=source,
        source_id=source_id,
        file_name_contains=file_name_contains,
    )
    client = ExtendClient(
        api_key,
        base_url=base_url,
        api_version=api_version,
        workspace_id=workspace_id,
        timeout=request_timeout,
        max_attempts=request_max_attempts,
        backoff_factor=request_backoff_factor,
    )
    return parse_runs(client, options, stats or SyncStats(), first_load=first_load)


def parse_runs(
    client: ExtendClient, options: SyncOptions, stats: SyncStats, *, first_load: bool = False
) -> DltResource:
    """The `parse_runs` resource: list pages newest first, then refresh old in-flight runs."""

    @dlt.resource(
        name=TABLE_NAME,
        primary_key="id",
        write_disposition="append" if first_load else "merge",
        columns=APPEND_COLUMN_HINTS if first_load else COLUMN_HINTS,
    )
    def parse_runs_resource() -> Iterator[pa.Table]:
        key = cursor_key(options.filters, options.start_date)
        cursors = dlt.current.resource_state().setdefault("cursors", {})
        if first_load and cursors:
            raise FirstLoadConflictError("the pipeline already stores the cursor of a sync")
        state = cursors.setdefault(key, {})
        cursor = SyncCursor.load(
            state,
            start_date=options.start_date,
            window=options.inflight_window,
            unique=first_load,
        )
        logger.info(
            "listing parse runs back to %s; %d old in-flight runs to refresh",
            cursor.stop_at.isoformat() if cursor.stop_at else "the first run",
            len(cursor.to_refresh),
        )
        try:
            with long_lived_objects_frozen():
                yield from _joined(_list_runs(client, options, cursor, stats), YIELD_ROWS)
                yield from _refresh_runs(client, options, cursor, stats)
        finally:
            stats.requests += client.request_count
            client.close()
            release_arrow_memory()
        cursor.save(state)

    return parse_runs_resource


def _list_runs(
    client: ExtendClient, options: SyncOptions, cursor: SyncCursor, stats: SyncStats
) -> Iterator[pa.Table]:
    pages = iter_pages(
        lambda params: client.get_json("/parse_runs", params, fast_decode=decode_list_page),
        page_size=options.page_size,
        params=options.filters,
    )
    reached_end = True
    for page in pages:
        records = page.records
        table = records if isinstance(records, pa.Table) else page_to_table(records)
        stats.pages += 1
        stats.runs_listed += table.num_rows
        kept = cursor.observe(table)
        if kept.num_rows:
            yield kept
        logger.info(
            "page %d: %d runs (%d kept), %d listed so far",
            page.number,
            table.num_rows,
            kept.num_rows,
            stats.runs_listed,
        )
        # Stopping here spares the rate limit: everything older is already stored.
        if page.has_next and cursor.can_stop():
            reached_end = False
            break
    cursor.finish_paging(reached_end=reached_end)


def _joined(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    held: list[pa.Table] = []
    held_rows = 0
    for table in tables:
        held.append(table)
        held_rows += table.num_rows
        if held_rows >= rows:
            yield pa.concat_tables(held)
            held, held_rows = [], 0
    if held:
        yield pa.concat_tables(held)


def _refresh_runs(
    client: ExtendClient, options: SyncOptions, cursor: SyncCursor, stats: SyncStats
) -> Iterator[pa.Table]:
    batch: list[dict[str, Any]] = []
    for run_id in cursor.to_refresh:
        record = _fetch_run(client, run_id, options.refresh_requests_per_second)
        cursor.refreshed(run_id, record.get("status") if record else None)
        if record is None:
            stats.runs_gone += 1
            continue
        batch.append(record)
        stats.runs_refreshed += 1
        if len(batch) >= REFRESH_BATCH:
            yield page_to_table(batch)
            batch = []
    if batch:
        yield page_to_table(batch)
    if cursor.to_refresh:
        logger.info(
            "refreshed %d old in-flight runs one by one, %d gone",
            stats.runs_refreshed,
            stats.runs_gone,
        )


def _fetch_run(client: ExtendClient, run_id: str, rps: float) -> dict[str, Any] | None:
    # responseType=url keeps the run's (possibly large) output out of the answer.
    try:
        return client.get_json(
            f"/parse_runs/{quote(run_id, safe='')}",
            {"responseType": "url"},
            paced_rps=rps,
        )
    except ExtendApiError as exc:
        if exc.status != 404:
            raise
        logger.warning("run %s is gone (404); its last stored row is kept", run_id)
        return None
