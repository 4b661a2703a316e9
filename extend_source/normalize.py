"""Turn pages of ParseRunSummary records into flat Arrow tables with a fixed schema.

Pages become Arrow tables rather than dicts so that dlt writes them straight to
Parquet: the table's types then never depend on what the first page contained,
and no per-row Python normalisation runs inside dlt.

There are two ways to a table. A well-formed list answer is decoded straight into
one (`decode_list_page`); anything else, and runs fetched one by one, go through
`page_to_table`, which checks every record and names what is wrong.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from extend_source.errors import ExtendDataError

TIMESTAMP = pa.timestamp("us", tz="UTC")
# Arrow parses RFC 3339 text with any number of fractional digits only into
# nanoseconds; the value is then truncated to the microseconds dlt stores.
_PARSE_TIMESTAMP = pa.timestamp("ns", tz="UTC")

# Only the loaded fields: one the table does not keep cannot fail a page.
_FILE_METADATA = pa.struct([("pageCount", pa.float64())])
_FILE = pa.struct(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("type", pa.string()),
        ("parentFileId", pa.string()),
        ("metadata", _FILE_METADATA),
        ("createdAt", pa.string()),
    ]
)

# The part of a ParseRunSummary that is loaded; anything else in a record
# (extra fields, or `output` and `config` from older list answers) is ignored.
SUMMARY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("status", pa.string()),
        ("batchId", pa.string()),
        ("file", _FILE),
        ("failureReason", pa.string()),
        ("failureMessage", pa.string()),
        (
            "metrics",
            pa.struct([("processingTimeMs", pa.float64()), ("pageCount", pa.float64())]),
        ),
        (
            "usage",
            pa.struct([("credits", pa.float64()), ("totalCredits", pa.float64())]),
        ),
        ("createdAt", pa.string()),
        ("updatedAt", pa.string()),
    ]
)


@dataclass(frozen=True)
class Column:
    """One loaded column: where it comes from in the record and how it is typed."""

    name: str
    path: tuple[str, ...]
    arrow_type: pa.DataType
    dlt_type: str
    description: str
    nullable: bool = True


COLUMNS = (
    Column("id", ("id",), pa.string(), "text", "Parse run id (pr_...)", nullable=False),
    Column(
        "status",
        ("status",),
        pa.string(),
        "text",
        "PENDING, PROCESSING, PROCESSED, ...",
    ),
    Column(
        "created_at",
        ("createdAt",),
        TIMESTAMP,
        "timestamp",
        "When the run was created",
        False,
    ),
    Column(
        "updated_at",
        ("updatedAt",),
        TIMESTAMP,
        "timestamp",
        "When the run last changed",
    ),
    Column("batch_id", ("batchId",), pa.string(), "text", "Batch submission id (bpar_...)"),
    Column("file_id", ("file", "id"), pa.string(), "text", "Parsed file id (file_...)"),
    Column("file_name", ("file", "name"), pa.string(), "text", "Parsed file name"),
    Column("file_type", ("file", "type"), pa.string(), "text", "PDF, CSV, IMG, ..."),
    Column(
        "file_parent_file_id",
        ("file", "parentFileId"),
        pa.string(),
        "text",
        "Split source",
    ),
    Column(
        "file_page_count",
        ("file", "metadata", "pageCount"),
        pa.int64(),
        "bigint",
        "Pages",
    ),
    Column("file_created_at", ("file", "createdAt"), TIMESTAMP, "timestamp", "File created"),
    Column("page_count", ("metrics", "pageCount"), pa.int64(), "bigint", "Pages parsed"),
    Column(
        "processing_time_ms",
        ("metrics", "processingTimeMs"),
        pa.int64(),
        "bigint",
        "Duration",
    ),
    Column("credits", ("usage", "credits"), pa.float64(), "double", "Credits used"),
    Column(
        "total_credits",
        ("usage", "totalCredits"),
        pa.float64(),
        "double",
        "Total credits",
    ),
    Column("failure_reason", ("failureReason",), pa.string(), "text", "Why the run failed"),
    Column("failure_message", ("failureMessage",), pa.string(), "text", "Failure, readable"),
)
JSON_COLUMN = "metadata"

# The end of every message about a record that cannot be loaded as it is.
STOPS = "the sync stops without advancing, so nothing is lost; report the run to Extend support"

# dlt column hints for every loaded column, so no type is ever inferred.
COLUMN_HINTS: dict[str, dict[str, Any]] = {
    **{
        c.name: {
            "data_type": c.dlt_type,
            "nullable": c.nullable,
            "description": c.description,
        }
        for c in COLUMNS
    },
    JSON_COLUMN: {
        "data_type": "json",
        "nullable": True,
        "description": "Caller's metadata",
    },
}
# A first load appends (there is nothing to merge with), where dedup_sort has no use.
APPEND_COLUMN_HINTS = {name: dict(hints) for name, hints in COLUMN_HINTS.items()}
COLUMN_HINTS["updated_at"]["dedup_sort"] = "desc"

TABLE_SCHEMA = pa.schema(
    [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in COLUMNS]
    + [pa.field(JSON_COLUMN, pa.string())]
)


def page_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Normalise one page of list records (or fetched runs) into a `TABLE_SCHEMA` table."""
    _check_required(records)
    try:
        nested = pa.Table.from_pylist(records, schema=SUMMARY_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ExtendDataError(_describe_bad_record(records, exc)) from None

    arrays = [_column(nested, column, records) for column in COLUMNS]
    arrays.append(
        pa.array([_metadata_json(r.get(JSON_COLUMN), r.get("id")) for r in records], pa.string())
    )
    return pa.Table.from_arrays(arrays, schema=TABLE_SCHEMA)


def _check_required(records: list[dict[str, Any]]) -> None:
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise ExtendDataError(
                f"record {position} of a page is a {type(record).__name__}, not a run; {STOPS}"
            )
        if not record.get("id") or not record.get("createdAt"):
            raise ExtendDataError(
                f"record {position} of a page has no 'id' or 'createdAt' "
                f"(id={record.get('id')!r}); it cannot be loaded or tracked; {STOPS}"
            )


def _column(nested: pa.Table, column: Column, records: list[dict[str, Any]]) -> pa.Array:
    values = nested.column(column.path[0]).combine_chunks()
    for name in column.path[1:]:
        values = pc.struct_field(values, name)
    try:
        return _typed(values, column)
    except pa.ArrowInvalid:
        _raise_bad_value(values, column, records)
        raise


def _typed(values: pa.Array, column: Column) -> pa.Array:
    """A column's values as read (text or float64) cast to the column's type."""
    if column.arrow_type == TIMESTAMP:
        return values.cast(_PARSE_TIMESTAMP).cast(TIMESTAMP, safe=False)
    if column.arrow_type == pa.int64():
        return pc.round(values).cast(pa.int64())
    return values.cast(column.arrow_type)


def _raise_bad_value(values: pa.Array, column: Column, records: list[dict[str, Any]]) -> None:
    expected = "an RFC 3339 timestamp" if column.arrow_type == TIMESTAMP else "a whole number"
    for record, value in zip(records, values.to_pylist(), strict=True):
        try:
            _typed(pa.array([value], values.type), column)
        except pa.ArrowInvalid:
            raise ExtendDataError(
                f"run {record.get('id')!r} has {column.path[-1]}={value!r}, which is not "
                f"{expected} it can store; {STOPS}"
            ) from None


def _metadata_json(value: Any, run_id: str | None) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        pass
    # orjson stops at 254 levels of nesting; the standard library goes on to
    # Python's recursion limit, which no metadata worth loading reaches.
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise ExtendDataError(
            f"run {run_id!r} has metadata nested too deeply to store (over "
            "~900 levels); flatten or remove that run's metadata, then run the sync again"
        ) from None


def _describe_bad_record(records: list[dict[str, Any]], exc: Exception) -> str:
    for record in records:
        try:
            pa.Table.from_pylist([record], schema=SUMMARY_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as one:
            return f"run {record.get('id')!r} has a field of an unexpected type: {one}; {STOPS}"
    return f"a page could not be read: {exc}"


# The records of a list page as msgspec decodes them: the loaded fields only,
# named in snake case, each matched to the API's camelCase name.
# Numbers stay as JSON wrote them: a float field would round an integer past 2**53
# that Arrow refuses on the careful way.
Number = int | float


class _FileMetadata(msgspec.Struct, rename="camel"):
    page_count: Number | None = None


class _File(msgspec.Struct, rename="camel"):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    parent_file_id: str | None = None
    metadata: _FileMetadata = msgspec.field(default_factory=_FileMetadata)
    created_at: str | None = None


class _Metrics(msgspec.Struct, rename="camel"):
    processing_time_ms: Number | None = None
    page_count: Number | None = None


class _Usage(msgspec.Struct, rename="camel"):
    credits: Number | None = None
    total_credits: Number | None = None


class _Run(msgspec.Struct, rename="camel"):
    id: str | None = None
    status: str | None = None
    batch_id: str | None = None
    # Not optional, so every column is a plain attribute path; a null object
    # here is rare and sends the page the careful way.
    file: _File = msgspec.field(default_factory=_File)
    failure_reason: str | None = None
    failure_message: str | None = None
    metrics: _Metrics = msgspec.field(default_factory=_Metrics)
    usage: _Usage = msgspec.field(default_factory=_Usage)
    created_at: str | None = None
    updated_at: str | None = None
    metadata: Any = None


class _ListPage(msgspec.Struct, rename="camel"):
    data: list[_Run] | None = None
    next_page_token: str | None = None


_LIST_PAGE = msgspec.json.Decoder(_ListPage)


def decode_list_page(body: bytes) -> dict[str, Any] | None:
    """A list answer as {"data": TABLE_SCHEMA table, "nextPageToken": ...}, or None.

    The fast way for a well-formed page: msgspec decodes only the fields the table
    keeps, into typed records, and never builds the dicts of the rest. Any page it
    cannot take as it is (a missing id, a field of another type, a bad time) gives
    None, and goes the careful way, `page_to_table`, which says what is wrong.
    """
    try:
        page = _LIST_PAGE.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    runs = page.data
    if runs is None or not all(run.id and run.created_at for run in runs):
        return None
    try:
        table = _runs_to_table(runs)
    except (pa.ArrowException, UnicodeError):
        return None
    return {"data": table, "nextPageToken": page.next_page_token}


def _runs_to_table(runs: list[_Run]) -> pa.Table:
    arrays = [_typed(_attribute_column(runs, column), column) for column in COLUMNS]
    arrays.append(pa.array([_metadata_json(run.metadata, run.id) for run in runs], pa.string()))
    return pa.Table.from_arrays(arrays, schema=TABLE_SCHEMA)


def _attribute_column(runs: list[_Run], column: Column) -> pa.Array:
    getter, read_as = _ATTRIBUTES[column.name]
    return pa.array(list(map(getter, runs)), read_as)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _reader(column: Column) -> tuple[Callable[[_Run], Any], pa.DataType]:
    numeric = column.arrow_type in (pa.int64(), pa.float64())
    getter = attrgetter(".".join(map(_snake_case, column.path)))
    return getter, pa.float64() if numeric else pa.string()


_ATTRIBUTES = {column.name: _reader(column) for column in COLUMNS}
