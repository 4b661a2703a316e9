"""The API key is nowhere but where it was put: not in logs, errors, dlt's files or tables.

Each sync here runs with a distinctive key, every logger at DEBUG and the HTTP
library's wire debugging on, then every text and file it produced is searched.
"""

import gzip
import http.client
import logging
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import requests

from extend_source.fake_api import FakeExtendServer, FakeExtendState, Fault, generate_runs
from pipelines.cli import main
from tests.conftest import NEWEST
from tests.test_faults import FAILURES, PAGE, RUNS, Setup, from_page_2

KEY = "sk_live_CANARY_7Hq2xV9pLm4T"
SECRETS_FILE = Path(".dlt") / "secrets.toml"


@pytest.fixture
def fake() -> Iterator[FakeExtendServer]:
    """The small fake, accepting only KEY."""
    state = FakeExtendState(api_key=KEY)
    state.load(generate_runs(RUNS, newest=NEWEST))
    with FakeExtendServer(state) as server:
        yield server


@pytest.fixture(autouse=True)
def everything_logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every logger at DEBUG, and http.client printing each request it sends."""
    caplog.set_level(logging.DEBUG)
    for name in ("dlt", "urllib3", "requests", "filelock", "extend_source", "pipelines"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)


def files_holding_the_key(root: Path) -> list[str]:
    """Files under `root` whose bytes, unpacked if gzip or Parquet, contain KEY."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.relative_to(root) == SECRETS_FILE:
            continue
        if KEY.encode() in _contents(path):
            found.append(str(path.relative_to(root)))
    return found


def _contents(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"PAR1":
        return repr(pq.read_table(path).to_pylist()).encode()
    return data


def tables_holding_the_key(db_path: Path) -> list[str]:
    """Tables of the DuckDB file, in any schema, with KEY in any column."""
    if not db_path.exists():
        return []
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
        return [
            f"{schema}.{table}"
            for schema, table in tables
            if KEY in repr(con.execute(f'select * from "{schema}"."{table}"').fetchall())
        ]


def assert_key_nowhere(tmp_path: Path, db_path: Path, *texts: str) -> None:
    assert not [i for i, text in enumerate(texts) if KEY in text], "the key is in a text"
    assert files_holding_the_key(tmp_path) == []
    assert tables_holding_the_key(db_path) == []


def wrong_key(state: FakeExtendState) -> None:
    state.api_key = "sk_the_key_the_api_expects"


SYNCS = [
    pytest.param(from_page_2(), {}, id="successful-sync"),
    pytest.param(wrong_key, {}, id="key-rejected-401"),
    *(pytest.param(*case.values[:2], id=case.id) for case in FAILURES),
]


@pytest.mark.parametrize(("setup", "settings"), SYNCS)
def test_the_key_is_not_in_logs_errors_files_or_tables_after_a_sync(
    fake, sync, db_path, tmp_path, caplog, capfd, setup: Setup, settings
):
    setup(fake.state)
    requests.get(fake.url + "/parse_runs", timeout=5)

    try:
        sync(page_size=PAGE, **settings)
        failure = ""
    except Exception as exc:
        failure = "".join(traceback.format_exception(exc)) + repr(exc)

    printed = "".join(capfd.readouterr())
    assert "send: b'GET /parse_runs" in printed, "http.client wire debugging was off"
    assert any(r.name.startswith("urllib3") for r in caplog.records), "urllib3 logged nothing"
    assert_key_nowhere(tmp_path, db_path, caplog.text, printed, failure)


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
    assert_key_nowhere(tmp_path, db_path, printed)


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
    assert_key_nowhere(tmp_path, db_path, done.stdout, done.stderr)
