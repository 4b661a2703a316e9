"""What keeps syncs from colliding or stopping half-way: locks, and the finish of a killed sync.

Two syncs of one pipeline would share its dlt working folder (state, load
packages), and two writers of one DuckDB file would collide at load time, so a
sync holds a lock on each. The locks are `flock` locks, which the operating
system drops when the process ends, even by SIGKILL: a lock is never stale.
"""

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import dlt
from filelock import FileLock, Timeout

from extend_source import TABLE_NAME
from extend_source.errors import ExtendLockedError

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".sync.lock"
DUCKDB = "dlt.destinations.duckdb"

T = TypeVar("T")


def lock_paths(pipeline: dlt.Pipeline) -> list[Path]:
    """The lock files of a sync: one beside the pipeline's folder, one beside its DuckDB file."""
    paths = [Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}{LOCK_SUFFIX}"]
    database = duckdb_file(pipeline)
    if database:
        paths.append(Path(f"{database}{LOCK_SUFFIX}"))
    return paths


def duckdb_file(pipeline: dlt.Pipeline) -> Path | None:
    """The DuckDB file a pipeline loads into, or None for any other destination."""
    if not pipeline.destination or pipeline.destination.destination_type != DUCKDB:
        return None
    # Read from the factory when it was given the file: resolving the
    # destination's whole configuration for one path costs tens of milliseconds.
    given = pipeline.destination.config_params.get("credentials")
    database = getattr(given, "database", None) or (
        pipeline.destination_client().config.credentials.database
    )
    return Path(database)


@contextmanager
def sync_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold every lock of a sync, or raise `ExtendLockedError` at once if one is taken."""
    with ExitStack() as held:
        for path in lock_paths(pipeline):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                held.enter_context(FileLock(path, timeout=0))
            except Timeout:
                raise ExtendLockedError(
                    f"another sync is running: it holds the lock {path}; let it finish, "
                    "then run this sync again (the lock goes when that process ends)"
                ) from None
        yield


def finish_interrupted_sync(pipeline: dlt.Pipeline) -> None:
    """Load what a killed or failed sync left extracted or normalised.

    `Pipeline.run` would load such packages and then stop without reading anything
    new; loading them first lets this sync go on to read the API as usual.
    """
    if not pipeline.has_pending_data:
        return
    pending = pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()
    if any(_appends_runs(pipeline, load_id) for load_id in pending):
        # Its rows may be in the table already, or another pipeline may have filled
        # the table since: loaded again, it would store runs twice. dlt rewinds the
        # state to before it, so this sync reads those runs again and merges them.
        logger.warning(
            "an interrupted first sync left %d load package(s) that append: %s; "
            "dropping them and reading their runs again",
            len(pending),
            ", ".join(pending),
        )
        pipeline.abort_packages()
        return
    logger.warning(
        "loading %d load package(s) an interrupted sync left behind: %s",
        len(pending),
        ", ".join(pending),
    )
    pipeline.normalize()
    pipeline.load()


def _appends_runs(pipeline: dlt.Pipeline, load_id: str) -> bool:
    table = pipeline.get_load_package_info(load_id).schema.tables.get(TABLE_NAME, {})
    return table.get("write_disposition") == "append"


@contextmanager
def sync_guard(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold the pipeline's locks for the block, after finishing an interrupted sync."""
    with sync_lock(pipeline):
        finish_interrupted_sync(pipeline)
        yield


def guarded(sync: Callable[..., T]) -> Callable[..., T]:
    """Run `sync(pipeline, ...)` inside `sync_guard(pipeline)`."""

    @functools.wraps(sync)
    def run(pipeline: dlt.Pipeline, *args: Any, **kwargs: Any) -> T:
        with sync_guard(pipeline):
            return sync(pipeline, *args, **kwargs)

    return run
