"""The Redis backplane's names and scripts (no I/O): every key and channel under one prefix.

Keys (``P`` is ``TRIONET_REDIS_PREFIX``):

- ``P:nodes``: the set of node names that ever joined and were not reaped yet;
- ``P:node:<name>``: the node's lease (its worker number), with a TTL it renews;
- ``P:worker:<n>``: worker number ``n`` (0-63, the id allocator's) leased to a node name;
- ``P:where:<user>``: the nodes holding a connection of the user;
- ``P:held:<name>``: the users a node holds (so a dead node's can be reaped);
- ``P:reaping``, ``P:reaping:<name>``: the dead nodes being reaped, and their users still to
  go.

Channels: ``P:to:<name>``, what one node needs (deliveries for its users, its own heartbeat),
and ``P:all``, what every node needs (control events, deliveries to everyone).

Each script runs atomically in Redis, which is what makes "first connection anywhere" and
"last connection anywhere" exact, and reaping a dead node happen once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "ACQUIRE", "RENEW", "JOIN", "LEAVE", "ROUTE", "REAP_CLAIM", "REAP_CHUNK",
           "WORKERS"]

#: worker numbers a node may lease: the id allocator's (trionet.core.ids.WORKERS)
WORKERS = 64


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys and channels of one deployment (one prefix)."""

    prefix: str

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    def node(self, name: str) -> str:
        return f"{self.prefix}:node:{name}"

    def worker(self, number: int) -> str:
        return f"{self.prefix}:worker:{number}"

    def where(self, user_id: int) -> str:
        return f"{self.prefix}:where:{user_id}"

    def held(self, name: str) -> str:
        return f"{self.prefix}:held:{name}"

    def to(self, name: str) -> str:
        return f"{self.prefix}:to:{name}"

    @property
    def reaping(self) -> str:
        return f"{self.prefix}:reaping"

    @property
    def all(self) -> str:
        return f"{self.prefix}:all"


#: KEYS: nodes, node:<me>; ARGV: prefix, me, ttl ms, workers, the number this node had (-1:
#: none). Keeps the number this node holds, else takes the one it had if free, else the first
#: free one; returns {number, 1 if it was held by this node's lease or is the one it had},
#: or {-1, 0} when all are taken.
ACQUIRE = """
local mine = redis.call('GET', KEYS[2])
if mine then
  local wkey = ARGV[1] .. ':worker:' .. mine
  if redis.call('GET', wkey) == ARGV[2] then
    redis.call('PEXPIRE', wkey, ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
    return {tonumber(mine), 1}
  end
end
local function take(n)
  if redis.call('SET', ARGV[1] .. ':worker:' .. n, ARGV[2], 'NX', 'PX', ARGV[3]) then
    redis.call('SET', KEYS[2], n, 'PX', ARGV[3])
    redis.call('SADD', KEYS[1], ARGV[2])
    return true
  end
  return false
end
local had = tonumber(ARGV[5])
if had >= 0 and take(had) then return {had, 1} end
for n = 0, tonumber(ARGV[4]) - 1 do
  if take(n) then return {n, 0} end
end
return {-1, 0}
"""

#: KEYS: node:<me>, worker:<n>; ARGV: me, n, ttl ms. Extends the lease; 0 when it was lost.
RENEW = """
if redis.call('GET', KEYS[2]) == ARGV[1] and redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

#: KEYS: where:<user>, held:<me>; ARGV: me, user, the presence event for every node (published
#: on the channel ARGV[4]). 1 when the user had no node before.
JOIN = """
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[3])
if redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
"""

#: KEYS and ARGV as JOIN's. 1 when no node holds the user any more (also when this is a
#: retry of a leave that was applied: an offline announced twice is harmless, never is not).
LEAVE = """
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[3])
if redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""

#: ARGV: prefix, me, payload, the user ids a batch addresses (decimal, comma-separated).
#: Publishes the payload once to each other live node holding one of them (in a ``where:<user>``
#: set); returns how many nodes. The keys are built here rather than passed as KEYS: encoding
#: a key per member cost the sending node about as much CPU as the rest of the routing (the
#: backplane needs one Redis, not a Redis Cluster, so nothing relies on KEYS naming them).
#: (SUNION in Redis, by slices of 4,000 keys: for a 100-member group 77 us of Redis CPU
#: against 301 us for a loop of SMEMBERS in Lua, measured in docs/scaling.md.)
ROUTE = """
local where = ARGV[1] .. ':where:'
local keys = {}
for id in string.gmatch(ARGV[4], '[^,]+') do keys[#keys + 1] = where .. id end
local seen = {}
local count = 0
for first = 1, #keys, 4000 do
  local last = math.min(first + 3999, #keys)
  for _, node in ipairs(redis.call('SUNION', unpack(keys, first, last))) do
    if node ~= ARGV[2] and not seen[node] then
      seen[node] = true
      if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
        redis.call('PUBLISH', ARGV[1] .. ':to:' .. node, ARGV[3])
        count = count + 1
      end
    end
  end
end
return count
"""

#: KEYS: nodes, reaping; ARGV: prefix, name. Claims a node whose lease expired (a dead one)
#: for reaping: its users move to ``P:reaping:<name>`` (added to what an earlier claim left)
#: and its name into the set ``P:reaping``; returns 1, or 0 when the node is alive or was
#: claimed already.
REAP_CLAIM = """
if redis.call('EXISTS', ARGV[1] .. ':node:' .. ARGV[2]) == 1 then return 0 end
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local held = ARGV[1] .. ':held:' .. ARGV[2]
local reaping = ARGV[1] .. ':reaping:' .. ARGV[2]
if redis.call('EXISTS', held) == 1 then
  redis.call('SUNIONSTORE', reaping, reaping, held)
  redis.call('DEL', held)
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

#: KEYS: reaping; ARGV: prefix, name, count. Reaps up to ``count`` users of a claimed node
#: (any live node may go on with a reap another one began; Redis is never blocked long):
#: removes the node from their sets; returns {those users, those of them now held by no
#: node}, empty once all are done, or when the node came back meanwhile (its own users are
#: its again: it records them when it reconnects).
REAP_CHUNK = """
local reaping = ARGV[1] .. ':reaping:' .. ARGV[2]
if redis.call('EXISTS', ARGV[1] .. ':node:' .. ARGV[2]) == 1 then
  redis.call('DEL', reaping)
  redis.call('SREM', KEYS[1], ARGV[2])
  return {{}, {}}
end
local users = redis.call('SPOP', reaping, ARGV[3])
local gone = {}
for _, user in ipairs(users) do
  local where = ARGV[1] .. ':where:' .. user
  redis.call('SREM', where, ARGV[2])
  if redis.call('SCARD', where) == 0 then table.insert(gone, user) end
end
if redis.call('EXISTS', reaping) == 0 then redis.call('SREM', KEYS[1], ARGV[2]) end
return {users, gone}
"""
