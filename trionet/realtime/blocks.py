"""Blocking: who may not reach whom, cached for the paths that ask on every frame.

A block works both ways (:mod:`trionet.store.blocks`): while A blocks B, neither can send the
other private messages, typing or invites, and neither hears of the other's presence.
:class:`BlockCache` keeps, per user, everyone they block or are blocked by, fetched on a
miss and kept ``ttl`` seconds at most; a block or unblock forgets both users at once here and
on every node (a :class:`~trionet.core.events.BlocksChanged` control event).
"""

from __future__ import annotations

from ..store import BlockStore
from .ttlcache import TtlCache

__all__ = ["BlockCache"]


class BlockCache:
    """Block relations per user, in front of a :class:`~trionet.store.BlockStore`."""

    def __init__(self, store: BlockStore, *, ttl: float = 30.0, size: int = 10_000) -> None:
        self._cache: TtlCache[int, frozenset[int]] = TtlCache(store.block_relations, ttl=ttl,
                                                              size=size)

    async def between(self, user_id: int, other_id: int) -> bool:
        """Does either of the two block the other?"""
        return other_id in await self._cache.get(user_id)

    async def relations(self, user_id: int) -> frozenset[int]:
        """Everyone the user blocks or is blocked by."""
        return await self._cache.get(user_id)

    def invalidate(self, user_id: int) -> None:
        """Forget a user's relations; the next lookup fetches them again."""
        self._cache.invalidate(user_id)
