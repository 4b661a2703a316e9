"""The pipeline: the Extend source, loaded into DuckDB by default or any dlt destination."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import TDestinationReferenceArg
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.pipeline.exceptions import PipelineStepFailed

from extend_source import SOURCE_NAME, TABLE_NAME, SyncStats, extend_source
from extend_source.errors import ExtendConfigError, FirstLoadConflictError, root_cause
from pipelines.guard import duckdb_file, guarded
from pipelines.views import create_views, drop_views

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_NAME = "extend"
DEFAULT_DATASET = "extend"
DEFAULT_DUCKDB_FILE = "extend_runs.duckdb"
DEFAULT_DESTINATION = "duckdb"
# DuckDB would cache what it loads up to most of the machine's memory, and sorts
# the merge's dedup in memory; capped, it spills to a temporary file instead, so a
# sync's peak memory stays flat however large the table grows. With two threads
# the merge of a million runs needs more than this cap.
DUCKDB_SETTINGS = {"memory_limit": "64MB", "threads": 1}
TABLE = TABLE_NAME
# The filesystem destination merges on `id` only into a table format; Delta is
# the one dlt writes with deltalake alone, readable by Spark, Trino and DuckDB.
DEFAULT_LAKE_TABLE_FORMAT = "delta"


@dataclass
class SyncResult:
    """What one sync did, for the summary line."""

    stats: SyncStats
    rows_loaded: int
    destination: str
    dataset: str
    location: str
    load_info: LoadInfo


def make_pipeline(
    *,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    destination: TDestinationReferenceArg | None = None,
    dataset: str = DEFAULT_DATASET,
    duckdb_file: str | Path | None = None,
    pipelines_dir: str | Path | None = None,
) -> dlt.Pipeline:
    """A dlt pipeline for the sync, to any dlt destination: a name, a factory or a module.

    With no `destination`, dlt config's `destination_type` (for example the
    `DESTINATION_TYPE` environment variable) names it, else DuckDB, which writes to
    `duckdb_file` (default extend_runs.duckdb). Credentials and other settings of the
    destination come from dlt config and secrets as usual.
    """
    target = destination or configured_destination(pipeline_name) or DEFAULT_DESTINATION
    if target == "duckdb":
        # Absolute, because dlt would resolve a relative path against the folder of
        # the pipeline's first run rather than the current one.
        path = str(Path(duckdb_file or DEFAULT_DUCKDB_FILE).resolve())
        _check_catalog_name(path, dataset)
        target = dlt.destinations.duckdb(_duckdb_credentials(path))
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
    )


def _duckdb_credentials(path: str) -> DuckDbCredentials:
    # Given as fields rather than a path string, which dlt would parse as a
    # connection URL with SQLAlchemy: a third of a second of import per sync.
    credentials = DuckDbCredentials({"database": path})
    credentials.global_config = dict(DUCKDB_SETTINGS)
    return credentials


def _check_catalog_name(path: str, dataset: str) -> None:
    # DuckDB names a file's catalog after the file, and `extend.parse_runs` is then
    # ambiguous between catalog and dataset: the load fails late, with a binder error.
    if Path(path).stem == dataset:
        raise ExtendConfigError(
            f"the DuckDB file {Path(path).name!r} has the same name as the dataset "
            f"{dataset!r}, which DuckDB cannot tell apart; name the file differently "
            "(e.g. extend_runs.duckdb) or choose another --dataset"
        )


def configured_destination(pipeline_name: str = DEFAULT_PIPELINE_NAME) -> str | None:
    """The destination dlt config names for this pipeline, as `dlt.pipeline` looks it up."""
    return dlt.config.get(f"pipelines.{pipeline_name}.destination_type") or dlt.config.get(
        "destination_type"
    )


@guarded
def run_sync(
    pipeline: dlt.Pipeline,
    *,
    full_refresh: bool = False,
    table_format: str | None = None,
    **source_settings: Any,
) -> SyncResult:
    """Extract, normalise and load one sync, then refresh the analytics views.

    Source settings not given come from dlt config; `table_format` ("delta" or
    "iceberg") applies to the filesystem destination, where it defaults to Delta.
    """
    load = prepare_load(pipeline, full_refresh=full_refresh, table_format=table_format)
    stats, load_info = _extract_and_load(pipeline, load, source_settings)
    create_views(pipeline)

    normalize_info = pipeline.last_trace.last_normalize_info
    rows = normalize_info.row_counts.get(TABLE, 0) if normalize_info else 0
    return SyncResult(
        stats=stats,
        rows_loaded=rows,
        destination=pipeline.destination.destination_name,
        dataset=pipeline.dataset_name,
        location=_location(pipeline),
        load_info=load_info,
    )


def _extract_and_load(
    pipeline: dlt.Pipeline, load: dict[str, Any], source_settings: dict[str, Any]
) -> tuple[SyncStats, LoadInfo]:
    """Run the pipeline once; a first load by append that meets a conflict runs again."""
    stats = SyncStats()
    first_load = is_first_load(pipeline)
    if first_load:
        logger.info("the destination has no %s table yet: this first sync appends", TABLE)
    try:
        source = extend_source(stats=stats, first_load=first_load, **source_settings)
        return stats, pipeline.run(source, **load)
    except PipelineStepFailed as exc:
        conflict = root_cause(exc)
        if not isinstance(conflict, FirstLoadConflictError):
            raise
    logger.warning("%s; loading this first sync with merge instead", conflict)
    stats = SyncStats(requests=stats.requests)
    return stats, pipeline.run(extend_source(stats=stats, **source_settings), **load)


def is_first_load(pipeline: dlt.Pipeline) -> bool:
    """True when the sync may append: a SQL destination without a `parse_runs` table.

    The filesystem destination keeps merging, into its table format.
    """
    if _stored_cursors(pipeline):
        return False
    database = duckdb_file(pipeline)
    if database and not database.exists():
        return True
    try:
        with pipeline.destination_client() as client:
            if not isinstance(client, SqlJobClientBase):
                return False
            _, columns = client.get_storage_table(TABLE)
    except Exception:
        # Merge, and let the run report the destination's problem the way dlt words it.
        return False
    return not columns


def _stored_cursors(pipeline: dlt.Pipeline) -> bool:
    source_state = pipeline.state.get("sources", {}).get(SOURCE_NAME, {})
    resources = source_state.get("resources", {})
    return bool(resources.get(TABLE, {}).get("cursors"))


def prepare_load(
    pipeline: dlt.Pipeline, *, full_refresh: bool = False, table_format: str | None = None
) -> dict[str, Any]:
    """The keyword arguments of `pipeline.run` for one sync, with the views out of the way.

    A full refresh drops the views first: PostgreSQL refuses to drop a table that a
    view reads, and the views are created again after the load.
    """
    if full_refresh:
        drop_views(pipeline)
    if table_format is None and _is_filesystem(pipeline):
        table_format = DEFAULT_LAKE_TABLE_FORMAT
    return {"refresh": "drop_sources" if full_refresh else None, "table_format": table_format}


def _is_filesystem(pipeline: dlt.Pipeline) -> bool:
    return pipeline.destination.destination_type == "dlt.destinations.filesystem"


def _location(pipeline: dlt.Pipeline) -> str:
    database = duckdb_file(pipeline)
    if database:
        return str(database.resolve())
    client_config = pipeline.destination_client().config
    bucket_url = getattr(client_config, "bucket_url", None)
    return str(bucket_url) if bucket_url else pipeline.destination.destination_name
