"""Analytics views over `parse_runs`, created (or replaced) in the dataset after each load.

Each view is written once, in SQL that DuckDB and PostgreSQL both run: days are
UTC dates of `created_at`, percentiles use `percentile_cont ... within group`.
A destination that cannot run a view (a warehouse without ordered-set
aggregates, say) keeps its other views and logs a warning; the load itself has
already succeeded by then.
"""

import logging
from dataclasses import dataclass

import dlt
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.job_client_impl import SqlJobClientBase

from extend_source import TABLE_NAME
from extend_source.settings import TERMINAL_STATUSES

logger = logging.getLogger(__name__)

TABLE = TABLE_NAME
RUN_DATE = "cast(created_at at time zone 'UTC' as date)"
AGE = "current_timestamp - created_at"
NOT_FINISHED = "coalesce(status, '') not in ({})".format(
    ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
)


@dataclass(frozen=True)
class View:
    """One view: its name, what it answers, and its query over `{table}`."""

    name: str
    description: str
    query: str


VIEWS = (
    View(
        "runs_daily",
        "runs, pages and credits per UTC day and status",
        f"""
        select
            {RUN_DATE} as run_date,
            status,
            count(*) as runs,
            cast(coalesce(sum(page_count), 0) as bigint) as pages,
            coalesce(sum(credits), 0) as credits
        from {{table}}
        group by 1, 2
        """,
    ),
    View(
        "failure_reasons",
        "failed runs per failure reason, first and last seen, with an example message",
        """
        select
            failure_reason,
            count(*) as runs,
            min(created_at) as first_seen,
            max(created_at) as last_seen,
            max(failure_message) as example_message
        from {table}
        where status = 'FAILED'
        group by failure_reason
        """,
    ),
    View(
        "processing_times",
        "p50, p90 and p99 processing time of processed runs per UTC day and file type",
        f"""
        select
            {RUN_DATE} as run_date,
            file_type,
            count(*) as runs,
            percentile_cont(0.5) within group (order by processing_time_ms) as p50_ms,
            percentile_cont(0.9) within group (order by processing_time_ms) as p90_ms,
            percentile_cont(0.99) within group (order by processing_time_ms) as p99_ms
        from {{table}}
        where status = 'PROCESSED' and processing_time_ms is not null
        group by 1, 2
        """,
    ),
    View(
        "runs_in_flight",
        "runs not finished yet, with their age",
        f"""
        select
            id,
            status,
            file_name,
            file_type,
            created_at,
            updated_at,
            {AGE} as age,
            cast(extract(epoch from ({AGE})) / 3600.0 as double precision) as age_hours
        from {{table}}
        where {NOT_FINISHED}
        """,
    ),
)
VIEW_NAMES = tuple(view.name for view in VIEWS)


def create_views(pipeline: dlt.Pipeline) -> list[str]:
    """Create or replace every view in the pipeline's dataset; return the names created."""
    if not _has_sql(pipeline):
        return []
    created = []
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        for view in VIEWS:
            name = client.make_qualified_table_name(view.name)
            query = view.query.format(table=table)
            try:
                client.execute_sql(f"create or replace view {name} as {query}")
            except DatabaseException as exc:
                logger.warning(
                    "view %s was not created on %s: %s",
                    view.name,
                    pipeline.destination.destination_name,
                    _first_line(exc),
                )
                continue
            created.append(view.name)
    logger.info("analytics views ready: %s", ", ".join(created) or "none")
    return created


def drop_views(pipeline: dlt.Pipeline) -> None:
    """Drop the views, if the dataset has them, so that their table can be dropped."""
    if not _has_sql(pipeline):
        return
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return
        for view in VIEWS:
            client.execute_sql(f"drop view if exists {client.make_qualified_table_name(view.name)}")


def _has_sql(pipeline: dlt.Pipeline) -> bool:
    # The filesystem destination has a query engine but no place to keep a view;
    # its Delta table is read directly (see the README).
    if isinstance(pipeline.destination_client(), SqlJobClientBase):
        return True
    logger.info(
        "no analytics views on %s: it is not a SQL database", pipeline.destination.destination_name
    )
    return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
