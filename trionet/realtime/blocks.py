"""Blocking: who may not reach whom, cached for the paths that ask on every frame.

A block works both ways (:mod:`trionet.store.blocks`): while A blocks B, neither can send the
other private messages, typing or invites, and neither hears of the other's presence.
:class:`BlockCache` keeps, per user, everyone they block or are blocked by, fetched on a
miss and kept ``ttl`` seconds at most; a block or unblock forgets both users at once here and
on every node (a :class:`~trionet.core.events.BlocksChanged` control event).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..store import BlockStore

__all__ = ["BlockCache"]


class BlockCache:
    """Block relations per user, in front of a :class:`~trionet.store.BlockStore`."""

    def __init__(self, store: BlockStore, *, ttl: float = 30.0, size: int = 10_000) -> None:
        self._store = store
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[int, tuple[float, frozenset[int]]] = OrderedDict()
        self._generation: dict[int, int] = {}

    async def between(self, user_id: int, other_id: int) -> bool:
        """Does either of the two block the other?"""
        return other_id in await self.relations(user_id)

    async def relations(self, user_id: int) -> frozenset[int]:
        """Everyone the user blocks or is blocked by."""
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] >= time.monotonic():
            self._cache.move_to_end(user_id)
            return hit[1]
        generation = self._generation.get(user_id, 0)
        found = await self._store.block_relations(user_id)
        if self._generation.get(user_id, 0) == generation:  # not invalidated meanwhile
            self._cache[user_id] = (time.monotonic() + self._ttl, found)
            self._cache.move_to_end(user_id)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    def invalidate(self, user_id: int) -> None:
        """Forget a user's relations; the next lookup fetches them again."""
        self._cache.pop(user_id, None)
        self._generation[user_id] = self._generation.get(user_id, 0) + 1
