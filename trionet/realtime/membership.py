"""A cache in front of the :class:`~trionet.interfaces.GroupMemberFetcher`.

Routing reads it on every group message; the HTTP API (or a backend, through
``Manager.membership_changed``) invalidates a group when its membership changes.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..interfaces import GroupMemberFetcher

__all__ = ["MembershipCache"]


class MembershipCache:
    """Accepted members per group, fetched on a miss, kept ``ttl`` seconds at most."""

    def __init__(self, fetcher: GroupMemberFetcher, *, ttl: float = 30.0, size: int = 10_000):
        self._fetcher = fetcher
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[int, tuple[float, frozenset[int] | None]] = OrderedDict()
        self._generation: dict[int, int] = {}

    def peek(self, group_id: int) -> frozenset[int] | None:
        """The cached members, if fresh; never fetches."""
        hit = self._cache.get(group_id)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    async def members(self, group_id: int) -> frozenset[int] | None:
        """Accepted member ids; None when the group does not exist."""
        hit = self._cache.get(group_id)
        if hit is not None and hit[0] >= time.monotonic():
            self._cache.move_to_end(group_id)
            return hit[1]
        generation = self._generation.get(group_id, 0)
        found = await self._fetcher.accepted_members(group_id)
        if self._generation.get(group_id, 0) == generation:  # not invalidated meanwhile
            self._cache[group_id] = (time.monotonic() + self._ttl, found)
            self._cache.move_to_end(group_id)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    def invalidate(self, group_id: int) -> None:
        """Forget a group's members; the next lookup fetches them again."""
        self._cache.pop(group_id, None)
        self._generation[group_id] = self._generation.get(group_id, 0) + 1
