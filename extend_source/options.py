"""Validation of the sync's settings, before anything is sent to the API."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from extend_source.errors import ExtendConfigError
from extend_source.settings import LIST_SOURCES, LIST_STATUSES, MAX_PAGE_SIZE


@dataclass(frozen=True)
class SyncOptions:
    """What to read and how far back; built by `SyncOptions.build` from raw settings."""

    filters: dict[str, str]
    page_size: int
    start_date: datetime | None
    inflight_window: timedelta
    refresh_requests_per_second: float

    @classmethod
    def build(
        cls,
        *,
        page_size: int,
        start_date: str | datetime | None,
        inflight_window_hours: float,
        refresh_requests_per_second: float,
        status: str | None = None,
        batch_id: str | None = None,
        source: str | None = None,
        source_id: str | None = None,
        file_name_contains: str | None = None,
    ) -> "SyncOptions":
        """Check every setting and name the one that is wrong."""
        page_size = _page_size(page_size)
        filters = {
            "status": _choice("status", status, LIST_STATUSES),
            "batchId": batch_id,
            "source": _choice("source", source, LIST_SOURCES),
            "sourceId": source_id,
            "fileNameContains": file_name_contains,
        }
        if float(inflight_window_hours) < 0:
            raise ExtendConfigError("inflight_window_hours must be 0 or more")
        if float(refresh_requests_per_second) <= 0:
            raise ExtendConfigError("refresh_requests_per_second must be above 0")
        return cls(
            filters={k: v for k, v in filters.items() if v},
            page_size=page_size,
            start_date=parse_start_date(start_date),
            inflight_window=timedelta(hours=float(inflight_window_hours)),
            refresh_requests_per_second=float(refresh_requests_per_second),
        )


def _page_size(value: Any) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE or str(size) != str(value).strip():
        raise ExtendConfigError(
            f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, got {value!r}"
        )
    return size


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value.upper() not in allowed:
        raise ExtendConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value.upper()


def parse_start_date(value: str | datetime | None) -> datetime | None:
    """Read a start date (YYYY-MM-DD or RFC 3339); naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ExtendConfigError(
                f"start_date {value!r} is not a date; use YYYY-MM-DD or "
                "an RFC 3339 time such as 2026-01-31T00:00:00Z"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
