"""The benchmark's Extend API: the project's fake runs, answered from pre-encoded pages.

It runs in a process of its own, so that its memory and CPU are not counted as the
sync's. The list pages the syncs ask for (`limit=1000`, no filter) are built by the
project's fake (`FakeExtendState.page`, with its keyset tokens) and encoded in
advance, after every change of the data, so that answering one costs a look-up and
a socket write. Any other request is answered by the fake on the spot. A control path
under `/_bench/` changes the runs between syncs, writes the rows a synced table must
hold, and reports what the server did and how much CPU it used.

    python -m bench.server --runs 100000   # prints its URL, then serves until killed
"""

import argparse
import copy
import gc
import logging
import resource
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from extend_source.fake_api import DEFAULT_KEY, FakeExtendState, generate_runs
from extend_source.settings import API_VERSION, MAX_PAGE_SIZE

logger = logging.getLogger("bench.server")

OUT = Path(__file__).resolve().parent / "out"
NEWEST = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SEED = 7
PAGE_SIZE = 1000
FILTERS = ("status", "batchId", "source", "sourceId", "fileNameContains")
# New runs arrive like the generated ones end: the newest few still in flight.
NEW_IN_FLIGHT = 10


def cached_runs(count: int) -> list[dict[str, Any]]:
    """`count` runs from the fake's generator, kept under bench/out once generated."""
    path = OUT / f"runs-{count}-seed{SEED}.json"
    if path.exists():
        return orjson.loads(path.read_bytes())
    logger.info("generating %d runs once; later runs read %s", count, path.name)
    runs = generate_runs(count, seed=SEED, newest=NEWEST)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(runs))
    partial.replace(path)
    return runs


class BenchData:
    """The runs served, their encoded pages, and what changed since the last reset."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.state = FakeExtendState()
        self.pages: dict[str | None, tuple[bytes, int]] = {}
        self._base = runs
        self._originals: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Serve the generated runs again, as they were before any change."""
        for run_id, original in self._originals.items():
            run = self.state.get(run_id)
            run.clear()
            run.update(original)
        self._originals = {}
        self.state.load(self._base)
        self._encode_pages()

    def change(self, *, new: int, finish: int) -> dict[str, int]:
        """Finish the `finish` oldest in-flight runs, then add `new` newer runs."""
        in_flight = self.state.in_flight_ids()
        finished = in_flight[len(in_flight) - min(finish, len(in_flight)) :]
        for position, run_id in enumerate(finished):
            self._originals.setdefault(run_id, copy.deepcopy(self.state.get(run_id)))
            self.state.settle_run(run_id, "FAILED" if position % 10 == 9 else "PROCESSED")

        in_flight_new = min(NEW_IN_FLIGHT, new)
        self.state.add_runs(new - in_flight_new)
        self.state.add_runs(in_flight_new, status="PROCESSING")
        self._encode_pages()
        return {"runs": len(self._base) + new, "new": new, "finished": len(finished)}

    def list_body(self, query: dict[str, str]) -> tuple[bytes, int]:
        """The answer to one GET /parse_runs, and how many runs it holds."""
        token = query.get("nextPageToken")
        filters = {k: query[k] for k in FILTERS if query.get(k)}
        if query.get("limit") == str(PAGE_SIZE) and not filters and token in self.pages:
            return self.pages[token]
        limit = min(int(query.get("limit") or 10), MAX_PAGE_SIZE)
        body = self.state.page(token, limit, filters)
        return orjson.dumps(body), len(body["data"])

    def write_expected(self, path: Path) -> int:
        """Write the id, status and timestamps of every run, as a synced table must hold them."""
        runs = self.state.runs()
        table = pa.table(
            {
                "id": [r["id"] for r in runs],
                "status": [r["status"] for r in runs],
                "created_at": [r["createdAt"] for r in runs],
                "updated_at": [r["updatedAt"] for r in runs],
            }
        )
        pq.write_table(table, path)
        return len(runs)

    def _encode_pages(self) -> None:
        pages: dict[str | None, tuple[bytes, int]] = {}
        token = None
        while True:
            body = self.state.page(token, PAGE_SIZE, {})
            pages[token] = (orjson.dumps(body), len(body["data"]))
            token = body.get("nextPageToken")
            if not token:
                break
        self.pages = pages
        # A million runs are tens of millions of objects: frozen, the collector
        # stops walking them while the server answers.
        gc.freeze()
        logger.info("encoded %d pages of %d runs", len(pages), PAGE_SIZE)


class BenchServer(ThreadingHTTPServer):
    """The benchmark's server on 127.0.0.1, counting the requests it answers."""

    daemon_threads = True

    def __init__(self, data: BenchData, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.data = data
        self.counts = {"list": 0, "run": 0, "runs_listed": 0}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, kind: str, runs: int = 0) -> None:
        with self.lock:
            self.counts[kind] += 1
            self.counts["runs_listed"] += runs

    def stats(self) -> dict[str, float]:
        """Requests answered so far and the CPU seconds the server used."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {**self.counts, "cpu_seconds": usage.ru_utime + usage.ru_stime}


class _Handler(BaseHTTPRequestHandler):
    server: BenchServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path.startswith("/_bench/"):
            self._control(parts.path.removeprefix("/_bench/"), query)
        elif not self._authorized():
            self._send(401, {"code": "UNAUTHORIZED", "message": "bad key or version"})
        elif parts.path == "/parse_runs":
            body, runs = self.server.data.list_body(query)
            self.server.count("list", runs)
            self._send_bytes(200, body)
        elif parts.path.startswith("/parse_runs/"):
            self.server.count("run")
            run = self.server.data.state.get(unquote(parts.path.removeprefix("/parse_runs/")))
            if run is None:
                self._send(404, {"code": "NOT_FOUND", "message": "no such parse run"})
            else:
                self._send(200, run)
        else:
            self._send(404, {"code": "NOT_FOUND", "message": f"no route for {parts.path}"})

    def do_POST(self) -> None:
        self.do_GET()

    def _authorized(self) -> bool:
        return (
            self.headers.get("Authorization") == f"Bearer {DEFAULT_KEY}"
            and self.headers.get("x-extend-api-version") == API_VERSION
        )

    def _control(self, action: str, query: dict[str, str]) -> None:
        data = self.server.data
        if action == "stats":
            self._send(200, self.server.stats())
        elif action == "change":
            self._send(200, data.change(new=int(query["new"]), finish=int(query["finish"])))
        elif action == "reset":
            data.reset()
            self._send(200, {"runs": len(data.state.runs())})
        elif action == "expected":
            path = Path(query["path"])
            self._send(200, {"path": str(path), "runs": data.write_expected(path)})
        else:
            self._send(404, {"code": "NOT_FOUND", "message": f"no control {action}"})

    def _send(self, status: int, body: Any) -> None:
        self._send_bytes(status, orjson.dumps(body))

    def _send_bytes(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    """Serve N runs on loopback; the first line printed is the URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    server = BenchServer(BenchData(cached_runs(args.runs)), args.port)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
