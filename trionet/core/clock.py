"""Wall-clock helpers (UTC, ISO 8601)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now_iso"]


def now_iso() -> str:
    """Now, as an ISO 8601 UTC string with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
