"""`extend-sync report`: figures of known runs, the terminal text, and the PNG plot."""

import re
from datetime import date

import duckdb
import pytest
from PIL import Image

from pipelines.cli import EXIT_CONFIG, main
from pipelines.report import PLOT_DPI, PLOT_INCHES, STATUS_COLOURS, build_report
from tests.known_runs import KNOWN_RUNS

LAST_DAY = "2026-11-30"


@pytest.fixture
def synced(fake, sync, db_path):
    """The known runs synced into db_path."""
    fake.state.load(KNOWN_RUNS)
    sync()
    return db_path


def report_of(db_path, *, days: int):
    with duckdb.connect(str(db_path), read_only=True) as con:
        return build_report(con, days=days, last_day=date.fromisoformat(LAST_DAY))


def test_the_report_adds_up_the_known_runs_of_both_days(synced):
    report = report_of(synced, days=2)

    assert report.by_status == [
        ("PROCESSED", 5),
        ("FAILED", 3),
        ("CANCELLED", 1),
        ("PENDING", 1),
        ("PROCESSING", 1),
    ]
    assert (report.pages, report.credits) == (18, 27.0)
    assert [row[:2] for row in report.failure_reasons] == [("CORRUPT_FILE", 2), ("OCR_ERROR", 1)]
    # PDF times are 1, 2, 3 and 10 s: p50 2.5 s, p90 7.9 s; the one IMG took 0.5 s.
    assert report.slowest_file_types == [
        ("PDF", 4, pytest.approx(2.5), pytest.approx(7.9)),
        ("IMG", 1, pytest.approx(0.5), pytest.approx(0.5)),
    ]


def test_fewer_days_leave_older_runs_out(synced):
    report = report_of(synced, days=1)

    assert report.by_status == [
        ("FAILED", 2),
        ("CANCELLED", 1),
        ("PENDING", 1),
        ("PROCESSED", 1),
        ("PROCESSING", 1),
    ]
    assert report.credits == 15.0
    assert report.days == [date(2026, 11, 30)]


def test_the_terminal_summary_shows_counts_reasons_credits_and_file_types(synced, capsys):
    code = main(["report", "--duckdb-file", str(synced), "--days", "2", "--until", LAST_DAY])

    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"PROCESSED\s+5\s", out) and re.search(r"total\s+11\b", out)
    assert re.search(r"Credits 27\.0", out)
    assert re.search(r"CORRUPT_FILE\s+2\s", out)
    assert re.search(r"PDF\s+4\s+2\.5\s+7\.9", out)


def test_plot_draws_a_png_of_the_expected_size_with_bars_by_status(synced, tmp_path, capsys):
    png = tmp_path / "daily.png"

    code = main(["report", "--duckdb-file", str(synced), "--until", LAST_DAY, "--plot", str(png)])

    assert code == 0
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (int(PLOT_INCHES[0] * PLOT_DPI), int(PLOT_INCHES[1] * PLOT_DPI))
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    for status in ("PROCESSED", "FAILED"):
        assert _rgb(STATUS_COLOURS[status]) in colours, status


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--duckdb-file", "missing.duckdb"], "no DuckDB file"),
        (["--days", "0"], "--days"),
    ],
    ids=["missing-file", "zero-days"],
)
def test_bad_report_settings_are_configuration_errors(args, says, capsys):
    assert main(["report", *args]) == EXIT_CONFIG

    assert says in capsys.readouterr().err


def test_a_file_without_a_sync_in_it_names_the_fix(tmp_path, capsys):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()

    assert main(["report", "--duckdb-file", str(empty)]) == EXIT_CONFIG

    assert "run extend-sync" in capsys.readouterr().err
