"""Idempotent resend: remember recent (sender, client_id) pairs and what became of them."""

from __future__ import annotations

from collections import OrderedDict

from .committer import Pending

__all__ = ["RecentSends"]


class RecentSends:
    """An LRU of the last ``size`` persisted sends, keyed by (sender id, client id)."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, str], Pending] = OrderedDict()

    def get(self, sender_id: int, client_id: str) -> Pending | None:
        return self._items.get((sender_id, client_id))

    def add(self, sender_id: int, client_id: str, pending: Pending) -> None:
        items = self._items
        items[(sender_id, client_id)] = pending
        if len(items) > self._size:
            items.popitem(last=False)
