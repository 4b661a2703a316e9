"""The sync benchmark: the floor, extend-sync full and incremental, and dlt's rest_api.

    bash bench/run                                  # 10,000, 100,000 and 1,000,000 runs
    bash bench/run --sizes 100000 --repeats 5 --jobs floor,full

For each size it starts the benchmark server (bench/server.py) in a process of its
own, then runs every job in a fresh process (bench/measure.py), several times, and
checks after every sync that the loaded table holds exactly the server's runs (ids,
statuses, created_at, updated_at). It prints a table and writes it into
bench/RESULTS.md, between the markers there; the rest of that file is kept.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import requests

from extend_source.fake_api import DEFAULT_KEY
from extend_source.settings import (
    API_VERSION,
    DEFAULT_INFLIGHT_WINDOW_HOURS,
    OVERLAP,
    TERMINAL_STATUSES,
)

logger = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "RESULTS.md"
MARKERS = ("<!-- bench:results -->", "<!-- /bench:results -->")
PAGE_SIZE = 1000
JOBS = ("floor", "full", "incremental", "rest_api")
REST_API_MAX_RUNS = 100_000
WINDOW = timedelta(hours=DEFAULT_INFLIGHT_WINDOW_HOURS)
TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))


class BenchError(Exception):
    """A job failed, or a synced table does not hold the server's runs."""


@dataclass
class Sample:
    """One timed job, as its own process and the server saw it."""

    seconds: float
    cpu_seconds: float
    process_seconds: float
    peak_rss_mb: float
    list_requests: int
    run_requests: int
    runs_listed: int
    server_cpu_seconds: float
    load_average: float
    window_pages: int | None = None


@dataclass
class SizeResult:
    """Every sample of one size, by job, and the machine's load around them."""

    runs: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, job: str, sample: Sample) -> None:
        self.samples.setdefault(job, []).append(sample)

    def load_averages(self) -> list[float]:
        """The 1-minute load average as each job ended."""
        return [s.load_average for samples in self.samples.values() for s in samples]


class BenchServer:
    """bench/server.py in a process of its own, and its control path."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.url = ""
        self._log = OUT / f"server-{runs}.log"
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> "BenchServer":
        command = [sys.executable, "-m", "bench.server", "--runs", str(self.runs)]
        with self._log.open("w") as log:
            self._process = subprocess.Popen(
                command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url:
            raise BenchError(f"the bench server did not start; see {self._log}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(timeout=30)

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """Call one action of the server's control path."""
        response = requests.post(f"{self.url}/_bench/{action}", params=params, timeout=900)
        response.raise_for_status()
        return response.json()


def _env(workdir: Path | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EXTEND_API_KEY": DEFAULT_KEY,
        "BENCH_API_VERSION": API_VERSION,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    if workdir is not None:
        env["DLT_DATA_DIR"] = str(workdir / "dlt")
    return env


def measure(server: BenchServer, job: str, workdir: Path) -> Sample:
    """Run one job in a fresh process and read what it and the server report."""
    before = server.control("stats")
    started = time.perf_counter()
    with (workdir / f"{job}.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "bench.measure", job, server.url, str(workdir)],
            cwd=workdir,
            env=_env(workdir),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    process_seconds = time.perf_counter() - started
    after = server.control("stats")
    if done.returncode != 0:
        raise BenchError(f"{job} failed with exit code {done.returncode}; see {log.name}")

    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        process_seconds=process_seconds,
        peak_rss_mb=result["peak_rss_mb"],
        list_requests=after["list"] - before["list"],
        run_requests=after["run"] - before["run"],
        runs_listed=after["runs_listed"] - before["runs_listed"],
        server_cpu_seconds=after["cpu_seconds"] - before["cpu_seconds"],
        load_average=os.getloadavg()[0],
    )


def timed_sync(server: BenchServer, job: str, workdir: Path, *, incremental: bool) -> Sample:
    """Time one sync, then check that its table holds exactly the server's runs."""
    expected = workdir / "expected.parquet"
    server.control("expected", path=str(expected))
    db = workdir / ("rest_api.duckdb" if job == "rest_api" else "sync.duckdb")
    window = window_pages(db, expected) if incremental else None

    sample = measure(server, job, workdir)
    check_rows(db, expected)
    sample.window_pages = window
    return sample


def check_rows(db: Path, expected: Path) -> None:
    """Fail unless the table's ids, statuses and timestamps equal the server's runs."""
    stored = (
        "select id, status, created_at::timestamptz, updated_at::timestamptz from extend.parse_runs"
    )
    wanted = (
        "select id, status, created_at::timestamptz, updated_at::timestamptz "
        f"from read_parquet('{expected}')"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        extra, missing = con.execute(
            f"select (select count(*) from ({stored} except all {wanted})), "
            f"(select count(*) from ({wanted} except all {stored}))"
        ).fetchone()
    if extra or missing:
        raise BenchError(
            f"{db.name} does not hold the server's runs: {extra} rows not on the server, "
            f"{missing} of the server's rows missing or different"
        )


def window_pages(db: Path, expected: Path) -> int:
    """List pages an incremental sync needs: back to its oldest in-flight run or overlap."""
    with duckdb.connect(str(db), read_only=True) as con:
        (newest,) = con.execute("select max(created_at) from extend.parse_runs").fetchone()
        oldest_in_flight = con.execute(
            f"select min(created_at) from extend.parse_runs where status not in "
            f"({TERMINAL_SQL}) and created_at >= ?",
            [newest - WINDOW],
        ).fetchone()[0]
        stop_at = min(filter(None, [newest - OVERLAP, oldest_in_flight]))
        (newer,) = con.execute(
            f"select count(*) from read_parquet('{expected}') where created_at::timestamptz >= ?",
            [stop_at],
        ).fetchone()
    return newer // PAGE_SIZE + 1


def fresh(path: Path) -> Path:
    """An empty working folder."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def bench_size(runs: int, *, repeats: int, jobs: set[str], rest_api_repeats: int) -> SizeResult:
    """Every job of one size, `repeats` times, in the same order each round."""
    result = SizeResult(runs=runs)
    work = OUT / f"work-{runs}"
    with BenchServer(runs) as server:
        logger.info("%d runs served at %s", runs, server.url)
        measure(server, "floor", fresh(work / "warm-up"))
        for round_number in range(1, repeats + 1):
            logger.info("%d runs: round %d of %d", runs, round_number, repeats)
            if "floor" in jobs:
                result.add("floor", measure(server, "floor", fresh(work / "floor")))
            if jobs & {"full", "incremental"}:
                _sync_round(server, result, fresh(work / "sync"), jobs)
            if "rest_api" in jobs and round_number <= rest_api_repeats:
                sample = timed_sync(server, "rest_api", fresh(work / "rest"), incremental=False)
                result.add("rest_api", sample)
    if "rest_api" in jobs and rest_api_repeats == 0:
        result.skipped["rest_api"] = (
            f"not run above {REST_API_MAX_RUNS:,} runs: its time and memory grow with N"
        )
    return result


def _sync_round(server: BenchServer, result: SizeResult, workdir: Path, jobs: set[str]) -> None:
    result.add("full", timed_sync(server, "sync", workdir, incremental=False))
    if "incremental" not in jobs:
        return
    result.add("nothing_new", timed_sync(server, "sync", workdir, incremental=True))
    new = max(1, result.runs // 100)
    server.control("change", new=new, finish=new)
    try:
        result.add("one_percent", timed_sync(server, "sync", workdir, incremental=True))
    finally:
        server.control("reset")


JOB_NAMES = {
    "floor": "1. floor: requests + JSON",
    "full": "2. extend-sync, full",
    "nothing_new": "3a. incremental, nothing new",
    "one_percent": "3b. incremental, 1% new + in-flight finished",
    "rest_api": "4. dlt rest_api, full",
}
HEADER = (
    "| runs | job | wall s, median (min-max) | CPU s | process s | runs/s "
    "| peak RSS MB, median (max) "
    "| list requests | server CPU | ratio, median (min-max) |"
)


def table(results: list[SizeResult]) -> str:
    """The results as a Markdown table."""
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for result in results:
        for job, name in JOB_NAMES.items():
            samples = result.samples.get(job)
            if samples:
                lines.append(_row(result, job, name, samples))
            elif job in result.skipped:
                blanks = " |" * (HEADER.count("|") - 4)
                lines.append(f"| {result.runs:,} | {name} | {result.skipped[job]} |{blanks}")
    return "\n".join(lines)


def _row(result: SizeResult, job: str, name: str, samples: list[Sample]) -> str:
    seconds = [s.seconds for s in samples]
    cells = [
        f"{result.runs:,}",
        name,
        _spread(seconds),
        f"{statistics.median(s.cpu_seconds for s in samples):.2f}",
        f"{statistics.median(s.process_seconds for s in samples):.2f}",
        f"{statistics.median(s.runs_listed / s.seconds for s in samples):,.0f}",
        f"{statistics.median(s.peak_rss_mb for s in samples):.0f} "
        f"({max(s.peak_rss_mb for s in samples):.0f})",
        _requests(samples),
        f"{sum(s.server_cpu_seconds for s in samples) / sum(seconds):.0%} of wall",
        _ratio(result, job),
    ]
    return "| " + " | ".join(cells) + " |"


def _spread(values: list[float], digits: int = 2) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def _requests(samples: list[Sample]) -> str:
    lists = statistics.median(s.list_requests for s in samples)
    text = f"{lists:.0f}"
    if samples[0].window_pages is not None:
        beyond = max(s.list_requests - (s.window_pages or 0) for s in samples)
        text += f" (window {samples[0].window_pages}, +{beyond})"
    runs = max(s.run_requests for s in samples)
    return text + (f" + {runs} by id" if runs else "")


def _ratio(result: SizeResult, job: str) -> str:
    pairs = {"full": ("floor", "2/1"), "rest_api": ("full", "4/2")}
    if job not in pairs or pairs[job][0] not in result.samples:
        return ""
    base, label = pairs[job]
    ratios = [
        mine.seconds / theirs.seconds
        for mine, theirs in zip(result.samples[job], result.samples[base], strict=False)
    ]
    return f"{label}: {_spread(ratios, 1 if job == 'rest_api' else 2)}"


LEGEND = (
    "- Each job ran in a fresh process. Wall and CPU seconds run from after the job's "
    "imports to its end; process seconds include interpreter start and imports. Server "
    "CPU is the bench server's CPU time during the job, as a share of the job's wall time.",
    "- After every timed sync the loaded table was checked against the server's runs "
    "(ids, statuses, created_at, updated_at); the script stops at any difference, so "
    "every sync below passed.",
)


def machine(results: list[SizeResult], command: str, started: datetime) -> str:
    """The lines that say where and how the table was measured."""
    loads = ", ".join(f"{r.runs:,} runs {_spread(r.load_averages())}" for r in results)
    return "\n".join(
        [
            f"Measured {started:%Y-%m-%d %H:%M} UTC with `{command}`.",
            "",
            f"- Machine: {os.cpu_count()} cores ({platform.machine()}), "
            f"1-minute load average as each job ended, median (min-max): {loads}.",
            f"- Python {platform.python_version()}, dlt {version('dlt')}, "
            f"DuckDB {version('duckdb')}, pyarrow {version('pyarrow')}, "
            f"msgspec {version('msgspec')}, orjson {version('orjson')}, "
            f"requests {version('requests')}.",
            *LEGEND,
        ]
    )


def write_results(path: Path, text: str) -> None:
    """Put `text` between the result markers of `path`, keeping the rest of the file."""
    start, end = MARKERS
    current = path.read_text() if path.exists() else f"# Benchmark results\n\n{start}\n{end}\n"
    head, _, rest = current.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and report it."""
    parser = argparse.ArgumentParser(description="The sync benchmark (by hand, not in CI).")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="runs served, by size")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every job per size")
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"any of {', '.join(JOBS)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    started = datetime.now(UTC)
    command = "bash bench/run " + " ".join(sys.argv[1:] if argv is None else argv)
    jobs = set(args.jobs.split(","))
    if jobs - set(JOBS):
        parser.error(f"unknown jobs {', '.join(sorted(jobs - set(JOBS)))}; use {', '.join(JOBS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for runs in (int(size) for size in args.sizes.split(",")):
        rest_api_repeats = args.repeats if runs <= REST_API_MAX_RUNS else 0
        results.append(
            bench_size(runs, repeats=args.repeats, jobs=jobs, rest_api_repeats=rest_api_repeats)
        )
        report = f"{machine(results, command.strip(), started)}\n\n{table(results)}"
        print(report, flush=True)
        write_results(args.results, report)


if __name__ == "__main__":
    main()
