"""Where a sync may stop paging, and what it must remember for the next one.

There is no server-side time filter and runs change after they are first seen,
so the cursor is more than dlt's single `last_value`: it keeps the newest
`createdAt` loaded and the runs still in flight. Paging goes back to the oldest
in-flight run inside a window; in-flight runs older than that, and those paging
passed without listing, are fetched one by one. All of it lives in dlt's
resource state, which dlt saves only with a load package that extracted whole.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from extend_source.errors import FirstLoadConflictError
from extend_source.settings import OVERLAP, TERMINAL_STATUSES

logger = logging.getLogger(__name__)

_TERMINAL = pa.array(sorted(TERMINAL_STATUSES))


def cursor_key(filters: dict[str, Any], start_date: datetime | None) -> str:
    """Name the cursor after the filters, so each filtered view keeps its own."""
    identity = {k: v for k, v in sorted(filters.items()) if v is not None}
    identity["start_date"] = start_date.isoformat() if start_date else None
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return digest[:16]


@dataclass
class SyncCursor:
    """One sync's view of the stored cursor, updated page by page."""

    start_date: datetime | None
    window: timedelta
    newest: datetime | None = None
    in_flight: dict[str, str] = field(default_factory=dict)
    stop_at: datetime | None = None
    to_refresh: list[str] = field(default_factory=list)
    ordered: bool = True
    # Set for a first load by append, which has no merge to drop a repeated run.
    unique: bool = False
    _last_created: datetime | None = None
    _edge_ids: frozenset[str] = frozenset()
    _watched: frozenset[str] = frozenset()
    _seen: set[str] = field(default_factory=set)

    @classmethod
    def load(
        cls,
        state: dict[str, Any],
        *,
        start_date: datetime | None,
        window: timedelta,
        unique: bool = False,
    ) -> "SyncCursor":
        """Read the stored cursor and plan this sync's stop point and refreshes."""
        cursor = cls(start_date=start_date, window=window, unique=unique)
        if state.get("newest_created_at"):
            cursor.newest = datetime.fromisoformat(state["newest_created_at"])
        cursor.in_flight = dict(state.get("in_flight") or {})
        # Only stored in-flight runs need to be recognised when listed again,
        # so memory stays flat however many runs a sync pages through.
        cursor._watched = frozenset(cursor.in_flight)
        cursor._plan()
        return cursor

    def _plan(self) -> None:
        if self.newest is None:
            self.stop_at = self.start_date
            return
        horizon = self.newest - self.window
        # The overlap re-reads a few minutes below the newest stored run, in
        # case a run became visible in the list later than its createdAt says.
        paged_back_to = [self.newest - OVERLAP]
        for run_id, created in self.in_flight.items():
            created_at = datetime.fromisoformat(created)
            if created_at >= horizon:
                paged_back_to.append(created_at)
            else:
                self.to_refresh.append(run_id)
        self.stop_at = max(filter(None, [min(paged_back_to), self.start_date]))

    def observe(self, table: pa.Table) -> pa.Table:
        """Take one normalised page: check its order, track its runs, return those to load."""
        if table.num_rows == 0:
            return table
        created = table.column("created_at").combine_chunks()
        self._check_order(created)
        if self.unique:
            self._check_unique(table.column("id").combine_chunks(), created)
        self._last_created = created[-1].as_py()

        if self.start_date is not None:
            table = table.filter(pc.greater_equal(table.column("created_at"), self.start_date))
        if table.num_rows:
            self._track(table)
        return table

    def _track(self, table: pa.Table) -> None:
        page_newest = pc.max(table.column("created_at")).as_py()
        if self.newest is None or page_newest > self.newest:
            self.newest = page_newest

        running = pc.fill_null(pc.invert(pc.is_in(table.column("status"), _TERMINAL)), True)
        ids = table.column("id").to_pylist()
        if self._watched:
            self._seen.update(i for i in ids if i in self._watched)
        # Only running rows need their createdAt as Python values: turning a whole
        # page of timestamps into datetimes costs more than the rest of the page.
        created = iter(pc.filter(table.column("created_at"), running).to_pylist())
        for run_id, is_running in zip(ids, running.to_pylist(), strict=True):
            if is_running:
                self.in_flight[run_id] = next(created).isoformat()
            elif run_id in self.in_flight:
                del self.in_flight[run_id]

    def _check_order(self, values: pa.Array) -> None:
        if not self.ordered:
            return
        rising = self._last_created is not None and values[0].as_py() > self._last_created
        if len(values) > 1:
            rising = rising or pc.any(pc.greater(values[1:], values[:-1])).as_py()
        if rising and self.unique:
            raise FirstLoadConflictError("GET /parse_runs is not returning runs newest first")
        if rising:
            self.ordered = False
            logger.warning(
                "GET /parse_runs is not returning runs newest first; reading every page "
                "instead of stopping early, which costs more requests"
            )

    def _check_unique(self, ids: pa.Array, created: pa.Array) -> None:
        # Pages come newest first (checked before this), so a run listed twice
        # is either twice on one page or at the edge between two pages: among
        # the runs sharing the previous page's last createdAt.
        if pc.count_distinct(ids).as_py() < len(ids):
            raise FirstLoadConflictError("a page of GET /parse_runs lists a run twice")
        if self._last_created is not None:
            at_edge = pc.equal(created, pa.scalar(self._last_created, created.type))
            repeated = set(pc.filter(ids, at_edge).to_pylist()) & self._edge_ids
            if repeated:
                raise FirstLoadConflictError(
                    f"GET /parse_runs listed run {sorted(repeated)[0]} on two pages"
                )
        edge = frozenset(pc.filter(ids, pc.equal(created, created[-1])).to_pylist())
        # A page of one createdAt throughout extends the edge rather than starting one.
        if created[-1].as_py() == self._last_created:
            edge |= self._edge_ids
        self._edge_ids = edge

    def can_stop(self) -> bool:
        """True once paging is past everything this sync must re-read."""
        if not self.ordered or self.stop_at is None or self._last_created is None:
            return False
        return self._last_created < self.stop_at

    def finish_paging(self, *, reached_end: bool) -> None:
        """Queue for a one-by-one fetch the in-flight runs paging covered but did not list.

        Such a run was deleted, or left the filtered view (e.g. a status filter);
        its own answer tells which.
        """
        floor = None if reached_end else self.stop_at
        if floor is None and not reached_end:
            return
        planned = set(self.to_refresh)
        for run_id in self._watched - self._seen - planned:
            created = self.in_flight.get(run_id)
            if created and (floor is None or datetime.fromisoformat(created) >= floor):
                self.to_refresh.append(run_id)
        self.to_refresh = [r for r in self.to_refresh if r not in self._seen]

    def refreshed(self, run_id: str, status: str | None) -> None:
        """Record the outcome of fetching one in-flight run; None means it is gone."""
        if status is None or status in TERMINAL_STATUSES:
            self.in_flight.pop(run_id, None)

    def save(self, state: dict[str, Any]) -> None:
        """Write the cursor back into dlt's resource state."""
        state["newest_created_at"] = self.newest.isoformat() if self.newest else None
        state["in_flight"] = self.in_flight
