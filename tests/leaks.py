"""Where an API key turns up after a sync: the search the fault and secret suites share."""

import gzip
import http.client
import logging
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

# The one file where the key belongs, when it is given that way.
SECRETS_FILE = Path(".dlt") / "secrets.toml"


def log_everything(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every logger at DEBUG, and http.client printing each request it sends."""
    caplog.set_level(logging.DEBUG)
    for name in ("dlt", "urllib3", "requests", "filelock", "extend_source", "pipelines"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record of the test's setup and call, formatted with any traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    return "\n".join(formatter.format(r) for r in records)


def places_holding(key: str, root: Path, db_path: Path, *texts: str) -> list[str]:
    """Which of `texts`, files under `root` and tables of the DuckDB file contain `key`."""
    places = [f"text {number}" for number, text in enumerate(texts) if key in text]
    places += [f"file {name}" for name in _files_holding(key, root)]
    places += [f"table {name}" for name in _tables_holding(key, db_path)]
    return places


def _files_holding(key: str, root: Path) -> list[str]:
    names = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root)
        if name != SECRETS_FILE and key.encode() in _contents(path):
            names.append(str(name))
    return names


def _contents(path: Path) -> bytes:
    # Unpacked where dlt compresses: gzip job files, Parquet load files.
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"PAR1":
        return repr(pq.read_table(path).to_pylist()).encode()
    return data


def _tables_holding(key: str, db_path: Path) -> list[str]:
    if not db_path.exists():
        return []
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
        return [
            f"{schema}.{table}"
            for schema, table in tables
            if key in repr(con.execute(f'select * from "{schema}"."{table}"').fetchall())
        ]
