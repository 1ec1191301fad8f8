"""A cache in front of the :class:`~trionet.interfaces.GroupMemberFetcher`.

Routing reads it on every group message; the HTTP API (or a backend, through
``Manager.membership_changed``) invalidates a group when its membership changes.
"""

from __future__ import annotations

from ..interfaces import GroupMemberFetcher
from .ttlcache import TtlCache

__all__ = ["MembershipCache"]


class MembershipCache:
    """Accepted members per group, fetched on a miss, kept ``ttl`` seconds at most."""

    def __init__(self, fetcher: GroupMemberFetcher, *, ttl: float = 30.0, size: int = 10_000):
        self._cache: TtlCache[int, frozenset[int] | None] = TtlCache(
            fetcher.accepted_members, ttl=ttl, size=size)

    def peek(self, group_id: int) -> frozenset[int] | None:
        """The cached members, if fresh; never fetches."""
        return self._cache.peek(group_id)

    async def members(self, group_id: int) -> frozenset[int] | None:
        """Accepted member ids; None when the group does not exist."""
        return await self._cache.get(group_id)

    def invalidate(self, group_id: int) -> None:
        """Forget a group's members; the next lookup fetches them again."""
        self._cache.invalidate(group_id)
