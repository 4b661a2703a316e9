"""The pipeline: the Extend source, loaded into DuckDB by default or any dlt destination."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo

from extend_source import SyncStats, extend_source

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_NAME = "extend"
DEFAULT_DATASET = "extend"
DEFAULT_DUCKDB_FILE = "extend_runs.duckdb"
TABLE = "parse_runs"


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
    destination: str = "duckdb",
    dataset: str = DEFAULT_DATASET,
    duckdb_file: str | Path | None = None,
    pipelines_dir: str | Path | None = None,
) -> dlt.Pipeline:
    """A dlt pipeline for the sync; DuckDB writes to `duckdb_file` (default extend_runs.duckdb)."""
    target: Any = destination
    if destination == "duckdb":
        target = dlt.destinations.duckdb(str(duckdb_file or DEFAULT_DUCKDB_FILE))
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
    )


def run_sync(
    pipeline: dlt.Pipeline, *, full_refresh: bool = False, **source_settings: Any
) -> SyncResult:
    """Extract, normalise and load one sync; settings not given come from dlt config."""
    stats = SyncStats()
    source = extend_source(stats=stats, **source_settings)
    load_info = pipeline.run(source, refresh="drop_sources" if full_refresh else None)

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


def _location(pipeline: dlt.Pipeline) -> str:
    client_config = pipeline.destination_client().config
    credentials = getattr(client_config, "credentials", None)
    database = getattr(credentials, "database", None)
    if pipeline.destination.destination_name == "duckdb" and database:
        return str(Path(database).resolve())
    return pipeline.destination.destination_name
