"""The sync benchmark: run by hand with `bash bench/run`, never in CI."""
