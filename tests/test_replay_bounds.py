"""Resume replay bounded in bytes as well as frames, and streamed page by page.

A user who stores many large messages and opens resuming sockets that never read must not make
the server hold the whole replay per socket: the replay is planned from ids and sizes, then read
and written one page at a time.
"""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio_websocket

from trionet.core.ids import IdAllocator, id_to_iso
from trionet.core.resume import ReplayItem, frame_id, plan_replay, replay_pages
from trionet.interfaces import MessageRecord, NotificationRecord
from trionet.realtime import connection
from trionet.settings import Settings
from trionet.store.sqlite import Database
from trionet.store.sqlite import messages as store
from trionet.testing import TestServer, TestUser, running_server

recv = TestServer.receive_json


async def frames_until_synced(ws: trio_websocket.WebSocketConnection) -> list[dict]:
    out = []
    while True:
        frame = await recv(ws, 10)
        out.append(frame)
        if frame["type"] == "synced":
            return out


async def store_private(server: TestServer, sender: TestUser, to: TestUser,
                        contents: list[str]) -> list[int]:
    """Store messages straight through the server's persister (no socket); their ids."""
    ids = server.services.ids
    records = []
    for content in contents:
        mid = ids.next()
        records.append(MessageRecord(id=mid, kind="private", sender_id=sender.id,
                                     recipient_id=to.id, content=content,
                                     created_at=id_to_iso(mid)))
    await server.services.persister.save(records, [])
    return [r.id for r in records]


async def store_notification(server: TestServer, user: TestUser, message: str) -> int:
    nid = server.services.ids.next()
    await server.services.persister.save([], [NotificationRecord(
        id=nid, user_id=user.id, subtype="note", message=message, created_at=id_to_iso(nid),
        payload={"n": message})])
    return nid


def buffered_bytes(server: TestServer) -> float:
    value = server.services.metrics.registry.get_sample_value("trionet_replay_buffered_bytes")
    assert value is not None
    return value


# -- the attack: resuming sockets that never read ------------------------------------------

SOCKETS = 5
MESSAGES = 300
MESSAGE_BYTES = 40_000


@pytest.mark.slow
async def test_silent_resuming_sockets_hold_one_page_each_and_release_it_on_close() -> None:
    """300 stored messages of 40 KB (12 MB) and 5 sockets resuming from 0 that never read.

    The whole replay used to be read and encoded before the first write blocked: about
    2 x 12 MB of Python objects per socket. Streamed, each stalled socket holds the one page
    it is writing (at most 256 KiB of content), and nothing once it is closed.
    """
    # no byte bound: the whole 12 MB is due to each socket, and only the paging bounds memory
    settings = Settings(rate_limit=0, replay_bytes=0)
    with trio.fail_after(60):
        async with running_server(settings) as server:
            attacker, peer = await server.create_user("a"), await server.create_user("b")
            await store_private(server, attacker, peer,
                                [f"{i:05d}" + "x" * (MESSAGE_BYTES - 5) for i in range(MESSAGES)])
            gc.collect()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                streams = [await server.raw_websocket(attacker, query="since=0",
                                                      receive_buffer=16 * 1024)
                           for _ in range(SOCKETS)]
                # wait until every replay is stuck on a full socket: the gauge stops moving
                last, steady = -1.0, 0
                while steady < 10:
                    await trio.sleep(0.05)
                    value = buffered_bytes(server)
                    steady = steady + 1 if value == last and value > 0 else 0
                    last = value
                held = buffered_bytes(server)
                peak = tracemalloc.get_traced_memory()[1] - baseline
                for stream in streams:
                    await stream.aclose()
                while buffered_bytes(server) > 0:
                    await trio.sleep(0.02)
                while server.services.metrics.registry.get_sample_value(
                        "trionet_connections") != 0:
                    await trio.sleep(0.02)
                gc.collect()
                after = tracemalloc.get_traced_memory()[0] - baseline
            finally:
                tracemalloc.stop()
    page = connection.REPLAY_PAGE_BYTES
    per_page = (page // MESSAGE_BYTES) * MESSAGE_BYTES  # 6 messages: 240,000 bytes of content
    # every socket is stalled in the middle of its replay, holding one encoded page
    assert SOCKETS * per_page <= held <= SOCKETS * (page + 64 * 1024), held
    # the whole process allocated a few pages per socket (the page, its WebSocket framing,
    # the records while encoding), not the 12 MB replay (read, encoded, framed: ~34 MB)
    assert peak < SOCKETS * 6 * page, f"peak {peak / 2**20:.1f} MiB"
    assert after < SOCKETS * page, f"after close {after / 2**20:.1f} MiB"


# -- byte and count bounds ------------------------------------------------------------------

async def test_byte_bound_sends_sync_gap_and_keeps_the_newest() -> None:
    """20 stored messages of 2,000 UTF-8 bytes (1,000 characters) and a 10,000-byte bound."""
    async with running_server(Settings(rate_limit=0, replay_bytes=10_000)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        ids = await store_private(server, a, b, [f"{i:02d}" + "é" * 999 for i in range(20)])
        with trio.fail_after(10):
            async with server.connect(b, query="since=0") as wb:
                frames = await frames_until_synced(wb)
    assert frames[0] == {"type": "sync_gap", "from_id": ids[15]}
    assert [f["id"] for f in frames[1:-1]] == ids[15:]  # bytes, not characters: 5, not 10
    assert [f["content"][:2] for f in frames[1:-1]] == ["15", "16", "17", "18", "19"]
    assert frames[-1] == {"type": "synced", "last_id": ids[-1]}


async def test_byte_bound_counts_notifications_and_replays_at_least_the_newest() -> None:
    async with running_server(Settings(rate_limit=0, replay_bytes=1_000)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        [old] = await store_private(server, a, b, ["x" * 100])
        note = await store_notification(server, b, "y" * 2_000)  # alone past the bound
        with trio.fail_after(10):
            async with server.connect(b, query="since=0&since_notification=0") as wb:
                frames = await frames_until_synced(wb)
    assert frames[0] == {"type": "sync_gap", "from_id": note}
    assert [(f["type"], f["id"]) for f in frames[1:-1]] == [("notification", note)]
    assert frames[-1] == {"type": "synced", "last_id": 0, "last_notification_id": note}
    assert old < note


async def test_count_bound_applies_when_the_bytes_would_fit() -> None:
    settings = Settings(rate_limit=0, replay_limit=5, replay_bytes=1024 * 1024)
    async with running_server(settings) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        ids = await store_private(server, a, b, [f"m{i}" for i in range(8)])
        with trio.fail_after(10):
            async with server.connect(b, query="since=0") as wb:
                frames = await frames_until_synced(wb)
    assert frames[0] == {"type": "sync_gap", "from_id": ids[3]}
    assert [f["id"] for f in frames[1:-1]] == ids[3:]
    assert frames[-1] == {"type": "synced", "last_id": ids[-1]}


async def test_no_sync_gap_when_everything_fits_both_bounds() -> None:
    async with running_server(Settings(rate_limit=0, replay_limit=8, replay_bytes=16)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        ids = await store_private(server, a, b, ["ab"] * 8)  # 16 bytes, 8 frames: exactly
        with trio.fail_after(10):
            async with server.connect(b, query="since=0") as wb:
                frames = await frames_until_synced(wb)
    assert [f["id"] for f in frames[:-1]] == ids
    assert frames[-1] == {"type": "synced", "last_id": ids[-1]}


# -- pages ---------------------------------------------------------------------------------

async def test_page_boundaries_lose_and_repeat_nothing_and_keep_id_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages of 3 rows: messages and notifications alternate across every page boundary."""
    monkeypatch.setattr(connection, "REPLAY_PAGE_ROWS", 3)
    async with running_server(Settings(rate_limit=0)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        expected: list[tuple[str, int]] = []
        for i in range(10):
            [mid] = await store_private(server, a, b, [f"m{i}"])
            expected.append(("private", mid))
            if i % 2:
                expected.append(("notification", await store_notification(server, b, f"n{i}")))
        with trio.fail_after(10):
            async with server.connect(b, query="since=0&since_notification=0") as wb:
                frames = await frames_until_synced(wb)
    assert [(f["type"], f["id"]) for f in frames[:-1]] == expected  # 15 frames, 5 pages
    assert [f["content"] for f in frames[:-1] if f["type"] == "private"] == [
        f"m{i}" for i in range(10)]
    assert [f["n"] for f in frames[:-1] if f["type"] == "notification"] == [
        "n1", "n3", "n5", "n7", "n9"]
    last_note = max(i for t, i in expected if t == "notification")
    last_message = max(i for t, i in expected if t == "private")
    assert frames[-1] == {"type": "synced", "last_id": last_message,
                          "last_notification_id": last_note}


async def test_full_size_pages_cut_by_rows_and_by_bytes_lose_nothing() -> None:
    """150 small messages (pages of 64 rows), then 7 of 100 KB (pages of 2 by bytes)."""
    async with running_server(Settings(rate_limit=0, replay_bytes=0)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        small = await store_private(server, a, b, [f"s{i}" for i in range(150)])
        big_contents = [f"{i}" + "z" * 100_000 for i in range(7)]
        big = await store_private(server, a, b, big_contents)
        with trio.fail_after(20):
            async with server.connect(b, query="since=0") as wb:
                frames = await frames_until_synced(wb)
    assert [f["id"] for f in frames[:-1]] == small + big
    assert [f["content"] for f in frames[-8:-1]] == big_contents
    assert frames[-1] == {"type": "synced", "last_id": big[-1]}


async def test_a_replay_from_after_everything_is_only_synced(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    ids = await store_private(server, a, b, ["x"])
    with trio.fail_after(10):
        async with server.connect(b, query=f"since={ids[0]}&since_notification=0") as wb:
            frames = await frames_until_synced(wb)
    assert frames == [{"type": "synced", "last_id": ids[0], "last_notification_id": 0}]


# -- the pure planning helpers -------------------------------------------------------------

def test_plan_keeps_the_newest_that_fit_the_count_and_the_bytes() -> None:
    messages = [(9, 10), (7, 10), (5, 10), (3, 10)]  # newest first, as the store gives them
    notes = [(8, 5), (4, 5)]
    window, gap = plan_replay(messages, notes, limit=10, max_bytes=0)
    assert [i.id for i in window] == [3, 4, 5, 7, 8, 9] and gap is None
    assert [i.notification for i in window] == [False, True, False, False, True, False]
    window, gap = plan_replay(messages, notes, limit=10, max_bytes=35)
    assert [i.id for i in window] == [5, 7, 8, 9] and gap == 5  # 35 bytes: exactly
    window, gap = plan_replay(messages, notes, limit=10, max_bytes=34)
    assert [i.id for i in window] == [7, 8, 9] and gap == 7
    window, gap = plan_replay(messages, notes, limit=2, max_bytes=1000)
    assert [i.id for i in window] == [8, 9] and gap == 8
    window, gap = plan_replay([(9, 5000)], [], limit=10, max_bytes=100)
    assert [i.id for i in window] == [9] and gap is None  # the newest, even past the bound
    window, gap = plan_replay([(9, 5000), (1, 1)], [], limit=10, max_bytes=100)
    assert [i.id for i in window] == [9] and gap == 9
    assert plan_replay([], [], limit=10, max_bytes=100) == ([], None)


def test_a_look_back_before_the_cursor_never_counts_toward_the_bounds_nor_makes_a_gap() -> None:
    messages = [(9, 10), (7, 10), (5, 10), (3, 10)]  # 3 and 5 are at or before since=5
    window, gap = plan_replay(messages, [], limit=2, max_bytes=0, since=5)
    assert [i.id for i in window] == [3, 5, 7, 9] and gap is None  # 2 fresh ones fit
    window, gap = plan_replay(messages, [], limit=1, max_bytes=0, since=5)
    assert [i.id for i in window] == [9] and gap == 9  # a real gap: no look-back then
    notes = [(8, 5), (2, 5)]  # the notification cursor is its own
    window, gap = plan_replay([], notes, limit=1, max_bytes=0, since=100, since_notification=4)
    assert [i.id for i in window] == [2, 8] and gap is None


def test_pages_are_cut_by_rows_and_by_bytes_in_order() -> None:
    items = [ReplayItem(i, size, False) for i, size in enumerate([10, 10, 10, 50, 10, 10, 10])]

    def cut(rows: int, max_bytes: int) -> list[list[int]]:
        return [[i.id for i in page] for page in replay_pages(items, rows, max_bytes)]

    assert cut(3, 1000) == [[0, 1, 2], [3, 4, 5], [6]]
    assert cut(10, 30) == [[0, 1, 2], [3], [4, 5, 6]]  # a record past the bound: alone
    assert cut(2, 25) == [[0, 1], [2], [3], [4, 5], [6]]
    assert cut(64, 256 * 1024) == [list(range(7))]
    assert list(replay_pages([], 3, 10)) == []


def test_frame_id_reads_the_id_whatever_the_type_name_length() -> None:
    name = "a_custom_persisted_type_with_a_name_much_longer_than_usual_x"
    assert len(name) == 60
    frame = b'{"type":"' + name.encode() + b'","id":245641233211650,"from":1,"to":2}'
    assert frame_id(frame) == 245641233211650
    assert frame_id(b'{"type":"with \\"quote\\" inside","id":7,"x":1}') == 7
    assert frame_id(b'{"type":"ends in backslash\\\\","id":8}') == 8
    # a type name that itself spells the id key is still only the name
    assert frame_id(b'{"type":"x\\",\\"id\\":5","from":1}') is None
    # frames whose second key is not the id carry none, however short (an ack's id is the
    # id of a message a resend repeats: dropping it as a duplicate would lose the ack)
    assert frame_id(b'{"type":"ack","client_id":"1","id":5,"timestamp":"t"}') is None
    assert frame_id(b'{"type":"error","code":"x","message":"m","client_id":null}') is None
    assert frame_id(b'{"type":"private","id":}') is None
    assert frame_id(b'{"type":"unterminated') is None
    assert frame_id(b"[1]") is None


# -- the SQLite store's two queries --------------------------------------------------------

@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    database = Database(str(tmp_path / "trionet.db"))
    database.migrate()
    c = database.connect()
    try:
        yield c
    finally:
        c.close()
        database.close()


def _seed(c: sqlite3.Connection) -> dict[str, list[int]]:
    """User 1 gets: private messages to and from it, group 1 (member) and group 2 (not)."""
    now = "2024-01-01T00:00:00Z"
    c.executemany("INSERT INTO users (id, username, created_at) VALUES (?, ?, ?)",
                  [(u, f"u{u}", now) for u in (1, 2, 3)])
    c.executemany("INSERT INTO groups (id, name, owner_id, created_at) VALUES (?, ?, 2, ?)",
                  [(1, "mine", now), (2, "other", now)])
    c.executemany("INSERT INTO group_members (group_id, user_id, status, invited_by,"
                  " created_at) VALUES (?, ?, 'accepted', 2, ?)", [(1, 1, now), (1, 2, now),
                                                                    (2, 2, now)])
    alloc = IdAllocator()
    seen: dict[str, list[int]] = {"visible": [], "hidden": [], "notes": [], "others": []}

    def message(kind: str, sender: int, to: int | None, group: int | None, text: str,
                visible: bool) -> None:
        mid = alloc.next()
        store.insert_batch(c, [MessageRecord(id=mid, kind=kind, sender_id=sender,
                                             recipient_id=to, group_id=group, content=text,
                                             created_at=id_to_iso(mid))], [])
        seen["visible" if visible else "hidden"].append(mid)

    for i in range(3):
        message("private", 2, 1, None, "é" * (i + 1), True)  # 2, 4, 6 bytes
        message("private", 1, 3, None, "to three", True)
        message("group", 2, None, 1, "in my group", True)
        message("group", 2, None, 2, "not my group", False)
        message("private", 2, 3, None, "between others", False)
        for user, key in ((1, "notes"), (2, "others")):
            nid = alloc.next()
            store.insert_batch(c, [], [NotificationRecord(
                id=nid, user_id=user, subtype="s", message="héllo", created_at=id_to_iso(nid),
                payload={"k": 1})])
            seen[key].append(nid)
    c.commit()
    return seen


def test_replay_sizes_gives_byte_sizes_newest_first_and_at_most_limit_plus_one(
    conn: sqlite3.Connection,
) -> None:
    seen = _seed(conn)
    msgs, notes = store.replay_sizes(conn, 1, since=0, since_notification=0, limit=100)
    assert [i for i, _ in msgs] == sorted(seen["visible"], reverse=True)
    sizes = dict(msgs)
    first_private = seen["visible"][0]
    assert sizes[first_private] == 2  # "é": two UTF-8 bytes, one character
    assert sizes[seen["visible"][1]] == len("to three")
    assert notes == [(n, len("héllo".encode()) + len('{"k": 1}'))
                     for n in reversed(seen["notes"])]
    msgs, notes = store.replay_sizes(conn, 1, since=0, since_notification=None, limit=3)
    assert [i for i, _ in msgs] == sorted(seen["visible"], reverse=True)[:4] and notes == []
    since = seen["visible"][-2]
    msgs, _ = store.replay_sizes(conn, 1, since=since, since_notification=None, limit=10)
    assert [i for i, _ in msgs] == [seen["visible"][-1]]


def test_replay_sizes_reads_no_content_and_walks_the_indexes(conn: sqlite3.Connection) -> None:
    _seed(conn)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        store.replay_sizes(conn, 1, since=0, since_notification=0, limit=10)
    finally:
        conn.set_trace_callback(None)
    assert len(statements) == 2
    for sql in statements:
        selected = sql.split(" FROM ", 1)[0]
        assert "content" not in selected.replace("CAST(content AS BLOB)", "")
        plan = " | ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN messages" not in plan and "SCAN notifications" not in plan, plan
    plan = " | ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {statements[0]}"))
    for index in ("conversations_by_recency", "messages_by_pair", "messages_by_group"):
        assert index in plan, plan
    # every walk is bounded: the conversations, each one's messages, the private branch, the
    # group branch, the union
    assert statements[0].count("LIMIT") == 5
    # the one temporary b-tree per step sorts what the bounded walks returned: no walk sorts
    # (a walk that had to sort would read every row after the cursor first)
    assert "SCAN conversations" not in plan, plan


def test_replay_page_reads_the_ids_asked_in_order_and_only_what_the_user_may_see(
    conn: sqlite3.Connection,
) -> None:
    seen = _seed(conn)
    asked = [seen["visible"][4], seen["hidden"][0], seen["visible"][1], 999_999]
    notes_asked = [seen["notes"][2], seen["others"][0], seen["notes"][0]]
    msgs, notes = store.replay_page(conn, 1, asked, notes_asked)
    assert [m.id for m in msgs] == sorted([seen["visible"][1], seen["visible"][4]])
    assert msgs[0].content == "to three"
    assert [n.id for n in notes] == [seen["notes"][0], seen["notes"][2]]
    assert notes[0].payload == {"k": 1} and notes[0].user_id == 1
    assert store.replay_page(conn, 1, [], []) == ([], [])
