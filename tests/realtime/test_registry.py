"""The registry of this node's connections, driven directly (no sockets)."""

from __future__ import annotations

import time

from rt_helpers import connect, drain

from trionet.core.errors import CloseCode
from trionet.core.routing import ConnRef
from trionet.metrics import Metrics
from trionet.realtime.registry import REVOKED_SECONDS, Registry


def test_online_while_any_connection_is_open_and_presence_fires_on_first_and_last() -> None:
    events: list[tuple[int, bool]] = []
    registry = Registry(metrics=Metrics(),
                        on_presence=lambda uid, online: events.append((uid, online)))
    c1, _ = connect(registry, 1)
    c2, _ = connect(registry, 1)
    assert registry.is_online(1) and events == [(1, True)]
    registry.unregister(c1)
    assert registry.is_online(1) and events == [(1, True)]
    registry.unregister(c2)
    registry.unregister(c2)  # idempotent
    assert not registry.is_online(1) and events == [(1, True), (1, False)]
    assert registry.connection_count == 0


def test_connections_are_named_by_node_and_number() -> None:
    registry = Registry(metrics=Metrics(), node="n1")
    a, _ = connect(registry, 1)
    b, _ = connect(registry, 1)
    assert a.ref == ConnRef("n1", a.id) and a.id != b.id


def test_slots_are_bounded_per_user_and_come_back() -> None:
    registry = Registry(metrics=Metrics())
    assert registry.reserve(1, 2) and registry.reserve(1, 2)
    assert not registry.reserve(1, 2)
    assert registry.reserve(2, 2)  # another user is not affected
    registry.release(1)
    assert registry.reserve(1, 2)
    assert registry.reserve(3, 0) and registry.reserve(3, 0)  # 0: no limit


def test_reply_to_a_full_outbox_closes_it_as_a_slow_consumer() -> None:
    registry = Registry(metrics=Metrics())
    conn, receive = connect(registry, 1, queue=1)
    registry.reply(conn, b"a")
    registry.reply(conn, b"b")
    assert drain(receive) == [b"a"]
    assert conn.close_code == CloseCode.SLOW_CONSUMER and not registry.is_online(1)


def test_end_session_closes_only_that_sessions_connections() -> None:
    registry = Registry(metrics=Metrics())
    a, _ = connect(registry, 1, session="s1")
    b, _ = connect(registry, 1, session="s2")
    assert registry.end_session("s1") == 1
    assert a.close_code == CloseCode.SESSION_ENDED and b.close_code is None


def test_a_socket_registering_after_its_session_ended_is_closed_at_once() -> None:
    """The handshake resolved the session, then logout ended it before the socket registered."""
    registry = Registry(metrics=Metrics())
    registry.revoke("gone")
    late, receive = connect(registry, 1, session="gone")
    assert late.close_code == CloseCode.SESSION_ENDED and not registry.is_online(1)
    assert drain(receive) == []
    fresh, _ = connect(registry, 1, session="new")
    assert fresh.close_code is None and registry.is_online(1)


def test_ended_sessions_are_forgotten_after_a_while() -> None:
    registry = Registry(metrics=Metrics())
    registry.revoke("old")
    registry.forget_revoked(time.monotonic() + REVOKED_SECONDS / 2)
    assert connect(registry, 1, session="old")[0].closed
    registry.forget_revoked(time.monotonic() + REVOKED_SECONDS + 1)
    assert not connect(registry, 1, session="old")[0].closed


def test_disconnect_closes_every_connection_of_one_user() -> None:
    registry = Registry(metrics=Metrics())
    a1, _ = connect(registry, 1)
    a2, _ = connect(registry, 1)
    b, _ = connect(registry, 2)
    assert registry.disconnect(1, 4003) == 2
    assert a1.close_code == a2.close_code == 4003 and b.close_code is None
    assert registry.connections() == [b]


def test_expired_credentials_are_closed() -> None:
    import trio

    from trionet.interfaces import Identity

    registry = Registry(metrics=Metrics())
    send, _ = trio.open_memory_channel[bytes](1)
    expiring = registry.connection(Identity(1, expires_at=time.time() + 5), send)
    registry.register(expiring)
    forever, _ = connect(registry, 2)
    assert registry.end_expired() == 0
    assert registry.end_expired(time.time() + 10) == 1
    assert expiring.close_code == CloseCode.SESSION_ENDED and forever.close_code is None
