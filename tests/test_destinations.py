"""One sync, many destinations: PostgreSQL and a Delta lakehouse for real, warehouses by name.

Each destination is reached through the same `make_pipeline` / `run_sync` as DuckDB,
with only configuration changed; the stored rows are read back with each format's
own reader (duckdb, psycopg2, deltalake).
"""

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pytest
from deltalake import DeltaTable
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from extend_source.normalize import COLUMNS, JSON_COLUMN
from pipelines.cli import build_parser, main
from pipelines.extend_pipeline import make_pipeline
from tests.conftest import RUNS, expected_rows

STORED_COLUMNS = [column.name for column in COLUMNS] + [JSON_COLUMN]
ROW_SHAPE = ["id", "status", "created_at", "updated_at"]


def _row(values: dict[str, Any], columns: list[str]) -> tuple:
    # Each reader gives JSON its own way (text, dict); compare the parsed value.
    value = values.get(JSON_COLUMN)
    if isinstance(value, str):
        values = {**values, JSON_COLUMN: json.loads(value)}
    return tuple(values[name] for name in columns)


def _keyed(rows: list[tuple], columns: list[str]) -> dict[str, tuple]:
    return {row[0]: _row(dict(zip(columns, row, strict=True)), columns) for row in rows}


def duckdb_rows(db_path: Path, columns: list[str]) -> dict[str, tuple]:
    with duckdb.connect(str(db_path), read_only=True) as connection:
        sql = f"select {', '.join(columns)} from extend.parse_runs"
        return _keyed(connection.execute(sql).fetchall(), columns)


def postgres_rows(dsn: str, columns: list[str]) -> dict[str, tuple]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"select {', '.join(columns)} from extend.parse_runs")
        return _keyed(cursor.fetchall(), columns)


def delta_rows(lake: Path, columns: list[str]) -> dict[str, tuple]:
    table = DeltaTable(str(lake / "extend" / "parse_runs")).to_pyarrow_table(columns=columns)
    return {row["id"]: _row(row, columns) for row in table.to_pylist()}


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local folder as the filesystem destination's bucket."""
    bucket = tmp_path / "lake"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", bucket.as_uri())
    return bucket


@pytest.fixture(params=["duckdb", "postgres", "filesystem"], ids=["duckdb", "postgres", "delta"])
def target(request, db_path: Path) -> tuple[str, Callable[[list[str]], dict[str, tuple]]]:
    """A destination name and a reader of its parse_runs table."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres")
        return "postgres", lambda columns: postgres_rows(dsn, columns)
    if request.param == "filesystem":
        lake = request.getfixturevalue("lake")
        return "filesystem", lambda columns: delta_rows(lake, columns)
    return "duckdb", lambda columns: duckdb_rows(db_path, columns)


def test_full_then_incremental_sync_stores_every_run_once(fake, sync, target):
    destination, read = target
    first = sync(destination=destination)
    assert read(ROW_SHAPE) == expected_rows(fake.state)
    in_flight = fake.state.in_flight_ids()
    fake.state.settle_run(in_flight[0], "PROCESSED")
    fake.state.settle_run(in_flight[1], "FAILED")
    fake.state.add_runs(7, status="PROCESSING")

    second = sync(destination=destination)

    assert first.rows_loaded == RUNS and first.destination == destination
    assert second.stats.pages == 1
    assert read(ROW_SHAPE) == expected_rows(fake.state)
    assert len(read(["id"])) == RUNS + 7


def test_duckdb_postgres_and_delta_hold_the_same_rows(fake, sync, db_path, postgres, lake):
    for destination in ("duckdb", "postgres", "filesystem"):
        sync(destination=destination)

    in_duckdb = duckdb_rows(db_path, STORED_COLUMNS)
    in_postgres = postgres_rows(postgres, STORED_COLUMNS)
    in_delta = delta_rows(lake, STORED_COLUMNS)

    assert len(in_duckdb) == RUNS
    for run_id, row in in_duckdb.items():
        assert in_postgres[run_id] == row, run_id
        assert in_delta[run_id] == row, run_id
    assert in_postgres.keys() == in_delta.keys() == in_duckdb.keys()


# Settings as a user would put them in .dlt/secrets.toml or the environment; the
# hosts are reserved names that resolve nowhere, and nothing here connects.
WAREHOUSES = {
    "motherduck": (
        {
            "DESTINATION__MOTHERDUCK__CREDENTIALS__DATABASE": "extend_md",
            "DESTINATION__MOTHERDUCK__CREDENTIALS__PASSWORD": "md_token_test",
        },
        {"database": "extend_md"},
    ),
    "bigquery": (
        {
            "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "extend-analytics",
            "DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL": "loader@extend.invalid",
            "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\n",
            "DESTINATION__BIGQUERY__LOCATION": "EU",
        },
        {"project_id": "extend-analytics"},
    ),
    "snowflake": (
        {
            "DESTINATION__SNOWFLAKE__CREDENTIALS": (
                "snowflake://loader:pw@account.invalid/EXTEND?warehouse=LOADING&role=LOADER"
            )
        },
        {"host": "account.invalid", "database": "EXTEND", "warehouse": "LOADING"},
    ),
    "databricks": (
        {
            "DESTINATION__DATABRICKS__CREDENTIALS__SERVER_HOSTNAME": "workspace.invalid",
            "DESTINATION__DATABRICKS__CREDENTIALS__HTTP_PATH": "/sql/1.0/warehouses/extend",
            "DESTINATION__DATABRICKS__CREDENTIALS__ACCESS_TOKEN": "dapi_test",
            "DESTINATION__DATABRICKS__CREDENTIALS__CATALOG": "main",
        },
        {"server_hostname": "workspace.invalid", "catalog": "main"},
    ),
    "redshift": (
        {"DESTINATION__REDSHIFT__CREDENTIALS": "redshift://loader:pw@cluster.invalid:5439/dev"},
        {"host": "cluster.invalid", "port": 5439, "database": "dev"},
    ),
}


@pytest.fixture
def config_toml(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """Write .dlt/config.toml in the test's folder and make dlt read it.

    dlt reads its toml files once, from the working folder; afterwards it reads
    them again from the folder pytest started in, so later tests see the project's.
    """
    context = Container()[PluggableRunContext]

    def write(text: str) -> None:
        path = tmp_path / ".dlt" / "config.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        context.reload_providers()

    yield write
    with contextlib.chdir(request.config.invocation_params.dir):
        context.reload_providers()


def _chosen_by(how: str, name: str, tmp_path: Path, monkeypatch, config_toml) -> dlt.Pipeline:
    if how == "flag":
        args = build_parser().parse_args(["--destination", name])
        return make_pipeline(destination=args.destination, pipelines_dir=tmp_path)
    if how == "environment":
        monkeypatch.setenv("DESTINATION_TYPE", name)
    else:
        config_toml(f'[pipelines.extend]\ndestination_type = "{name}"\n')
    return make_pipeline(pipelines_dir=tmp_path)


@pytest.mark.parametrize("how", ["flag", "environment", "config"])
@pytest.mark.parametrize("name", list(WAREHOUSES))
def test_a_warehouse_chosen_by_name_reaches_its_dlt_factory_with_its_settings(
    name, how, tmp_path, monkeypatch, config_toml
):
    settings, expected = WAREHOUSES[name]
    for key, value in settings.items():
        monkeypatch.setenv(key, value)

    pipeline = _chosen_by(how, name, tmp_path, monkeypatch, config_toml)

    assert isinstance(pipeline.destination, getattr(dlt.destinations, name))
    initial = pipeline.destination.spec()
    initial.dataset_name = pipeline.dataset_name
    credentials = pipeline.destination.configuration(initial).credentials
    assert {key: getattr(credentials, key) for key in expected} == expected


def test_no_destination_named_anywhere_means_duckdb(tmp_path, db_path):
    pipeline = make_pipeline(pipelines_dir=tmp_path, duckdb_file=db_path)

    assert isinstance(pipeline.destination, dlt.destinations.duckdb)


def test_the_demo_stays_on_its_duckdb_file_when_config_names_another_destination(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DESTINATION_TYPE", "postgres")

    assert main(["--demo"]) == 0

    assert (tmp_path / "extend_demo.duckdb").is_file()
    assert "loaded into duckdb" in capsys.readouterr().out
