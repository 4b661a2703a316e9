"""Pipelines that load the Extend source into DuckDB or any dlt destination."""
