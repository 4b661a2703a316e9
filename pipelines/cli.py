"""`extend-sync`: the command people run by hand, from cron or from a scheduler."""

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from extend_source.errors import (
    ExtendApiError,
    ExtendConfigError,
    ExtendDataError,
    ExtendError,
    ExtendLockedError,
    ExtendTransportError,
    root_cause,
)
from extend_source.settings import API_KEY_ENV
from pipelines.extend_pipeline import (
    DEFAULT_DATASET,
    DEFAULT_PIPELINE_NAME,
    SyncResult,
    make_pipeline,
    run_sync,
)

logger = logging.getLogger("extend_sync")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_API = 3
EXIT_DESTINATION = 4
EXIT_BUSY = 5  # another sync of the same pipeline or DuckDB file is running

DEMO_RUNS = 3000
LOG_FORMATS = ("text", "json")

# Flag name -> extend_source argument; only flags the user gave are passed, so
# the rest still come from .dlt/config.toml or the environment.
SOURCE_FLAGS = {
    "base_url": "base_url",
    "workspace_id": "workspace_id",
    "start_date": "start_date",
    "status": "status",
    "batch_id": "batch_id",
    "source": "source",
    "source_id": "source_id",
    "file_name_contains": "file_name_contains",
    "page_size": "page_size",
}


def build_parser() -> argparse.ArgumentParser:
    """The sync's flags; the API key is never one of them."""
    parser = argparse.ArgumentParser(
        prog="extend-sync",
        description="Copy Extend parse runs into DuckDB or any dlt destination, incrementally. "
        f"The API key comes from {API_KEY_ENV} or .dlt/secrets.toml.",
    )
    parser.add_argument("--base-url", help="API host or region: us, us2, eu1 (default us)")
    parser.add_argument("--workspace-id", help="x-extend-workspace-id, for organization keys")
    parser.add_argument(
        "--destination",
        help="dlt destination: duckdb (default), postgres, filesystem, motherduck, bigquery, "
        "snowflake, databricks, redshift, ...; else destination_type from dlt config",
    )
    parser.add_argument(
        "--table-format",
        choices=("delta", "iceberg"),
        help="table format on the filesystem destination (delta)",
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset/schema name")
    parser.add_argument("--pipeline-name", default=None, help="dlt pipeline name (extend)")
    parser.add_argument("--duckdb-file", default=None, help="DuckDB file (extend_runs.duckdb)")
    parser.add_argument("--start-date", help="skip runs created before this date")
    parser.add_argument("--status", help="only runs with this status")
    parser.add_argument("--batch-id", help="only runs of this batch (bpar_...)")
    parser.add_argument("--source", help="only runs created by this source, e.g. API")
    parser.add_argument("--source-id", help="only runs of this source id")
    parser.add_argument("--file-name-contains", help="only runs whose file name contains this")
    parser.add_argument("--page-size", type=int, help="runs per list request, 1-1000 (1000)")
    parser.add_argument("--full-refresh", action="store_true", help="drop tables and state")
    parser.add_argument("--demo", action="store_true", help="sync from a local fake API")
    parser.add_argument("--verbose", action="store_true", help="log request detail")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="stderr log lines: text, or json (one object per line)",
    )
    parser.epilog = "extend-sync report --help: a summary of the runs in the DuckDB file."
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sync (or, with `report` first, the report) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from pipelines.report import main as report_main

        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose, log_format=args.log_format)
    started = time.monotonic()
    try:
        result = _demo(args) if args.demo else _sync(args)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            say_failure("interrupted; the last good sync is kept", log_format=args.log_format)
            return EXIT_FAILED
        code, message = describe_failure(exc)
        say_failure(f"error: {message}", log_format=args.log_format)
        if args.verbose:
            logger.debug("failure detail", exc_info=exc)
        return code
    print(summary(result, time.monotonic() - started))
    return EXIT_OK


def say_failure(message: str, *, log_format: str) -> None:
    """The last line of a failed sync on stderr: plain text, or a JSON record like the log."""
    if log_format == "json":
        logger.error(message)
    else:
        print(f"extend-sync: {message}", file=sys.stderr)


def _sync(args: argparse.Namespace) -> SyncResult:
    pipeline = make_pipeline(
        pipeline_name=args.pipeline_name or DEFAULT_PIPELINE_NAME,
        destination=args.destination,
        dataset=args.dataset,
        duckdb_file=args.duckdb_file,
    )
    return run_sync(
        pipeline,
        full_refresh=args.full_refresh,
        table_format=args.table_format,
        **source_settings(args),
    )


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments the user set by flag."""
    given = {arg: getattr(args, flag) for flag, arg in SOURCE_FLAGS.items()}
    return {k: v for k, v in given.items() if v is not None}


def _demo(args: argparse.Namespace) -> SyncResult:
    from extend_source.fake_api import FakeExtendServer, FakeExtendState, generate_runs

    state = FakeExtendState()
    state.load(generate_runs(DEMO_RUNS))
    with FakeExtendServer(state) as server:
        logger.info("demo: serving %d fake parse runs at %s", DEMO_RUNS, server.url)
        os.environ[API_KEY_ENV] = state.api_key
        args.base_url = server.url
        args.pipeline_name = args.pipeline_name or "extend_demo"
        # The demo's file, not whatever destination dlt config names, unless a flag does.
        args.destination = args.destination or "duckdb"
        args.duckdb_file = args.duckdb_file or "extend_demo.duckdb"
        return _sync(args)


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and one-line message for a failure, from its root cause."""
    cause = root_cause(exc)
    if isinstance(cause, ExtendConfigError):
        return EXIT_CONFIG, str(cause)
    if isinstance(cause, ExtendApiError | ExtendTransportError | ExtendDataError):
        return EXIT_API, str(cause)
    if isinstance(cause, ExtendLockedError):
        return EXIT_BUSY, str(cause)
    if isinstance(cause, ExtendError):
        return EXIT_FAILED, str(cause)
    if _is_config_problem(cause):
        return EXIT_CONFIG, _first_line(cause)
    if _is_destination_problem(exc):
        return EXIT_DESTINATION, f"destination failed: {_first_line(cause)}"
    return EXIT_FAILED, f"{type(cause).__name__}: {_first_line(cause)}"


def _is_config_problem(exc: BaseException) -> bool:
    from dlt.common.configuration.exceptions import ConfigurationException

    return isinstance(exc, ConfigurationException)


def _is_destination_problem(exc: BaseException) -> bool:
    from dlt.pipeline.exceptions import PipelineStepFailed

    # "sync" is where dlt first opens the destination, to read back its state.
    return isinstance(exc, PipelineStepFailed) and exc.step in ("sync", "load", "normalize")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def summary(result: SyncResult, seconds: float) -> str:
    """The closing lines of a sync."""
    stats = result.stats
    return (
        f"extend-sync: {stats.runs_listed} runs read in {stats.pages} pages "
        f"({stats.runs_refreshed} refreshed one by one, {stats.runs_gone} gone), "
        f"{result.rows_loaded} rows loaded into {result.destination} "
        f"{result.dataset}.parse_runs at {result.location} in {seconds:.1f}s "
        f"({stats.requests} HTTP requests)"
    )


class _StderrHandler(logging.StreamHandler):
    # Looks stderr up at each record, so a replaced sys.stderr (as under pytest)
    # is followed instead of writing to a stream that was closed.
    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802
        # dlt gives its logger's first handler a format of its own when a pipeline
        # starts; the first format set here is kept, so dlt's lines match ours.
        if self.formatter is None:
            super().setFormatter(fmt)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, verbose: bool, log_format: str = "text") -> None:
    """Log to stderr, one line per event, as text or JSON, as a cron job should."""
    handler = _StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
    # dlt's logger does not propagate; it writes through the same handler instead.
    logging.getLogger("dlt").handlers = [handler]
    for noisy in ("dlt", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
