"""The fast page decoder gives the careful one's table, or declines the page."""

import copy
import json

import orjson
import pytest

from extend_source.errors import ExtendDataError
from extend_source.fake_api import generate_runs
from extend_source.normalize import decode_list_page, page_to_table
from tests.conftest import NEWEST
from tests.test_shapes import FIXTURES


def body(runs, token="tok") -> bytes:
    # The standard library writes metadata deeper than orjson will.
    return json.dumps({"object": "list", "data": runs, "nextPageToken": token}).encode()


def careful(page: bytes):
    return page_to_table(orjson.loads(page)["data"])


SAMPLE = generate_runs(3000, newest=NEWEST, seed=11)


@pytest.mark.parametrize("start", range(0, 3000, 1000))
def test_generated_pages_decode_to_the_careful_table(start):
    page = body(SAMPLE[start : start + 1000])

    fast = decode_list_page(page)

    assert fast is not None
    assert fast["nextPageToken"] == "tok"
    assert fast["data"].equals(careful(page))


def test_the_sdk_example_list_decodes_to_the_careful_table():
    page = (FIXTURES / "sdk-example-list.json").read_bytes()

    fast = decode_list_page(page)

    assert fast is not None
    assert fast["data"].num_rows == len(json.loads(page)["data"])
    assert fast["data"].equals(careful(page))


def deep(levels: int):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value


def test_missing_fields_extra_ones_and_odd_metadata_decode_like_the_careful_way():
    runs = copy.deepcopy([r for r in SAMPLE if r["status"] == "PROCESSED"][:7])
    for key in ("metrics", "usage", "batchId", "metadata"):
        runs[0].pop(key, None)
    runs[1]["file"].pop("metadata")
    runs[2]["somethingNew"] = {"nested": [1, 2]}
    runs[3]["metadata"] = {"名前": "請求書", "emoji": "👩‍💻", "big": 12345678901234567, "x": 1e5}
    runs[4]["metadata"] = deep(300)
    runs[5]["file"]["parentFileId"] = None
    runs[6]["metadata"] = "just text"
    runs[6]["file"]["updatedAt"] = 5
    runs[6]["file"]["metadata"]["parentSplit"] = "not loaded, so not checked"
    page = body(runs, token=None)

    fast = decode_list_page(page)

    assert fast is not None
    assert fast["nextPageToken"] is None
    assert fast["data"].equals(careful(page))


def _changed(change):
    runs = copy.deepcopy(SAMPLE[:3])
    change(runs)
    return body(runs)


DECLINED = {
    "no-id": lambda runs: runs[1].pop("id"),
    "no-createdAt": lambda runs: runs[1].pop("createdAt"),
    "record-not-an-object": lambda runs: runs.__setitem__(1, "pr_text"),
    "status-a-number": lambda runs: runs[1].__setitem__("status", 3),
    "file-a-text": lambda runs: runs[1].__setitem__("file", "file_1"),
    "file-null": lambda runs: runs[1].__setitem__("file", None),
    "createdAt-not-a-time": lambda runs: runs[1].__setitem__("createdAt", "yesterday"),
    "credits-a-text": lambda runs: runs[1].__setitem__("usage", {"credits": "3"}),
    "page-count-past-2**53": lambda runs: runs[1].__setitem__("metrics", {"pageCount": 2**53 + 1}),
    "processing-time-past-bigint": lambda runs: runs[1].__setitem__(
        "metrics", {"processingTimeMs": 1e300}
    ),
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_a_page_the_fast_way_cannot_take_as_it_is_is_declined(change):
    assert decode_list_page(_changed(change)) is None


DEEP = b'{"k":' * 3000 + b"1" + b"}" * 3000
DEEP_ANSWER = b'{"data": [{"id": "pr_1", "metadata": ' + DEEP + b"}]}"


@pytest.mark.parametrize(
    "page",
    [
        b"<html>busy</html>",
        b"[]",
        b'{"data": null, "nextPageToken": "t"}',
        b'{"data": {}}',
        DEEP_ANSWER,
    ],
    ids=["html", "a-list", "data-null", "data-an-object", "3000-levels-deep"],
)
def test_an_answer_that_is_not_a_list_page_is_declined(page):
    assert decode_list_page(page) is None


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_a_declined_page_is_loaded_or_refused_in_one_line_by_the_careful_way(change):
    page = _changed(change)

    try:
        careful(page)
    except ExtendDataError as exc:
        assert "\n" not in str(exc)
