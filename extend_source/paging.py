"""Token pagination as a small state machine, apart from HTTP and from the cursor."""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from extend_source.errors import ExtendDataError

logger = logging.getLogger(__name__)

# An endless run of empty pages with fresh tokens is a server fault, not data.
MAX_CONSECUTIVE_EMPTY_PAGES = 20


@dataclass
class Page:
    """One page of list results: the records, or a table already made of them."""

    number: int
    records: list[dict[str, Any]] | pa.Table
    has_next: bool


@dataclass
class TokenPaginator:
    """Follows `nextPageToken` until it is absent, and refuses to loop."""

    page_size: int
    next_token: str | None = None
    pages: int = 0
    done: bool = False
    _seen_tokens: set[str] = field(default_factory=set)
    _empty_in_a_row: int = 0
    _warned_short_pages: bool = False

    def request_params(self) -> dict[str, Any]:
        # Both names: the reference documents maxPageSize, the server reads limit.
        params: dict[str, Any] = {
            "maxPageSize": self.page_size,
            "limit": self.page_size,
        }
        if self.next_token:
            params["nextPageToken"] = self.next_token
        return params

    def take(self, body: dict[str, Any]) -> Page:
        """Read one answer body; decide whether there is a next page."""
        records = body.get("data")
        if records is None:
            records = []
        if not isinstance(records, list | pa.Table):
            raise ExtendDataError(
                f"page {self.pages + 1} of GET /parse_runs has 'data' of type "
                f"{type(records).__name__}, expected a list; the sync stops without "
                "advancing; report it to Extend support if it repeats"
            )
        self.pages += 1
        token = body.get("nextPageToken") or None
        self._check_token(token)
        self._check_size(len(records), token)
        self.next_token = token
        self.done = token is None
        return Page(number=self.pages, records=records, has_next=not self.done)

    def _check_token(self, token: str | None) -> None:
        if token is None:
            return
        if token in self._seen_tokens:
            raise ExtendDataError(
                f"GET /parse_runs returned the same nextPageToken twice (page "
                f"{self.pages}); stopping instead of looping; run the sync again later"
            )
        self._seen_tokens.add(token)

    def _check_size(self, rows: int, token: str | None) -> None:
        self._empty_in_a_row = self._empty_in_a_row + 1 if rows == 0 else 0
        if token and self._empty_in_a_row >= MAX_CONSECUTIVE_EMPTY_PAGES:
            raise ExtendDataError(
                f"GET /parse_runs returned {self._empty_in_a_row} empty pages in a row "
                "that still carry a nextPageToken; stopping instead of looping; run the "
                "sync again later"
            )
        if token and 0 < rows < self.page_size and not self._warned_short_pages:
            self._warned_short_pages = True
            logger.warning(
                "page %d holds %d runs though %d were asked for; the server may be "
                "ignoring the page size, which costs more requests",
                self.pages,
                rows,
                self.page_size,
            )


def iter_pages(
    fetch: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    page_size: int,
    params: dict[str, Any],
) -> Iterator[Page]:
    """Yield pages of `fetch(params)` until the last one; the caller may stop early."""
    paginator = TokenPaginator(page_size=page_size)
    while not paginator.done:
        yield paginator.take(fetch({**params, **paginator.request_params()}))
