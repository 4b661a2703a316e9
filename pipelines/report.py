"""`extend-sync report`: the last days of parse runs at a glance, from the local DuckDB file.

The report reads what a sync left in the file: the `runs_daily` view for counts,
pages and credits, and `parse_runs` for the failure reasons and processing times
of the chosen days. It opens the file read-only and never calls the API.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.cli import EXIT_CONFIG, EXIT_DESTINATION, EXIT_OK
from pipelines.extend_pipeline import DEFAULT_DATASET, DEFAULT_DUCKDB_FILE, TABLE
from pipelines.views import RUN_DATE

DEFAULT_DAYS = 7
TOP_ROWS = 5
# 10 x 5 inches at 100 dpi: a 1000 x 500 pixel PNG.
PLOT_INCHES = (10.0, 5.0)
PLOT_DPI = 100
STATUS_COLOURS = {
    "PROCESSED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#9e9e9e",
    "PROCESSING": "#1565c0",
    "PENDING": "#f9a825",
}
OTHER_COLOUR = "#6a1b9a"


class ReportError(Exception):
    """The report cannot be made; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Report:
    """The figures of one report, over the UTC days `first_day` to `last_day`."""

    first_day: date
    last_day: date
    by_status: list[tuple[str | None, int]]
    pages: int
    credits: float
    daily: list[tuple[date, str | None, int]]
    failure_reasons: list[tuple[str | None, int, str | None]]
    slowest_file_types: list[tuple[str | None, int, float, float]]

    @property
    def days(self) -> list[date]:
        """Every day of the report, the empty ones included."""
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=n) for n in range(count)]

    @property
    def total_runs(self) -> int:
        return sum(runs for _, runs in self.by_status)


def build_report(
    con: duckdb.DuckDBPyConnection,
    *,
    days: int = DEFAULT_DAYS,
    last_day: date | None = None,
    dataset: str = DEFAULT_DATASET,
) -> Report:
    """Read the report's figures for the `days` UTC days that end on `last_day` (today)."""
    last_day = last_day or datetime.now(UTC).date()
    first_day = last_day - timedelta(days=days - 1)
    schema = '"' + dataset.replace('"', '""') + '"'
    window = [first_day, last_day]

    daily = con.execute(
        f"select run_date, status, runs, pages, credits from {schema}.runs_daily "
        "where run_date between ? and ? order by run_date, status",
        window,
    ).fetchall()
    by_status: dict[str | None, int] = {}
    for _, status, runs, _, _ in daily:
        by_status[status] = by_status.get(status, 0) + runs

    return Report(
        first_day=first_day,
        last_day=last_day,
        by_status=sorted(by_status.items(), key=lambda item: (-item[1], str(item[0]))),
        pages=sum(row[3] for row in daily),
        credits=sum(row[4] for row in daily),
        daily=[(day, status, runs) for day, status, runs, _, _ in daily],
        failure_reasons=_failure_reasons(con, schema, window),
        slowest_file_types=_slowest_file_types(con, schema, window),
    )


def _failure_reasons(
    con: duckdb.DuckDBPyConnection, schema: str, window: list[date]
) -> list[tuple[str | None, int, str | None]]:
    return con.execute(
        f"select failure_reason, count(*) as runs, max(failure_message) "
        f"from {schema}.{TABLE} "
        f"where status = 'FAILED' and {RUN_DATE} between ? and ? "
        f"group by failure_reason order by runs desc, failure_reason limit {TOP_ROWS}",
        window,
    ).fetchall()


def _slowest_file_types(
    con: duckdb.DuckDBPyConnection, schema: str, window: list[date]
) -> list[tuple[str | None, int, float, float]]:
    return con.execute(
        f"select file_type, count(*), "
        f"percentile_cont(0.5) within group (order by processing_time_ms) / 1000.0, "
        f"percentile_cont(0.9) within group (order by processing_time_ms) / 1000.0 as p90 "
        f"from {schema}.{TABLE} "
        f"where status = 'PROCESSED' and processing_time_ms is not null "
        f"and {RUN_DATE} between ? and ? "
        f"group by file_type order by p90 desc, file_type limit {TOP_ROWS}",
        window,
    ).fetchall()


def format_report(report: Report, *, source: str = "") -> str:
    """The report as plain text for a terminal."""
    span = (report.last_day - report.first_day).days + 1
    lines = [
        f"Extend parse runs, {report.first_day} to {report.last_day} (UTC, {span} days)"
        + (f", from {source}" if source else ""),
        "",
        "Runs by status",
    ]
    total = report.total_runs
    if not total:
        lines.append("  no runs created in these days")
    for status, runs in report.by_status:
        lines.append(f"  {_label(status):<14}{runs:>10,}  {100 * runs / total:5.1f}%")
    lines.append(f"  {'total':<14}{total:>10,}")
    lines += ["", f"Pages {report.pages:,}    Credits {report.credits:,.1f}", ""]

    lines.append("Top failure reasons")
    if not report.failure_reasons:
        lines.append("  none")
    for reason, runs, message in report.failure_reasons:
        lines.append(f"  {_label(reason):<28}{runs:>8,}  {message or ''}")

    lines += ["", "Slowest file types (processed runs, seconds)"]
    if not report.slowest_file_types:
        lines.append("  none")
    else:
        lines.append(f"  {'file type':<14}{'runs':>8}{'p50':>10}{'p90':>10}")
    for file_type, runs, p50, p90 in report.slowest_file_types:
        lines.append(f"  {_label(file_type):<14}{runs:>8,}{p50:>10.1f}{p90:>10.1f}")
    return "\n".join(lines)


def _label(value: str | None) -> str:
    return value if value is not None else "(none)"


def plot_daily(report: Report, path: str | Path) -> None:
    """Draw daily runs by status as stacked bars into a PNG file of PLOT_INCHES at PLOT_DPI."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(
            "--plot needs matplotlib: pip install 'extend-dlt-connector[report]'"
        ) from None

    days = report.days
    counts: dict[str | None, list[int]] = {
        status: [0] * len(days) for status, _ in report.by_status
    }
    for day, status, runs in report.daily:
        counts[status][(day - report.first_day).days] = runs

    figure = Figure(figsize=PLOT_INCHES, dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = range(len(days))
    bottom = [0] * len(days)
    for status, values in counts.items():
        colour = STATUS_COLOURS.get(status or "", OTHER_COLOUR)
        axes.bar(positions, values, bottom=bottom, label=_label(status), color=colour, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]

    # At most about fifteen day labels, so that long reports stay legible.
    step = max(1, len(days) // 15)
    axes.set_xticks(list(positions)[::step], [day.isoformat() for day in days[::step]])
    axes.set_title(f"Extend parse runs per day by status, {report.first_day} to {report.last_day}")
    axes.set_ylim(0, max([*bottom, 1]) * 1.08)
    axes.set_ylabel("runs")
    axes.set_xlabel("day (UTC)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.subplots_adjust(left=0.08, right=0.84, bottom=0.2)
    figure.autofmt_xdate()
    figure.savefig(path, dpi=PLOT_DPI, format="png")


def build_parser() -> argparse.ArgumentParser:
    """The report's flags."""
    parser = argparse.ArgumentParser(
        prog="extend-sync report",
        description="Summarise the last days of parse runs from the local DuckDB file.",
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days to cover (7)")
    parser.add_argument(
        "--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (today, UTC)"
    )
    parser.add_argument("--duckdb-file", default=DEFAULT_DUCKDB_FILE, help="extend_runs.duckdb")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset/schema name")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw daily runs by status")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report (and draw the plot); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        report = _read(args)
        print(format_report(report, source=str(Path(args.duckdb_file).resolve())))
        if args.plot:
            plot_daily(report, args.plot)
            print(f"\nplot written to {args.plot}")
    except ReportError as exc:
        print(f"extend-sync report: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK


def _read(args: argparse.Namespace) -> Report:
    if args.days < 1:
        raise ReportError(f"--days must be 1 or more, not {args.days}")
    path = Path(args.duckdb_file)
    if not path.is_file():
        raise ReportError(f"no DuckDB file at {path}: run extend-sync first, or pass --duckdb-file")
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return build_report(con, days=args.days, last_day=args.until, dataset=args.dataset)
    except duckdb.CatalogException as exc:
        raise ReportError(
            f"{path} has no {args.dataset}.runs_daily view or parse_runs table ({exc}); "
            "a sync creates them, so run extend-sync (or pass --dataset)"
        ) from None
    except duckdb.IOException as exc:
        raise ReportError(
            f"cannot open {path}: {exc}; if a sync is writing it, run the report when it ends",
            EXIT_DESTINATION,
        ) from None
