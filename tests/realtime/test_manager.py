"""The manager's registry and fan-out, driven directly (no sockets)."""

from __future__ import annotations

import socket

import trio

from trionet.core.errors import CloseCode
from trionet.core.ids import IdAllocator
from trionet.core.routing import ToAll
from trionet.interfaces import Identity
from trionet.metrics import Metrics
from trionet.realtime.manager import Conn, Manager
from trionet.realtime.membership import MembershipCache
from trionet.server import listening_socket


class Groups:
    def __init__(self, groups: dict[int, frozenset[int]]) -> None:
        self.groups = groups
        self.calls = 0

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        self.calls += 1
        return self.groups.get(group_id)


def make_manager(groups: dict[int, frozenset[int]] | None = None) -> Manager:
    return Manager(metrics=Metrics(), membership=MembershipCache(Groups(groups or {})),
                   ids=IdAllocator())


def connect(manager: Manager, user_id: int, queue: int = 4, session: str | None = None
            ) -> tuple[Conn, trio.MemoryReceiveChannel[bytes]]:
    send, receive = trio.open_memory_channel[bytes](queue)
    conn = Conn(Identity(user_id, session_key=session), send)
    manager.register(conn)
    return conn, receive


def drain(receive: trio.MemoryReceiveChannel[bytes]) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


def test_online_while_any_connection_is_open_and_presence_fires_on_first_and_last() -> None:
    manager = make_manager()
    events: list[tuple[int, bool]] = []
    manager.on_presence = lambda uid, online: events.append((uid, online))
    c1, _ = connect(manager, 1)
    c2, _ = connect(manager, 1)
    assert manager.is_online(1) and events == [(1, True)]
    manager.unregister(c1)
    assert manager.is_online(1) and events == [(1, True)]
    manager.unregister(c2)
    manager.unregister(c2)  # idempotent
    assert not manager.is_online(1) and events == [(1, True), (1, False)]


def test_send_to_user_reaches_every_tab_with_the_same_text() -> None:
    manager = make_manager()
    _, r1 = connect(manager, 1)
    _, r2 = connect(manager, 1)
    _, r3 = connect(manager, 2)
    assert manager.send_to_user(1, {"type": "x", "n": 1}) == 2
    assert drain(r1) == drain(r2) == [b'{"type":"x","n":1}'] and drain(r3) == []


def test_full_queue_closes_only_the_slow_consumer_after_its_queued_frames() -> None:
    manager = make_manager()
    slow, r_slow = connect(manager, 1, queue=2)
    _, r_ok = connect(manager, 2, queue=100)
    for i in range(5):
        manager.dispatch(ToAll(), f"f{i}".encode(), "broadcast")
    assert drain(r_ok) == [f"f{i}".encode() for i in range(5)]
    assert drain(r_slow) == [b"f0", b"f1"]  # what was queued, then end of channel
    assert slow.close_code == CloseCode.SLOW_CONSUMER and not manager.is_online(1)
    assert manager.metrics.slow_consumers._value.get() == 1


async def test_broadcast_to_group_uses_accepted_members() -> None:
    manager = make_manager({7: frozenset({1, 2})})
    _, r1 = connect(manager, 1)
    _, r3 = connect(manager, 3)
    assert await manager.broadcast_to_group(7, {"type": "x"}) == 1
    assert drain(r1) == [b'{"type":"x"}'] and drain(r3) == []
    assert await manager.broadcast_to_group(8, {"type": "x"}) == 0


async def test_membership_changed_refetches() -> None:
    groups = Groups({7: frozenset({1})})
    manager = Manager(metrics=Metrics(), membership=MembershipCache(groups), ids=IdAllocator())
    assert await manager.membership.members(7) == frozenset({1})
    groups.groups[7] = frozenset({1, 2})
    assert await manager.membership.members(7) == frozenset({1})  # cached
    manager.membership_changed(7)
    assert await manager.membership.members(7) == frozenset({1, 2})


def test_end_session_closes_only_that_sessions_connections() -> None:
    manager = make_manager()
    a, _ = connect(manager, 1, session="s1")
    b, _ = connect(manager, 1, session="s2")
    assert manager.end_session("s1") == 1
    assert a.close_code == CloseCode.SESSION_ENDED and b.close_code is None


def test_listening_socket_sets_tcp_user_timeout() -> None:
    sock = listening_socket("127.0.0.1", 0, tcp_user_timeout=7.5)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 7500
        client = socket.create_connection(sock.getsockname())
        accepted, _ = sock.accept()
        with client, accepted:  # accepted sockets inherit the option
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 7500
    finally:
        sock.close()


def test_a_socket_registering_after_its_session_ended_is_closed_at_once() -> None:
    """The handshake resolved the session, then logout ended it before the socket registered."""
    manager = make_manager()
    manager.end_session("gone")
    late, receive = connect(manager, 1, session="gone")
    assert late.close_code == CloseCode.SESSION_ENDED and not manager.is_online(1)
    assert drain(receive) == []
    fresh, _ = connect(manager, 1, session="new")
    assert fresh.close_code is None and manager.is_online(1)


async def test_notify_returns_only_once_the_frame_is_queued_to_the_connections() -> None:
    """``done`` used to fire when the committed batch entered the manager's inbox, before it
    was routed: notify() could return with the frame not yet queued anywhere."""
    from trionet.testing import running_server

    async with running_server() as server:
        bob = await server.create_user("bob")
        manager = server.services.manager
        with trio.fail_after(10):
            async with server.connect(bob) as ws:
                while not manager.is_online(bob.id):
                    await trio.sleep(0.01)
                deliveries = server.services.metrics.deliveries
                for i in range(20):  # the old order was a coin toss between two tasks
                    before = deliveries._value.get()
                    await manager.notify(bob.id, "ping", f"n{i}")
                    assert deliveries._value.get() == before + 1, i
                for i in range(20):
                    frame = await server.receive_json(ws)
                    assert frame["message"] == f"n{i}"
