"""The API key is nowhere but where it was put: not in logs, errors, dlt's files or tables.

Each sync here runs with a distinctive key, every logger at DEBUG and the HTTP
library's wire debugging on, then every text and file it produced is searched.
The fault suite runs the same search after each of its faults.
"""

import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from extend_source.fake_api import FakeExtendServer, FakeExtendState, Fault, generate_runs
from pipelines.cli import main
from tests.conftest import NEWEST
from tests.leaks import SECRETS_FILE, log_everything, places_holding

KEY = "sk_live_CANARY_7Hq2xV9pLm4T"
RUNS = 300


@pytest.fixture
def fake() -> Iterator[FakeExtendServer]:
    """A small fake, accepting only KEY."""
    state = FakeExtendState(api_key=KEY)
    state.load(generate_runs(RUNS, newest=NEWEST))
    with FakeExtendServer(state) as server:
        yield server


@pytest.fixture(autouse=True)
def everything_logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    log_everything(caplog, monkeypatch)


@pytest.mark.parametrize("answers", ["right-key", "wrong-key"])
def test_the_key_is_not_in_logs_errors_files_or_tables_after_a_sync(
    fake, sync, db_path, tmp_path, caplog, capfd, answers
):
    if answers == "wrong-key":
        fake.state.api_key = "sk_the_key_the_api_expects"
    requests.get(fake.url + "/parse_runs", timeout=5)

    try:
        sync(page_size=100)
        failure = ""
    except Exception as exc:
        failure = "".join(traceback.format_exception(exc)) + repr(exc)

    assert bool(failure) == (answers == "wrong-key")
    printed = "".join(capfd.readouterr())
    assert "send: b'GET /parse_runs" in printed, "http.client wire debugging was off"
    assert any(r.name.startswith("urllib3") for r in caplog.records), "urllib3 logged nothing"
    assert places_holding(KEY, tmp_path, db_path, caplog.text, printed, failure) == []


@pytest.mark.parametrize(
    "faults",
    [[], [Fault(status=503)] * 5, [Fault(status=401)]],
    ids=["success", "503-every-time", "401"],
)
@pytest.mark.parametrize("key_variable", ["EXTEND_API_KEY", "SOURCES__EXTEND__API_KEY"])
def test_the_key_is_not_in_verbose_cli_output_after_a_sync(
    fake, db_path, tmp_path, monkeypatch, capfd, faults, key_variable
):
    monkeypatch.setenv(key_variable, KEY)
    monkeypatch.setenv("SOURCES__EXTEND__REQUEST_BACKOFF_FACTOR", "0.01")
    fake.state.faults = list(faults)

    code = main(["--verbose", "--base-url", fake.url, "--duckdb-file", str(db_path)])

    assert (code == 0) == (not faults)
    printed = "".join(capfd.readouterr())
    assert places_holding(KEY, tmp_path, db_path, printed) == []


@pytest.mark.parametrize("faults", [[], [Fault(status=401)]], ids=["success", "401"])
def test_a_key_in_secrets_toml_stays_out_of_a_cli_process_and_its_files(
    fake, db_path, tmp_path, faults
):
    # A process of its own: dlt reads .dlt/secrets.toml once, from the first folder.
    SECRETS_FILE.parent.mkdir()
    SECRETS_FILE.write_text(f'[sources.extend]\napi_key = "{KEY}"\n')
    fake.state.faults = list(faults)
    command = [Path(sys.executable).with_name("extend-sync"), "--verbose", "--base-url", fake.url]

    done = subprocess.run(
        [*command, "--duckdb-file", str(db_path)], capture_output=True, text=True, timeout=120
    )

    assert (done.returncode == 0) == (not faults), done.stderr
    assert places_holding(KEY, tmp_path, db_path, done.stdout, done.stderr) == []
