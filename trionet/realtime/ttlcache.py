"""A small cache of values fetched by key, kept ``ttl`` seconds at most, bounded in count.

What the membership and block caches share: a hit is moved to the end (least recently used
goes first past ``size``); a fetch that an :meth:`TtlCache.invalidate` overtook is not kept
(a generation per key with a fetch in flight, and only while one is), so a cache never holds
what was true before a change it was told of.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["TtlCache"]

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values by key from ``fetch``, each kept ``ttl`` seconds, ``size`` of them at most."""

    def __init__(self, fetch: Callable[[K], Awaitable[V]], *, ttl: float = 30.0,
                 size: int = 10_000) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[K, tuple[float, V]] = OrderedDict()
        #: key -> [fetches in flight, invalidations since the first of them began]
        self._fetching: dict[K, list[int]] = {}

    def peek(self, key: K) -> V | None:
        """The cached value, if fresh; never fetches."""
        hit = self._cache.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    async def get(self, key: K) -> V:
        """The value, fetched on a miss."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] >= time.monotonic():
            self._cache.move_to_end(key)
            return hit[1]
        mark = self._fetching.setdefault(key, [0, 0])
        mark[0] += 1
        generation = mark[1]
        try:
            found = await self._fetch(key)
        finally:
            mark[0] -= 1
            if not mark[0]:
                del self._fetching[key]
        if mark[1] == generation:  # not invalidated meanwhile
            self._cache[key] = (time.monotonic() + self._ttl, found)
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    def invalidate(self, key: K) -> None:
        """Forget a key's value; the next lookup fetches it again."""
        self._cache.pop(key, None)
        mark = self._fetching.get(key)
        if mark is not None:
            mark[1] += 1
