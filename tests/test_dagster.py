"""The Dagster definitions: the sync and its views materialised in-process into DuckDB."""

import dagster as dg
import pytest

from pipelines.dagster_assets import JOB_NAME, build_definitions
from pipelines.views import VIEW_NAMES
from tests.conftest import FAST_RETRIES, RUNS, expected_rows, row_count, table_rows

# Dagster's own use of a pydantic API deprecated upstream; nothing this project can change.
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")


def materialise(definitions: dg.Definitions) -> dg.ExecuteInProcessResult:
    result = definitions.resolve_job_def(JOB_NAME).execute_in_process()
    assert result.success
    return result


def test_the_job_syncs_the_fake_api_and_creates_every_view(fake, tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)
    definitions = build_definitions(
        duckdb_file=db_path, pipelines_dir=tmp_path / "pipelines", base_url=fake.url, **FAST_RETRIES
    )

    result = materialise(definitions)

    assert table_rows(db_path) == expected_rows(fake.state)
    materialised = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert set(VIEW_NAMES) <= set(materialised)
    runs_asset = next(key for key in materialised if key.endswith("parse_runs"))
    assert materialised[runs_asset]["rows_loaded"].value == RUNS


def test_a_second_materialisation_adds_new_runs_without_duplicates(
    fake, tmp_path, db_path, monkeypatch
):
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)
    definitions = build_definitions(
        duckdb_file=db_path, pipelines_dir=tmp_path / "pipelines", base_url=fake.url, **FAST_RETRIES
    )
    materialise(definitions)
    fake.state.settle_run(fake.state.in_flight_ids()[0], "PROCESSED")
    fake.state.add_runs(5)
    fake.state.requests.clear()

    materialise(definitions)

    assert table_rows(db_path) == expected_rows(fake.state)
    assert row_count(db_path) == RUNS + 5
    assert len([r for r in fake.state.requests if r.path == "/parse_runs"]) == 1


def test_the_schedule_runs_the_sync_job(fake, monkeypatch):
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)

    definitions = build_definitions(base_url=fake.url, cron_schedule="5 4 * * *")

    schedule = definitions.resolve_schedule_def(f"{JOB_NAME}_schedule")
    assert schedule.cron_schedule == "5 4 * * *"
    assert schedule.job_name == JOB_NAME
