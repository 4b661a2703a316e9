"""One measured job in a process of its own, so that its peak memory is its own.

    python -m bench.measure floor|sync|rest_api URL WORKDIR

The key comes from EXTEND_API_KEY and the API version from BENCH_API_VERSION. Imports
happen before the clock starts; the last line printed is a JSON object with the job's
seconds and CPU seconds, the seconds its imports took and the process's peak resident
memory.
"""

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Job = Callable[[], dict[str, Any]]

PAGE_SIZE = 1000
DATASET = "extend"


def floor(url: str, workdir: Path) -> Job:
    """Page through every run with one requests session and decode the JSON, nothing else."""
    import requests

    headers = {
        "Authorization": f"Bearer {os.environ['EXTEND_API_KEY']}",
        "x-extend-api-version": os.environ["BENCH_API_VERSION"],
    }

    def run() -> dict[str, Any]:
        session = requests.Session()
        session.headers.update(headers)
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        runs = 0
        while True:
            body = session.get(f"{url}/parse_runs", params=params, timeout=60).json()
            runs += len(body["data"])
            if not body.get("nextPageToken"):
                return {"runs": runs}
            params["nextPageToken"] = body["nextPageToken"]

    return run


def sync(url: str, workdir: Path) -> Job:
    """`extend-sync` with a user's default settings, into `WORKDIR/sync.duckdb`."""
    from pipelines import cli

    argv = ["--base-url", url, "--duckdb-file", str(workdir / "sync.duckdb")]

    def run() -> dict[str, Any]:
        code = cli.main(argv)
        if code != cli.EXIT_OK:
            raise SystemExit(f"extend-sync failed with exit code {code}")
        return {}

    return run


def rest_api(url: str, workdir: Path) -> Job:
    """The same full sync as a dlt user would write it with the declarative rest_api source."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    config: Any = {
        "client": {
            "base_url": url,
            "auth": {"type": "bearer", "token": os.environ["EXTEND_API_KEY"]},
            "headers": {"x-extend-api-version": os.environ["BENCH_API_VERSION"]},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {
                "name": "parse_runs",
                "endpoint": {
                    "path": "parse_runs",
                    "params": {"limit": PAGE_SIZE},
                    "data_selector": "data",
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": "nextPageToken",
                        "cursor_param": "nextPageToken",
                    },
                },
            }
        ],
    }

    def run() -> dict[str, Any]:
        pipeline = dlt.pipeline(
            pipeline_name="bench_rest_api",
            destination=dlt.destinations.duckdb(str(workdir / "rest_api.duckdb")),
            dataset_name=DATASET,
        )
        pipeline.run(rest_api_source(config))
        return {}

    return run


JOBS = {"floor": floor, "sync": sync, "rest_api": rest_api}


def peak_rss_mb() -> float:
    """The largest resident set of this process since it started.

    Linux's getrusage counts the parent's memory too, from before the exec that
    started this program, so the kernel's high-water mark of this image is read.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Prepare one job, time it, and print what it measured."""
    kind, url, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    started = time.perf_counter()
    job = JOBS[kind](url, workdir)
    prepared, cpu_before = time.perf_counter(), _cpu_seconds()
    detail = job()
    finished = time.perf_counter()
    result = {
        "seconds": finished - prepared,
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "import_seconds": prepared - started,
        "peak_rss_mb": peak_rss_mb(),
        **detail,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
