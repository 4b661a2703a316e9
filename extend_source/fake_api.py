"""A local stand-in for the Extend API, for the tests, the demo and the benchmark.

It answers `GET /parse_runs` (keyset pages, newest first, every filter) and
`GET /parse_runs/{id}` as the documented API does, checks the auth and version
headers, speaks Extend's error body, and can be told to misbehave.
"""

import base64
import bisect
import email.utils
import itertools
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from extend_source.settings import API_VERSION, MAX_PAGE_SIZE

DEFAULT_KEY = "sk_fake_local_demo_key"
SERVER_DEFAULT_PAGE_SIZE = 10
# How long a page held by `block_on_page` waits to be released, at most.
BLOCK_TIMEOUT_SECONDS = 60.0
FILE_TYPES = ("PDF", "PDF", "PDF", "IMG", "DOCX", "EXCEL", "CSV", "TXT", "HTML", "XML")
FAILURES = (
    ("CORRUPT_FILE", "The file appears to be corrupted."),
    ("OCR_ERROR", "OCR failed on page 3."),
    ("FILE_TYPE_NOT_SUPPORTED", "File type not supported for parsing."),
    ("PASSWORD_PROTECTED_FILE", "The file is password protected."),
    ("OUT_OF_CREDITS", "Insufficient credits to process the file."),
)
PARSE_CONFIG = {
    "target": "markdown",
    "chunkingStrategy": {"type": "page"},
    "engine": "parse_performance",
}


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC, with fractional seconds only when there are some (as Extend does)."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def make_run(index: int, created: datetime, *, status: str, rng: random.Random) -> dict[str, Any]:
    """One realistic ParseRunSummary."""
    file_type = rng.choice(FILE_TYPES)
    pages = rng.randint(1, 60)
    stem = rng.choice(["invoice", "contract", "receipt", "report"])
    run: dict[str, Any] = {
        "object": "parse_run",
        "id": f"pr_{index:010d}{rng.getrandbits(32):08x}",
        "file": {
            "object": "file",
            "id": f"file_{index:010d}",
            "name": f"{stem}_{index}.{file_type.lower()}",
            "type": file_type,
            "metadata": {"pageCount": pages},
            "createdAt": iso(created),
            "updatedAt": iso(created),
        },
        "status": status,
        "metadata": {"customer": f"cust_{index % 97}", "priority": index % 3},
        "createdAt": iso(created),
        "updatedAt": iso(created),
    }
    if index % 7 == 0:
        run["batchId"] = f"bpar_{index // 100:08d}"
        run["source"] = "BATCH_PARSER_RUN"
    elif index % 5 == 0:
        run["source"], run["sourceId"] = "WORKFLOW_RUN", f"wr_{index % 4}"
    else:
        run["source"] = "API"
    settle(run, status, rng=rng)
    return run


def settle(run: dict[str, Any], status: str, *, rng: random.Random) -> None:
    """Move a run to `status`, filling in what the API fills in at that point."""
    created = datetime.fromisoformat(run["createdAt"])
    run["status"] = status
    for key in ("failureReason", "failureMessage", "metrics", "usage"):
        run.pop(key, None)
    if status == "PROCESSED":
        pages = (run.get("file") or {}).get("metadata", {}).get("pageCount", 1)
        elapsed = rng.randint(800, 90_000)
        run["metrics"] = {"processingTimeMs": elapsed, "pageCount": pages}
        run["usage"] = {"credits": pages * 1.5, "totalCredits": pages * 1.5}
        run["updatedAt"] = iso(created + timedelta(milliseconds=elapsed))
    elif status == "FAILED":
        run["failureReason"], run["failureMessage"] = rng.choice(FAILURES)
        run["updatedAt"] = iso(created + timedelta(seconds=rng.randint(1, 60)))
    elif status == "CANCELLED":
        run["updatedAt"] = iso(created + timedelta(seconds=rng.randint(1, 600)))


def generate_runs(
    count: int, *, seed: int = 7, newest: datetime | None = None, start_index: int = 0
) -> list[dict[str, Any]]:
    """`count` runs, oldest first, one every ~40 s up to `newest`; recent ones in flight."""
    rng = random.Random(seed)
    newest = newest or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    runs = []
    for offset in range(count):
        age = count - 1 - offset
        created = newest - timedelta(seconds=age * 40)
        if offset % 3 == 0:
            created += timedelta(microseconds=rng.randint(1, 999_999))
        runs.append(make_run(start_index + offset, created, status=_status_for(age, rng), rng=rng))
    return runs


def _status_for(age: int, rng: random.Random) -> str:
    if age < 30:
        return rng.choice(["PROCESSING", "PROCESSING", "PENDING", "PROCESSED"])
    roll = rng.random()
    if roll < 0.86:
        return "PROCESSED"
    if roll < 0.96:
        return "FAILED"
    return "CANCELLED"


@dataclass
class Fault:
    """One scripted misbehaviour, served instead of (or before) a normal answer."""

    status: int | None = None
    retry_after: str | None = None
    # Retry-After as an HTTP-date this many seconds after the answer is sent.
    retry_after_date: float | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    cut_body: bool = False
    reset: bool = False


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date that many seconds ahead, the other form a `Retry-After` may take."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# Misbehaving list pages, by name; `FakeExtendState.page_quirks` says which page gets one.
PAGE_QUIRKS = {
    "hollow": "no runs, but a fresh nextPageToken to the same place",
    "null-data": "'data' is null, with a fresh nextPageToken to the same place",
    "blank-token": "the last page says nextPageToken '' instead of leaving it out",
    "repeat-token": "the page hands back the nextPageToken it was asked with",
    "overlap": "the page starts again with the last run of the page before",
}


@dataclass
class Request:
    """What the fake saw of one request, and when (time.monotonic)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeExtendState:
    """The fake's data, its rules and its fault switches; tests change these freely."""

    api_key: str = DEFAULT_KEY
    workspace_id: str | None = None
    faults: list[Fault] = field(default_factory=list)
    fail_after_pages: int | None = None
    oldest_first: bool = False
    page_delay: float = 0.0
    page_quirks: dict[int, str] = field(default_factory=dict)
    block_on_page: int | None = None
    page_blocked: threading.Event = field(default_factory=threading.Event)
    unblock: threading.Event = field(default_factory=threading.Event)
    requests: list[Request] = field(default_factory=list)
    list_pages_served: int = 0
    _runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _keys: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_index: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(11))

    def load(self, runs: list[dict[str, Any]]) -> None:
        """Replace every run."""
        with self._lock:
            self._runs = {r["id"]: r for r in runs}
            self._keys = sorted((_sort_key(r), r["id"]) for r in runs)
            self._next_index = len(runs)

    def add_runs(self, count: int, *, status: str = "PROCESSED") -> list[dict[str, Any]]:
        """Create `count` runs newer than any existing one."""
        newest = self.newest_created() or datetime.now(UTC)
        new = []
        for offset in range(count):
            created = newest + timedelta(seconds=offset + 1, microseconds=offset * 1000)
            new.append(make_run(self._next_index + offset, created, status=status, rng=self._rng))
        with self._lock:
            for run in new:
                self._runs[run["id"]] = run
                bisect.insort(self._keys, (_sort_key(run), run["id"]))
            self._next_index += count
        return new

    def settle_run(self, run_id: str, status: str) -> None:
        """Change one run's status the way the API would."""
        with self._lock:
            settle(self._runs[run_id], status, rng=self._rng)

    def delete_run(self, run_id: str) -> None:
        """Remove a run, as DELETE /parse_runs/{id} or retention would."""
        with self._lock:
            run = self._runs.pop(run_id)
            self._keys.remove((_sort_key(run), run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first."""
        with self._lock:
            return [self._runs[i] for _, i in reversed(self._keys)]

    def in_flight_ids(self) -> list[str]:
        """Ids of runs that are not finished, newest first."""
        return [r["id"] for r in self.runs() if r["status"] in ("PENDING", "PROCESSING")]

    def newest_created(self) -> datetime | None:
        with self._lock:
            if not self._keys:
                return None
            return datetime.fromisoformat(self._runs[self._keys[-1][1]]["createdAt"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._runs.get(run_id)

    def page(self, token: str | None, limit: int, filters: dict[str, str]) -> dict[str, Any]:
        """One keyset page, newest first, starting after the run the token names."""
        with self._lock:
            order = self._positions(token)
            rows: list[dict[str, Any]] = []
            for position in order:
                run = self._runs[self._keys[position][1]]
                if _matches(run, filters):
                    rows.append(run)
                    if len(rows) == limit:
                        break
            more = any(_matches(self._runs[self._keys[p][1]], filters) for p in order)
            body: dict[str, Any] = {"object": "list", "data": rows}
            if more and rows:
                last = rows[-1]
                body["nextPageToken"] = _encode_token((_sort_key(last), last["id"]))
            return body

    def quirky_page(self, token: str | None, limit: int, filters: dict[str, str]) -> dict[str, Any]:
        """The next list answer: a keyset page, bent by `page_quirks` for this page number."""
        quirk = self.page_quirks.get(self.list_pages_served + 1)
        if quirk is not None and quirk not in PAGE_QUIRKS:
            raise ValueError(f"unknown page quirk {quirk!r}; known: {', '.join(PAGE_QUIRKS)}")
        if quirk in ("hollow", "null-data"):
            data = [] if quirk == "hollow" else None
            return {"object": "list", "data": data, "nextPageToken": self._alias(token)}
        body = self.page(token, limit, filters)
        if quirk == "blank-token" and "nextPageToken" not in body:
            body["nextPageToken"] = ""
        if quirk == "repeat-token" and token:
            body["nextPageToken"] = token
        if quirk == "overlap" and token:
            body["data"] = [self._runs[_decode_token(token)[1]], *body["data"]]
        return body

    def _alias(self, token: str | None) -> str:
        # Another text for the same position, as a server minting tokens per answer would.
        key = _decode_token(token) if token else self._top()
        return base64.urlsafe_b64encode(orjson.dumps([*key, next(_aliases)])).decode()

    def _top(self) -> tuple[str, str]:
        # A position before the first run in paging order.
        return ("", "") if self.oldest_first else ("~", "")

    def _positions(self, token: str | None) -> Iterator[int]:
        # Newest first unless told otherwise; the token names the last run served.
        if self.oldest_first:
            start = bisect.bisect_right(self._keys, _decode_token(token)) if token else 0
            return iter(range(start, len(self._keys)))
        end = bisect.bisect_left(self._keys, _decode_token(token)) if token else len(self._keys)
        return iter(range(end - 1, -1, -1))


def dump_json(body: Any) -> bytes:
    """JSON bytes as the API sends them, however deeply a run's metadata nests."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # orjson stops at 254 levels; the standard library goes to the recursion limit.
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _sort_key(run: dict[str, Any]) -> str:
    # Fixed-width UTC microseconds sort as text in time order.
    return datetime.fromisoformat(run["createdAt"]).astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def _encode_token(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode()


def _decode_token(token: str) -> tuple[str, str]:
    key, run_id, *_ = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    return (key, run_id)


def _matches(run: dict[str, Any], filters: dict[str, str]) -> bool:
    if "status" in filters and run["status"] != filters["status"]:
        return False
    if "batchId" in filters:
        return run.get("batchId") == filters["batchId"]
    if "source" in filters and run.get("source", "API") != filters["source"]:
        return False
    if "sourceId" in filters and run.get("sourceId") != filters["sourceId"]:
        return False
    if "fileNameContains" in filters:
        name = (run.get("file") or {}).get("name") or ""
        return filters["fileNameContains"] in name
    return True


FILTER_NAMES = ("status", "batchId", "source", "sourceId", "fileNameContains")
_request_ids = itertools.count(1)
_aliases = itertools.count(1)


class _Handler(BaseHTTPRequestHandler):
    server: "FakeExtendServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        state.requests.append(Request(parts.path, query, dict(self.headers.items())))
        if state.faults and self._serve_fault(state.faults.pop(0)):
            return
        refusal = self._check_headers(state)
        if refusal:
            self._error(*refusal)
        elif parts.path == "/parse_runs":
            self._list(state, query)
        elif parts.path.startswith("/parse_runs/"):
            self._retrieve(state, unquote(parts.path.removeprefix("/parse_runs/")))
        else:
            self._error(404, "NOT_FOUND", f"No route for {parts.path}")

    def _check_headers(self, state: FakeExtendState) -> tuple[int, str, str] | None:
        if self.headers.get("Authorization") != f"Bearer {state.api_key}":
            return 401, "UNAUTHORIZED", "Invalid API key"
        if self.headers.get("x-extend-api-version") != API_VERSION:
            return 400, "INVALID_REQUEST", "Missing or unsupported x-extend-api-version"
        workspace = self.headers.get("x-extend-workspace-id")
        if state.workspace_id and workspace and workspace != state.workspace_id:
            return 403, "FORBIDDEN", "This key may not access that workspace"
        return None

    def _list(self, state: FakeExtendState, query: dict[str, str]) -> None:
        # Like the real endpoint: `limit` is read, `maxPageSize` silently dropped.
        limit_text = query.get("limit", str(SERVER_DEFAULT_PAGE_SIZE))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            self._error(400, "INVALID_REQUEST", "limit must be between 1 and 1000")
            return
        if state.fail_after_pages is not None and state.list_pages_served >= state.fail_after_pages:
            self._error(500, "INTERNAL_ERROR", "Injected persistent failure", retryable=True)
            return
        if state.block_on_page == state.list_pages_served + 1:
            state.page_blocked.set()
            state.unblock.wait(BLOCK_TIMEOUT_SECONDS)
        if state.page_delay:
            time.sleep(state.page_delay)
        filters = {k: query[k] for k in FILTER_NAMES if query.get(k)}
        body = state.quirky_page(query.get("nextPageToken"), int(limit_text), filters)
        state.list_pages_served += 1
        self._send(200, dump_json(body))

    def _retrieve(self, state: FakeExtendState, run_id: str) -> None:
        run = state.get(run_id)
        if run is None:
            self._error(
                404,
                "NOT_FOUND",
                "Parse run doesn't exist or belongs to a different workspace",
            )
            return
        detail = {**run, "config": PARSE_CONFIG}
        if run["status"] == "PROCESSED":
            if self.path.endswith("responseType=url"):
                detail["outputUrl"] = f"http://127.0.0.1/outputs/{run_id}.json"
            else:
                detail["output"] = {
                    "chunks": [
                        {
                            "object": "chunk",
                            "type": "page",
                            "content": "# Page 1",
                            "metadata": {"pageRange": {"start": 1, "end": 1}},
                            "blocks": [],
                        }
                    ]
                }
        self._send(200, dump_json(detail))

    def _serve_fault(self, fault: Fault) -> bool:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.reset:
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        if fault.cut_body:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": [')
            self.close_connection = True
            return True
        if fault.status is None:
            return False
        retry_after = fault.retry_after
        if fault.retry_after_date is not None:
            retry_after = http_date(fault.retry_after_date)
        headers = {"Retry-After": retry_after} if retry_after else {}
        body = fault.body
        if body is None:
            request_id = self._request_id()
            headers["x-extend-request-id"] = request_id
            body = orjson.dumps(
                {
                    "code": "INJECTED",
                    "message": f"Injected HTTP {fault.status}",
                    "retryable": fault.status >= 429,
                    "requestId": request_id,
                }
            )
        self._send(fault.status, body, content_type=fault.content_type, headers=headers)
        return True

    def _error(self, status: int, code: str, message: str, *, retryable: bool = False) -> None:
        request_id = self._request_id()
        body = {
            "code": code,
            "message": message,
            "retryable": retryable,
            "requestId": request_id,
        }
        self._send(status, orjson.dumps(body), headers={"x-extend-request-id": request_id})

    def _request_id(self) -> str:
        return f"req_fake_{next(_request_ids):06d}"

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class FakeExtendServer(ThreadingHTTPServer):
    """The fake API on 127.0.0.1; use as a context manager, read `url`."""

    daemon_threads = True

    def __init__(self, state: FakeExtendState | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state or FakeExtendState()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or was killed has hung up: expected here, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __enter__(self) -> "FakeExtendServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def list_requests(state: FakeExtendState) -> Iterator[Request]:
    """The list requests the fake received, in order."""
    return (r for r in state.requests if r.path == "/parse_runs")
