"""Connections and a group source for the realtime unit tests (no sockets)."""

from __future__ import annotations

import trio

from trionet.interfaces import Identity
from trionet.realtime.registry import Conn, Registry


class Groups:
    """A group-membership source over a dict, counting its look-ups."""

    def __init__(self, groups: dict[int, frozenset[int]]) -> None:
        self.groups = groups
        self.calls = 0

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        self.calls += 1
        return self.groups.get(group_id)


def connect(registry: Registry, user_id: int, queue: int = 4, session: str | None = None
            ) -> tuple[Conn, trio.MemoryReceiveChannel[bytes]]:
    """A registered connection of ``user_id`` with an outbox of ``queue`` frames."""
    send, receive = trio.open_memory_channel[bytes](queue)
    conn = registry.connection(Identity(user_id, session_key=session), send)
    registry.register(conn)
    return conn, receive


def drain(receive: trio.MemoryReceiveChannel[bytes]) -> list[bytes]:
    """Every frame queued so far (stops at the end of a closed channel)."""
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out
