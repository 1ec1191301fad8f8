"""The central manager task: everything routed goes through one queue and the backplane."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from rt_helpers import Groups, connect, drain

from trionet.backplane import LocalBackplane
from trionet.core.events import ControlEvent, Delivery, PresenceChanged
from trionet.core.frames import message_frame
from trionet.core.ids import IdAllocator, id_to_iso
from trionet.core.routing import ToUsers
from trionet.interfaces import MessageRecord
from trionet.metrics import Metrics
from trionet.realtime.committer import GroupCommitter, Pending
from trionet.realtime.manager import Manager
from trionet.realtime.membership import MembershipCache
from trionet.realtime.notifier import Notifier
from trionet.realtime.registry import Registry
from trionet.realtime.routequeue import WAKE, RouteQueue, Send
from trionet.server import listening_socket
from trionet.store.sqlite import SqliteStore


class RecordingBackplane(LocalBackplane):
    """The in-process backplane, keeping a log of what it was asked to publish."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.batches: list[list[Delivery]] = []
        self.events: list[ControlEvent] = []
        self.stored: list[bool] = []

    async def publish(self, batch: Sequence[Delivery], *, stored: bool = False) -> int:
        self.batches.append(list(batch))
        self.stored.append(stored)
        return await super().publish(batch, stored=stored)

    async def publish_control(self, event: ControlEvent) -> int:
        self.events.append(event)
        return await super().publish_control(event)


@dataclass
class Node:
    manager: Manager
    registry: Registry
    routes: RouteQueue
    backplane: RecordingBackplane
    presence: list[tuple[int, bool]]


@asynccontextmanager
async def running_node(tmp_path: Path, groups: dict[int, frozenset[int]] | None = None,
                       queue_size: int = 4096) -> AsyncIterator[Node]:
    metrics, routes, node = Metrics(), RouteQueue(queue_size), "n1"
    registry = Registry(metrics=metrics, node=node, on_presence=lambda uid, online:
                        routes.control_nowait(PresenceChanged(uid, online, node)))
    backplane = RecordingBackplane(node)
    store = SqliteStore(str(tmp_path / "t.db"))
    committer = GroupCommitter(store, routes.committed, commit_timeout=1, retry_capacity=10,
                               metrics=metrics)
    presence: list[tuple[int, bool]] = []
    manager = Manager(registry=registry, membership=MembershipCache(Groups(groups or {})),
                      backplane=backplane, queue=routes,
                      notifier=Notifier(committer, IdAllocator()), metrics=metrics,
                      on_presence=lambda uid, online: presence.append((uid, online)))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            yield Node(manager, registry, routes, backplane, presence)
            nursery.cancel_scope.cancel()


async def settled(routes: RouteQueue) -> None:
    """Wait until everything queued before this call is routed."""
    await routes.send([], wait=True)


def committed(sender: int, to: int, text: str, mid: int, origin: object = None,
              client_id: str | None = None, persisted: bool = True) -> Pending:
    record = MessageRecord(id=mid, kind="private", sender_id=sender, content=text,
                           created_at=id_to_iso(mid), recipient_id=to, client_id=client_id)
    p = Pending(message=record, target=ToUsers((to,)), frame=message_frame(record),
                origin=origin, client_id=client_id)
    p.persisted = persisted
    return p


async def test_send_to_user_reaches_every_tab_and_counts_them(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        _, r1 = connect(n.registry, 1)
        _, r2 = connect(n.registry, 1)
        _, r3 = connect(n.registry, 2)
        assert await n.manager.send_to_user(1, {"type": "x", "n": 1}) == 2
        assert drain(r1) == drain(r2) == [b'{"type":"x","n":1}'] and drain(r3) == []
        assert await n.manager.broadcast_to_all("{}") == 3


async def test_broadcast_to_group_uses_accepted_members(tmp_path: Path) -> None:
    async with running_node(tmp_path, {7: frozenset({1, 2})}) as n:
        _, r1 = connect(n.registry, 1)
        _, r3 = connect(n.registry, 3)
        assert await n.manager.broadcast_to_group(7, {"type": "x"}) == 1
        assert drain(r1) == [b'{"type":"x"}'] and drain(r3) == []
        assert await n.manager.broadcast_to_group(8, {"type": "x"}) == 0


async def test_a_committed_batch_is_published_once_then_acked(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        alice, r_alice = connect(n.registry, 1, queue=10)
        _, r_bob = connect(n.registry, 2, queue=10)
        batch = [committed(1, 2, f"m{i}", 1000 + i, alice, f"c{i}") for i in range(3)]
        batch.append(committed(1, 2, "late", 1003, alice, "c3", persisted=False))
        await n.routes.committed(batch)
        await settled(n.routes)
        assert [len(b) for b in n.backplane.batches if b] == [4]  # one publish, four frames
        published = zip(n.backplane.batches, n.backplane.stored, strict=True)
        assert [stored for batch, stored in published if batch] == [True]  # as committed
        got = [json.loads(f) for f in drain(r_bob)]
        assert [f["content"] for f in got] == ["m0", "m1", "m2", "late"]
        assert "persisted" not in got[0] and got[3]["persisted"] is False
        acks = [json.loads(f) for f in drain(r_alice)]
        assert [(a["client_id"], a["id"], a["persisted"]) for a in acks] == [
            ("c0", 1000, True), ("c1", 1001, True), ("c2", 1002, True), ("c3", 1003, False)]
        assert all(p.delivered for p in batch)


async def test_everything_is_routed_in_the_order_it_was_queued(tmp_path: Path) -> None:
    """Ephemeral sends and committed batches share one queue and one task."""
    async with running_node(tmp_path) as n:
        _, r_bob = connect(n.registry, 2, queue=10)
        await n.routes.send([Delivery(ToUsers((2,)), b'{"n":"typing"}', "typing")])
        await n.routes.committed([committed(1, 2, "hello", 2000)])
        await n.routes.send([Delivery(ToUsers((2,)), b'{"n":"after"}', "custom")])
        await settled(n.routes)
        got = [json.loads(f) for f in drain(r_bob)]
        assert [f.get("n") or f.get("content") for f in got] == ["typing", "hello", "after"]


async def test_presence_changes_pass_the_backplane_as_control_events(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        c1, _ = connect(n.registry, 5)
        c2, _ = connect(n.registry, 5)
        n.registry.unregister(c1)
        n.registry.unregister(c2)
        await settled(n.routes)
        assert n.presence == [(5, True), (5, False)]
        assert n.backplane.events == [PresenceChanged(5, True, "n1"),
                                      PresenceChanged(5, False, "n1")]


async def test_end_session_and_disconnect_user_go_through_the_backplane(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        a, _ = connect(n.registry, 1, session="s1")
        b, _ = connect(n.registry, 2)
        assert await n.manager.end_session("s1") == 1
        assert a.close_code == 4001
        assert connect(n.registry, 1, session="s1")[0].closed  # a late handshake is refused
        assert await n.manager.disconnect_user(2, 1001) == 1
        assert b.close_code == 1001
        n.manager.membership_changed(9)
        await settled(n.routes)
        kinds = [type(e).__name__ for e in n.backplane.events
                 if not isinstance(e, PresenceChanged)]
        assert kinds == ["SessionEnded", "DisconnectUser", "MembershipChanged"]


async def test_a_failing_job_does_not_stop_routing(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        _, r = connect(n.registry, 1)
        broken = Pending(target=ToUsers((1,)), frame={"no": "type"})  # no "type" key
        await n.routes.committed([broken])
        assert await n.manager.send_to_user(1, {"type": "x"}) == 1
        assert broken.delivered and drain(r) == [b'{"type":"x"}']


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


def test_a_full_route_queue_drops_control_events_and_counts_them() -> None:
    """Synchronous callers (the registry's presence changes) never block on the queue."""
    metrics = Metrics()
    routes = RouteQueue(2, metrics=metrics)
    assert routes.control_nowait(PresenceChanged(1, True, "n1"))
    assert routes.control_nowait(PresenceChanged(2, True, "n1"))
    assert not routes.control_nowait(PresenceChanged(3, True, "n1"))
    assert routes.dropped == 1 and metrics.control_dropped._value.get() == 1


async def test_control_events_are_not_dropped_behind_a_queue_full_of_frames(
        tmp_path: Path) -> None:
    """Presence changes have a lane of their own, taken before the next job."""
    async with running_node(tmp_path, queue_size=2) as n:
        n.routes._send.send_nowait(WAKE)  # the channel is full (no checkpoint between)
        n.routes._send.send_nowait(WAKE)
        c, _ = connect(n.registry, 5)  # its presence change cannot enter the channel
        n.registry.unregister(c)
        await settled(n.routes)
        assert n.routes.dropped == 0
        assert n.presence == [(5, True), (5, False)]


async def test_a_stopped_manager_settles_what_was_queued_and_refuses_more(
        tmp_path: Path) -> None:
    """Nobody waits for ever on a routing that will not happen."""
    async with running_node(tmp_path) as n:
        pass  # the manager task is stopped at the end of the block
    with trio.fail_after(5):
        with pytest.raises(trio.ClosedResourceError):
            await n.manager.send_to_user(1, {"type": "x"})
        with pytest.raises(trio.ClosedResourceError):
            await n.routes.committed([committed(1, 2, "late", 3000)])
    assert not n.routes.control_nowait(PresenceChanged(1, True, "n1"))


async def test_settles_jobs_queued_when_it_stops(tmp_path: Path) -> None:
    routes = RouteQueue(8)
    pending = committed(1, 2, "queued", 3001)
    pending.done = trio.Event()
    await routes.committed([pending])
    waiting = Send([], trio.Event())
    routes._send.send_nowait(waiting)
    from trionet.realtime.manager import _settle

    for job in routes.close():
        _settle(job)
    assert pending.delivered and pending.done.is_set() and waiting.done is not None
    assert waiting.done.is_set()


async def test_one_record_that_cannot_be_encoded_costs_only_itself(tmp_path: Path) -> None:
    async with running_node(tmp_path) as n:
        _, r_bob = connect(n.registry, 2, queue=10)
        bad = committed(1, 2, "bad", 4001)
        assert bad.frame is not None
        bad.frame["content"] = object()  # not JSON
        batch = [committed(1, 2, "a", 4000), bad, committed(1, 2, "b", 4002)]
        await n.routes.committed(batch)
        await settled(n.routes)
        assert [json.loads(f)["content"] for f in drain(r_bob)] == ["a", "b"]
        assert all(p.delivered for p in batch)
