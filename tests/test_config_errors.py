"""Bad configuration: extend-sync names what is wrong in one line, with its exit code."""

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from extend_source.fake_api import FakeExtendServer, FakeExtendState, Fault
from pipelines.cli import EXIT_API, EXIT_CONFIG, main

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may resolve a host past loopback, even if a check of base_url regressed."""
    resolve = socket.getaddrinfo

    def guarded(host: object, *args: object, **kwargs: object) -> object:
        assert host in LOOPBACK, f"a test tried to reach {host!r}"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def run_cli(
    fake: FakeExtendServer, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., int]:
    """extend-sync against the fake, with quick retries; later flags override earlier ones."""
    monkeypatch.setenv("SOURCES__EXTEND__REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("SOURCES__EXTEND__REQUEST_MAX_ATTEMPTS", "2")

    def run(*flags: str) -> int:
        return main(["--base-url", fake.url, "--duckdb-file", str(db_path), *flags])

    return run


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def workspace_of_key(state: FakeExtendState) -> None:
    state.workspace_id = "ws_of_the_key"


def forbidden(state: FakeExtendState) -> None:
    state.faults = [Fault(status=403, body=b'{"success": false, "error": "Forbidden"}')]


GOOD_KEY = "the fake's key"


def case(
    flags: list[str],
    code: int,
    named: str,
    *,
    id: str,
    key: str | None = GOOD_KEY,
    setup: Callable[[FakeExtendState], None] | None = None,
) -> object:
    return pytest.param(key, setup, flags, code, named, id=id)


@pytest.mark.parametrize(
    ("key", "setup", "flags", "code", "named"),
    [
        case([], EXIT_CONFIG, "EXTEND_API_KEY", key=None, id="missing-key"),
        case([], EXIT_API, "HTTP 401", key="sk_wrong_key", id="key-rejected-401"),
        case([], EXIT_API, "HTTP 403", setup=forbidden, id="key-rejected-403"),
        case(
            ["--workspace-id", "ws_elsewhere"],
            EXIT_API,
            "workspace",
            setup=workspace_of_key,
            id="workspace-out-of-reach",
        ),
        case(["--base-url", "eu2"], EXIT_CONFIG, "region", id="unknown-region"),
        case(["--base-url", "https//127.0.0.1"], EXIT_CONFIG, "base_url", id="no-scheme"),
        case(["--base-url", "ftp://127.0.0.1"], EXIT_CONFIG, "base_url", id="ftp-url"),
        case(["--base-url", "http://127.0.0.1:port"], EXIT_CONFIG, "base_url", id="bad-port"),
        case(["--base-url", "http://api.example.test"], EXIT_CONFIG, "clear text", id="plain-http"),
        case(["--page-size", "0"], EXIT_CONFIG, "page_size", id="page-size-0"),
        case(["--page-size", "1001"], EXIT_CONFIG, "page_size", id="page-size-1001"),
        case(["--status", "DONE"], EXIT_CONFIG, "status", id="unknown-status"),
        case(["--source", "EMAIL"], EXIT_CONFIG, "source", id="unknown-source"),
        case(["--start-date", "2026-13-45"], EXIT_CONFIG, "start_date", id="impossible-date"),
        case(["--start-date", "yesterday"], EXIT_CONFIG, "start_date", id="date-in-words"),
        case(["--base-url", "CLOSED"], EXIT_API, "refused", id="unreachable-host"),
        case(["--duckdb-file", "extend.duckdb"], EXIT_CONFIG, "dataset", id="file-as-dataset"),
    ],
)
def test_a_bad_setting_fails_in_one_line_naming_it_without_a_traceback(
    fake, run_cli, monkeypatch, capsys, key, setup, flags, code, named
):
    if key:
        monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key if key == GOOD_KEY else key)
    if setup:
        setup(fake.state)
    flags = [closed_port_url() if flag == "CLOSED" else flag for flag in flags]

    assert run_cli(*flags) == code

    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("extend-sync: error:")]
    assert len(errors) == 1 and named in errors[0]
    assert "Traceback" not in err
