"""The login throttle shared by every node of a deployment, in Redis.

The same policy as :class:`trionet.auth.LoginThrottle` (failures per key over a sliding
window, one limit per kind of key), kept in one sorted set per key (``P:login:<key>``, the
attempts scored by Redis's own clock, so the nodes' clocks do not matter) and checked and
recorded in one script: guesses spread over the nodes count together, and concurrent ones
cannot all pass. While Redis is unreachable each node falls back to its own throttle (the
limits then hold per node), and says so once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

from .redis import RedisBackplane

__all__ = ["RedisLoginGuard", "CHECK_AND_FAIL"]

log = logging.getLogger("trionet.auth")

#: KEYS: one sorted set per key; ARGV: window ms, attempt id, then each key's limit. Over any
#: limit: returns the seconds to wait and records nothing; else records the attempt in each
#: set and returns 0.
CHECK_AND_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local limit = tonumber(ARGV[2 + i])
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = math.floor((tonumber(oldest[2]) + window - now) / 1000) + 1
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  local limit = tonumber(ARGV[2 + i])
  local extra = redis.call('ZCARD', KEYS[i]) - limit
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[i], 0, extra - 1) end
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
"""


class _Guard(Protocol):
    async def begin(self, keys: Sequence[str]) -> tuple[int | None, str]: ...

    async def forgive(self, keys: Sequence[str], attempt: str) -> None: ...

    async def succeeded(self, keys: Sequence[str]) -> None: ...


class RedisLoginGuard:
    """A :class:`~trionet.auth.LoginGuard` every node shares, through the node's backplane
    connection: ``window`` seconds, ``limit_of(key)`` failures per key (the policy of
    :class:`~trionet.auth.LoginThrottle`), and ``fallback`` (this node's own guard) while
    Redis is unreachable."""

    def __init__(self, backplane: RedisBackplane, *, window: float,
                 limit_of: Callable[[str], int], fallback: _Guard) -> None:
        self.backplane = backplane
        self.window = window
        self.limit_of = limit_of
        self.fallback = fallback
        self._warned = False

    def _key(self, key: str) -> str:
        return f"{self.backplane.keys.prefix}:login:{key}"

    def _unreachable(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("the shared login throttle is unreachable (%s): this node counts"
                        " failed logins by itself until Redis is back", exc)

    async def begin(self, keys: Sequence[str]) -> tuple[int | None, str]:
        client = self.backplane.client
        if client is not None:
            attempt = secrets.token_hex(8)
            try:
                script = client.register_script(CHECK_AND_FAIL)
                wait = int(await script(
                    keys=[self._key(k) for k in keys],
                    args=[int(self.window * 1000), attempt, *(self.limit_of(k) for k in keys)]))
            except Exception as exc:  # Redis went away: this node's own throttle
                self._unreachable(exc)
            else:
                self._warned = False
                return (wait or None), f"r:{attempt}"
        held, local = await self.fallback.begin(keys)
        return held, f"l:{local}"

    async def forgive(self, keys: Sequence[str], attempt: str) -> None:
        where, _, token = attempt.partition(":")
        if where == "l":
            await self.fallback.forgive(keys, token)
            return
        client = self.backplane.client
        if client is None:
            return
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(self._key(key), [token])
        except Exception as exc:
            self._unreachable(exc)

    async def succeeded(self, keys: Sequence[str]) -> None:
        await self.fallback.succeeded(keys)
        client = self.backplane.client
        if client is None:
            return
        try:
            await client.delete([self._key(k) for k in keys])
        except Exception as exc:
            self._unreachable(exc)
