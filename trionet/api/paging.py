"""What the paged and id-addressed endpoints share: page parameters, path ids, message frames."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import ApiError, ErrorCode
from .common import int_param, optional_int_param

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_ID",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "Page",
    "page_params",
    "path_id",
]

MAX_ID = 2**53 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000


@dataclass(frozen=True, slots=True)
class Page:
    """Validated ``limit`` / ``offset`` / ``before_id`` of a paged request."""

    limit: int
    offset: int
    before_id: int | None

    @property
    def fetch(self) -> int:
        """Rows to ask the store for: one more than the page, to learn ``has_more``."""
        return self.limit + 1

    def cut(self, rows: list[Any]) -> tuple[list[Any], bool]:
        """The page's rows and ``has_more``, from a fetch of :attr:`fetch` rows."""
        return rows[: self.limit], len(rows) > self.limit


def page_params(args: Mapping[str, str]) -> Page:
    """``limit`` (1-200, default 50), ``offset`` (>= 0, default 0) and ``before_id``.

    Anything malformed or out of range is a 400 naming the parameter; nothing is clamped.
    """
    limit = int_param(args, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = int_param(args, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
    before_id = optional_int_param(args, "before_id")
    return Page(limit=limit, offset=offset, before_id=before_id)


def path_id(value: int, what: str) -> int:
    """An id taken from the URL; 404 when no row could ever have it (0 or past 2**53 - 1)."""
    if not 0 < value <= MAX_ID:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no {what} {value}")
    return value
