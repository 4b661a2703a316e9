"""The fake's answers match Extend's official SDK types, and the SDK's examples load."""

import json
from pathlib import Path

import pytest
import requests
from extend_ai.parse_runs.types.parse_runs_list_response import ParseRunsListResponse
from extend_ai.types.parse_run import ParseRun

from extend_source.fake_api import FakeExtendState
from tests.conftest import table_rows

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def get(fake, path, **params):
    headers = {
        "Authorization": f"Bearer {fake.state.api_key}",
        "x-extend-api-version": "2026-02-09",
    }
    response = requests.get(fake.url + path, params=params, headers=headers, timeout=5)
    response.raise_for_status()
    return response.json()


def test_fake_list_pages_parse_as_the_sdk_list_response(fake):
    body = get(fake, "/parse_runs", limit=1000)

    parsed = ParseRunsListResponse.model_validate(body)

    assert len(parsed.data) == 1000
    assert parsed.next_page_token
    assert {run.status for run in parsed.data} >= {"PROCESSED", "FAILED"}


@pytest.mark.parametrize("response_type", [None, "url"], ids=["with-output", "output-url"])
def test_fake_run_detail_parses_as_the_sdk_parse_run(fake, response_type):
    run = next(r for r in fake.state.runs() if r["status"] == "PROCESSED")
    params = {"responseType": response_type} if response_type else {}

    parsed = ParseRun.model_validate(get(fake, f"/parse_runs/{run['id']}", **params))

    assert parsed.id == run["id"]
    assert (parsed.output is None) == (response_type == "url")


def test_the_sdk_check_rejects_a_malformed_run(fake):
    body = get(fake, "/parse_runs", limit=1)
    del body["data"][0]["id"]

    with pytest.raises(ValueError):
        ParseRunsListResponse.model_validate(body)


def test_sdk_example_answers_load(fake, sync, db_path):
    listed = json.loads((FIXTURES / "sdk-example-list.json").read_text())
    detail = json.loads((FIXTURES / "sdk-example-retrieve.json").read_text())
    detail = {**detail, "id": "pr_retrieved_example", "createdAt": "2024-03-20T10:00:00.250Z"}
    fake.state.load([*listed["data"], detail])

    sync()

    rows = table_rows(
        db_path,
        "id, status, batch_id, file_type, file_page_count, page_count, credits, failure_reason",
    )
    assert rows["pr_xK9mLPqRtN3vS8wF5hB2cQ"] == (
        "pr_xK9mLPqRtN3vS8wF5hB2cQ",
        "PENDING",
        "bpar_Xj8mK2pL9nR4vT7qY5wZ",
        None,
        30,
        5,
        9.0,
        "FILE_TYPE_NOT_SUPPORTED",
    )
    assert rows["pr_retrieved_example"][3] == "PDF"
    assert isinstance(FakeExtendState().runs(), list)
