"""Parse runs with known statuses, times, pages and credits, for checking figures exactly."""

from typing import Any


def known_run(
    run_id: str,
    created: str,
    status: str,
    *,
    file_type: str | None = "PDF",
    ms: int | None = None,
    pages: int | None = None,
    credits: float | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """One ParseRunSummary with exactly the figures the views read."""
    run: dict[str, Any] = {
        "object": "parse_run",
        "id": run_id,
        "status": status,
        "file": {"id": f"file_{run_id}", "name": f"{run_id}.pdf", "type": file_type}
        if file_type
        else None,
        "createdAt": created,
        "updatedAt": created,
    }
    if ms is not None:
        run["metrics"] = {"processingTimeMs": ms, "pageCount": pages}
        run["usage"] = {"credits": credits, "totalCredits": credits}
    if reason:
        run["failureReason"], run["failureMessage"] = reason, message
    return run


KNOWN_RUNS = [
    known_run("pr_a1", "2026-11-29T08:00:00Z", "PROCESSED", ms=1000, pages=2, credits=3.0),
    known_run("pr_a2", "2026-11-29T09:00:00Z", "PROCESSED", ms=3000, pages=4, credits=6.0),
    known_run(
        "pr_a3", "2026-11-29T10:00:00Z", "PROCESSED", file_type="IMG", ms=500, pages=1, credits=1.5
    ),
    known_run(
        "pr_a4",
        "2026-11-29T11:00:00Z",
        "FAILED",
        reason="CORRUPT_FILE",
        message="The file appears to be corrupted.",
    ),
    # 01:30 at +02:00 is still the 29th in UTC.
    known_run("pr_a5", "2026-11-30T01:30:00+02:00", "PROCESSED", ms=2000, pages=1, credits=1.5),
    known_run("pr_b1", "2026-11-30T08:00:00Z", "PROCESSED", ms=10000, pages=10, credits=15.0),
    known_run(
        "pr_b2",
        "2026-11-30T09:00:00Z",
        "FAILED",
        file_type="IMG",
        reason="OCR_ERROR",
        message="OCR failed on page 3.",
    ),
    known_run(
        "pr_b3",
        "2026-11-30T09:30:00Z",
        "FAILED",
        file_type="DOCX",
        reason="CORRUPT_FILE",
        message="Corrupt again.",
    ),
    known_run("pr_b4", "2026-11-30T10:00:00Z", "PROCESSING"),
    known_run("pr_b5", "2026-11-30T11:00:00Z", "PENDING", file_type=None),
    known_run("pr_b6", "2026-11-30T11:30:00Z", "CANCELLED"),
]
