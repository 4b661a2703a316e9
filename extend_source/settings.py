"""Constants of the Extend API that the connector relies on, in one place."""

from datetime import timedelta

API_VERSION = "2026-02-09"

DEFAULT_BASE_URL = "https://api.extend.ai"

# Region names a user may give instead of a URL.
REGIONS = {
    "us": "https://api.extend.ai",
    "us1": "https://api.extend.ai",
    "us2": "https://api.us2.extend.app",
    "eu": "https://api.eu1.extend.ai",
    "eu1": "https://api.eu1.extend.ai",
}

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 1000

LIST_STATUSES = ("PENDING", "PROCESSING", "PROCESSED", "FAILED")
LIST_SOURCES = (
    "API",
    "STUDIO",
    "WORKFLOW_RUN",
    "ADMIN",
    "BATCH_PARSER_RUN",
    "EDIT_RUN",
    "DOCUMENT_PROCESSOR_RUN",
)

# A run in one of these states never changes again; any other status, known or
# not, is treated as still in flight so that its later changes are picked up.
TERMINAL_STATUSES = frozenset({"PROCESSED", "FAILED", "CANCELLED"})

# How far behind the newest stored run a sync pages back to re-read runs that
# were still in flight; older in-flight runs are fetched one by one instead.
DEFAULT_INFLIGHT_WINDOW_HOURS = 24.0

# Every incremental sync re-reads this far below the newest stored run.
OVERLAP = timedelta(minutes=5)

# Pace for the one-by-one refreshes, well below the smallest account limit
# (10 requests/s on pay-as-you-go), since list paging shares that budget.
DEFAULT_REFRESH_REQUESTS_PER_SECOND = 5.0

REQUEST_TIMEOUT_SECONDS = 60.0
REQUEST_MAX_ATTEMPTS = 5
RETRY_MAX_DELAY_SECONDS = 60.0
RETRY_STATUS_CODES = (408, 409, 429, *range(500, 600))

API_KEY_ENV = "EXTEND_API_KEY"
