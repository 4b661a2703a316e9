"""The extend-sync command: demo end to end, summary, exit codes and one-line errors."""

import duckdb

from pipelines.cli import EXIT_API, EXIT_CONFIG, main


def test_demo_syncs_the_fake_api_into_a_duckdb_file(tmp_path, capsys):
    assert main(["--demo"]) == 0

    out = capsys.readouterr().out
    assert "3000 runs read" in out and "3000 rows loaded" in out
    with duckdb.connect(str(tmp_path / "extend_demo.duckdb"), read_only=True) as con:
        assert con.execute("select count(distinct id) from extend.parse_runs").fetchone() == (3000,)


def test_a_second_demo_run_loads_no_duplicates(tmp_path, capsys):
    main(["--demo"])
    assert main(["--demo"]) == 0

    with duckdb.connect(str(tmp_path / "extend_demo.duckdb"), read_only=True) as con:
        assert con.execute(
            "select count(*), count(distinct id) from extend.parse_runs"
        ).fetchone() == (
            3000,
            3000,
        )


def test_missing_key_is_a_configuration_error(capsys):
    assert main(["--base-url", "http://127.0.0.1:9"]) == EXIT_CONFIG

    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("extend-sync: error:") and "EXTEND_API_KEY" in err[-1]


def test_rejected_key_is_an_api_error_on_one_line_without_the_key(fake, monkeypatch, capsys):
    monkeypatch.setenv("EXTEND_API_KEY", "sk_cli_wrong_key_456")

    assert main(["--base-url", fake.url]) == EXIT_API

    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "HTTP 401" in last and "requestId req_fake_" in last
    assert "sk_cli_wrong_key_456" not in err
    assert "Traceback" not in err


def test_bad_settings_name_what_is_wrong(fake, monkeypatch, capsys):
    monkeypatch.setenv("EXTEND_API_KEY", fake.state.api_key)

    assert main(["--base-url", fake.url, "--page-size", "5000"]) == EXIT_CONFIG
    assert main(["--base-url", "http://api.example.test"]) == EXIT_CONFIG
    assert main(["--base-url", fake.url, "--status", "DONE"]) == EXIT_CONFIG

    lines = capsys.readouterr().err.strip().splitlines()
    assert "page_size" in lines[0] and "clear text" in lines[1] and "status" in lines[2]
