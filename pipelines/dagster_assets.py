"""Dagster assets for the sync, through the dagster-dlt integration (the `dagster` extra).

`build_definitions()` gives one asset per dlt resource (`parse_runs`), an asset per
analytics view downstream of it, a job that materialises them all and an hourly
schedule. Serve them with `dagster dev -m pipelines.dagster_assets`; the source
reads its settings and key from dlt config and `EXTEND_API_KEY` as `extend-sync`
does, and the destination is chosen the same way.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.common.destination import TDestinationReferenceArg

from extend_source import extend_source
from pipelines.extend_pipeline import DEFAULT_DATASET, make_pipeline, prepare_load
from pipelines.guard import sync_guard
from pipelines.views import VIEWS, create_views

JOB_NAME = "extend_sync"
GROUP = "extend"
DEFAULT_CRON = "17 * * * *"


def build_definitions(
    *,
    destination: TDestinationReferenceArg | None = None,
    dataset: str = DEFAULT_DATASET,
    duckdb_file: str | Path | None = None,
    pipelines_dir: str | Path | None = None,
    cron_schedule: str = DEFAULT_CRON,
    **source_settings: Any,
) -> dg.Definitions:
    """The sync's assets, job and schedule; `source_settings` go to `extend_source`."""
    pipeline = make_pipeline(
        destination=destination,
        dataset=dataset,
        duckdb_file=duckdb_file,
        pipelines_dir=pipelines_dir,
    )

    @dlt_assets(
        dlt_source=extend_source(**source_settings),
        dlt_pipeline=pipeline,
        name="extend_parse_runs",
        group_name=GROUP,
    )
    def extend_parse_runs(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource
    ) -> Iterator[Any]:
        # A new source each run: its client and counters belong to one sync.
        with sync_guard(pipeline):
            yield from dlt.run(
                context=context,
                dlt_source=extend_source(**source_settings),
                **prepare_load(pipeline),
            )

    @dg.multi_asset(
        name="extend_views",
        group_name=GROUP,
        specs=[
            dg.AssetSpec(
                view.name, description=view.description, deps=extend_parse_runs.keys, skippable=True
            )
            for view in VIEWS
        ],
    )
    def extend_views() -> Iterator[dg.MaterializeResult]:
        created = create_views(pipeline)
        for name in created:
            yield dg.MaterializeResult(asset_key=name)

    job = dg.define_asset_job(JOB_NAME, selection=[extend_parse_runs, extend_views])
    return dg.Definitions(
        assets=[extend_parse_runs, extend_views],
        jobs=[job],
        schedules=[dg.ScheduleDefinition(job=job, cron_schedule=cron_schedule)],
        resources={"dlt": DagsterDltResource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev -m pipelines.dagster_assets` loads: everything from dlt config."""
    return build_definitions()
