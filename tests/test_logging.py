"""Logs for schedulers: stderr only, as text or as one JSON object per line."""

import json
import logging
from datetime import datetime

import dlt

from pipelines.cli import EXIT_CONFIG, configure_logging, main

FIELDS = {"time", "level", "logger", "message"}


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_are_one_object_per_line_with_time_level_logger_and_message(capsys):
    assert main(["--demo", "--log-format", "json"]) == 0

    captured = capsys.readouterr()
    records = json_lines(captured.err)
    assert records and all(record.keys() >= FIELDS for record in records)
    assert all(datetime.fromisoformat(record["time"]).tzinfo for record in records)
    assert any(r["logger"] == "extend_source" and "page 1" in r["message"] for r in records)
    assert "rows loaded" in captured.out and "{" not in captured.out


def test_a_failure_in_json_mode_is_a_json_error_record(capsys):
    code = main(["--base-url", "http://127.0.0.1:9", "--log-format", "json"])

    last = json_lines(capsys.readouterr().err)[-1]
    assert code == EXIT_CONFIG
    assert last["level"] == "ERROR" and "EXTEND_API_KEY" in last["message"]


def test_dlt_log_lines_follow_the_chosen_format(tmp_path, capsys):
    configure_logging(verbose=False, log_format="json")
    dlt.pipeline(pipeline_name="format_check", pipelines_dir=str(tmp_path), destination="duckdb")

    logging.getLogger("dlt").warning("a warning from dlt")

    (record,) = json_lines(capsys.readouterr().err)
    assert record["logger"] == "dlt" and record["message"] == "a warning from dlt"
