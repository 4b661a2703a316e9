"""The extend-sync command: demo end to end and its summary (bad settings: test_config_errors)."""

import duckdb

from pipelines.cli import main


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
