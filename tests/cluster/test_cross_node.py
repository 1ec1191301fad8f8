"""Two nodes on one database and one Redis act as one server: every kind of frame crosses."""

from __future__ import annotations

from typing import Any

import trio

from trionet.testing import TestServer, TestUser, running_cluster


async def test_a_private_message_reaches_a_user_on_another_node_once() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        with trio.fail_after(20):
            async with one.connect(alice) as wa, two.connect(bob) as wb:
                await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                "content": "across", "client_id": "c1"})
                got = await TestServer.receive_json(wb)
                ack = await TestServer.receive_json(wa)
                assert got["content"] == "across" and got["from"] == alice.id
                assert ack["type"] == "ack" and ack["id"] == got["id"]
                with trio.move_on_after(0.5):
                    extra = await TestServer.receive_json(wb)
                    raise AssertionError(f"delivered twice: {extra}")


async def quiet(ws: object, seconds: float = 0.3) -> None:
    """Nothing more arrives on ``ws`` (presence aside) for ``seconds``."""
    with trio.move_on_after(seconds):
        extra = await TestServer.receive_json(ws)  # type: ignore[arg-type]
        raise AssertionError(f"unexpected frame: {extra}")


async def test_a_group_message_reaches_every_tab_on_every_node_but_the_sending_one() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob, carol = [await one.create_user(n) for n in ("alice", "bob", "carol")]
        gid = await one.create_group("g", alice, [bob, carol])
        with trio.fail_after(20):
            async with one.connect(alice) as a1, two.connect(alice) as a2, \
                    two.connect(bob) as b2, one.connect(bob) as b1, two.connect(carol) as c2:
                await TestServer.send_json(a1, {"type": "group", "group_id": gid,
                                                "content": "hello all", "client_id": "g1"})
                for ws in (a2, b2, b1, c2):
                    got = await TestServer.receive_json(ws)
                    assert got["type"] == "group" and got["content"] == "hello all"
                ack = await TestServer.receive_json(a1)
                assert ack["type"] == "ack" and ack["id"] == got["id"]
                for ws in (a1, a2, b2, b1, c2):
                    await quiet(ws, 0.2)


async def test_broadcast_notify_and_typing_cross_nodes() -> None:
    from trionet.settings import Settings

    key = "k" * 32
    async with running_cluster(2, Settings(rate_limit=0, api_key=key)) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        auth = {"Authorization": f"Bearer {key}"}
        with trio.fail_after(20):
            async with one.connect(alice) as wa, two.connect(bob) as wb, one.http() as http:
                r = await http.post("/api/server/notify", headers=auth, json={
                    "user_ids": [bob.id], "subtype": "like", "message": "alice liked it"})
                assert r.status_code == 201, r.text
                note = await TestServer.receive_json(wb)
                assert note["type"] == "notification" and note["message"] == "alice liked it"
                r = await http.post("/api/server/broadcast", headers=auth,
                                    json={"content": "maintenance at noon"})
                assert r.status_code == 200, r.text
                for ws in (wa, wb):
                    got = await TestServer.receive_json(ws)
                    assert got["type"] == "broadcast" and got["content"] == "maintenance at noon"
                await TestServer.send_json(wb, {"type": "typing", "to": alice.id})
                typing = await TestServer.receive_json(wa)
                assert typing["type"] == "typing" and typing["from"] == bob.id


async def test_presence_is_cluster_wide_first_tab_anywhere_and_last_tab_anywhere() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        gid = await one.create_group("g", alice, [bob])
        assert gid
        with trio.fail_after(20):
            async with one.connect(alice) as wa, one.http(alice) as http_one, \
                    two.http(alice) as http_two:
                async def online() -> list[bool]:
                    out = []
                    for http in (http_one, http_two):
                        body = (await http.get("/api/users/online",
                                               params={"ids": str(bob.id)})).json()
                        out.append(body["online"][str(bob.id)])
                    return out

                assert await online() == [False, False]
                async with two.connect(bob):
                    got = await TestServer.receive_json(wa, ignore=())
                    assert got == {**got, "type": "presence", "user_id": bob.id, "online": True}
                    while await online() != [True, True]:
                        await trio.sleep(0.02)
                    async with one.connect(bob):  # a second tab, on the other node: silent
                        await quiet(wa)
                    await quiet(wa)  # ... and so is its closing while another tab is open
                got = await TestServer.receive_json(wa, ignore=())
                assert got == {**got, "type": "presence", "user_id": bob.id, "online": False}
                while await online() != [False, False]:
                    await trio.sleep(0.02)


async def test_logout_on_one_node_closes_the_sessions_sockets_on_every_node() -> None:
    from trio_websocket import ConnectionClosed

    async with running_cluster(2) as (one, two):
        alice = await one.create_user("alice")
        with trio.fail_after(20):
            async with one.connect(alice) as w1, two.connect(alice) as w2, \
                    one.http(alice) as http:
                assert (await http.post("/api/auth/logout")).status_code == 200
                for ws in (w1, w2):
                    try:
                        while True:
                            await ws.get_message()
                    except ConnectionClosed as closed:
                        assert closed.reason.code == 4001


async def test_an_accepted_invite_on_one_node_changes_group_routing_on_the_other() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        gid = await one.create_group("g", alice)
        with trio.fail_after(20):
            async with two.connect(alice) as wa, one.connect(bob) as wb, \
                    one.http(alice) as alice_http, one.http(bob) as bob_http:
                # node two routes the group once: its member list is cached there now
                await TestServer.send_json(wa, {"type": "group", "group_id": gid,
                                                "content": "before", "client_id": "b"})
                assert (await TestServer.receive_json(wa))["type"] == "ack"
                r = await alice_http.post("/api/groups/invite",
                                          json={"group_id": gid, "user_id": bob.id})
                assert r.status_code == 201, r.text
                assert (await TestServer.receive_json(wb))["subtype"] == "group_invite"
                assert (await bob_http.post(f"/api/groups/{gid}/accept")).status_code == 200
                await trio.sleep(0.1)  # the invalidation crosses Redis (milliseconds)
                await TestServer.send_json(wa, {"type": "group", "group_id": gid,
                                                "content": "after", "client_id": "a"})
                got = await TestServer.receive_json(wb)
                assert got["type"] == "group" and got["content"] == "after"


async def test_failed_logins_spread_over_nodes_count_together() -> None:
    from trionet.auth import LOGIN_FAILURES_PER_USER_AND_ADDRESS as LIMIT

    async with running_cluster(2) as (one, two):
        alice = await one.create_user("alice")
        with trio.fail_after(60):
            async with one.http() as h1, two.http() as h2:
                wrong = {"username": "alice", "password": "not-her-password"}
                codes = [(await (h1 if n % 2 else h2).post("/api/auth/login", json=wrong))
                         .status_code for n in range(LIMIT)]
                assert codes == [401] * LIMIT
                for http in (h1, h2):  # the pair is locked on every node now
                    r = await http.post("/api/auth/login", json=wrong)
                    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
                right = {"username": "alice", "password": alice.password}
                assert (await h1.post("/api/auth/login", json=right)).status_code == 429


async def test_a_resend_to_another_node_gets_the_original_ack_and_is_not_stored_twice() -> None:
    from api_helpers import stored_rows

    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        frame = {"type": "private", "to": bob.id, "content": "once", "client_id": "r1"}
        with trio.fail_after(20):
            async with two.connect(bob) as wb:
                async with one.connect(alice) as wa:
                    await TestServer.send_json(wa, frame)
                    first = await TestServer.receive_json(wa)
                assert (await TestServer.receive_json(wb))["id"] == first["id"]
                # the ack was lost, say: alice resends it through the other node, resuming
                for query in (f"since={first['id']}", ""):
                    async with two.connect(alice, query=query) as wa2:
                        await TestServer.send_json(wa2, frame)
                        # (a resume replays the message itself first, from the look-back)
                        again = await TestServer.receive_json(
                            wa2, ignore=("presence", "synced", "private"))
                        assert again == first
                await quiet(wb)
        rows = await stored_rows(one, "SELECT id FROM messages WHERE client_id = 'r1'")
        assert len(rows) == 1


async def test_a_node_stopping_right_after_an_ack_still_delivers_to_the_other_nodes() -> None:
    from faults import CuttableProxy

    from trionet.settings import Settings

    async with trio.open_nursery() as nursery:
        # node one's Redis is 0.3 s away: its acks come long before its publishes land
        proxy = CuttableProxy(nursery, 6379, delay=0.3)
        await proxy.start()
        slow = {"redis_url": f"redis://127.0.0.1:{proxy.port}/0"}
        async with running_cluster(2, Settings(rate_limit=0), per_node=[slow]) as (one, two):
            await _stop_after_acks(one, two)
        nursery.cancel_scope.cancel()


async def _stop_after_acks(one: TestServer, two: TestServer) -> None:
    alice, bob = await one.create_user("alice"), await one.create_user("bob")
    with trio.fail_after(20):
        async with two.connect(bob) as wb:
            async with one.connect(alice) as wa:
                for n in range(20):
                    await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                    "content": f"m{n}",
                                                    "client_id": f"c{n}"})
                acks = [await TestServer.receive_json(wa) for _ in range(20)]
                assert all(a["type"] == "ack" for a in acks)
                await one.stop()  # a graceful stop sends what waits for Redis first
            got = [(await TestServer.receive_json(wb))["content"] for _ in range(20)]
            assert got == [f"m{n}" for n in range(20)]


async def test_the_server_api_replacing_members_on_one_node_reroutes_the_other() -> None:
    from trionet.settings import Settings

    key = "k" * 32
    auth = {"Authorization": f"Bearer {key}"}
    async with running_cluster(2, Settings(rate_limit=0, api_key=key)) as (one, two):
        alice, bob, carol = [await one.create_user(n) for n in ("alice", "bob", "carol")]
        gid = 77
        with trio.fail_after(20):
            async with two.connect(alice) as wa, one.connect(bob) as wb, \
                    one.connect(carol) as wc, one.http() as http:
                async def members(*users: TestUser) -> None:
                    body = {"name": "g", "members": [{"user_id": u.id, "status": "accepted"}
                                                     for u in users]}
                    r = await http.put(f"/api/server/groups/{gid}", headers=auth, json=body)
                    assert r.status_code in (200, 201), r.text
                    await trio.sleep(0.1)  # the invalidation crosses Redis (milliseconds)

                async def say(text: str) -> None:
                    await TestServer.send_json(wa, {"type": "group", "group_id": gid,
                                                    "content": text, "client_id": text})
                    assert (await TestServer.receive_json(wa))["type"] == "ack"

                await members(alice, bob)
                await say("one")  # node two caches alice and bob as the members
                assert (await TestServer.receive_json(wb))["content"] == "one"
                await members(alice, carol)  # bob out, carol in, on node one
                await say("two")
                assert (await TestServer.receive_json(wc))["content"] == "two"
                await quiet(wb)  # bob is out: nothing reaches him any more


async def test_a_connection_opens_only_once_every_node_can_reach_it() -> None:
    """The handshake is answered once this node's hold on the user is recorded in Redis, so
    a message sent right after the client sees its socket open reaches it from another node.
    Here recording the hold takes 0.5 s; the socket used to open at once, and the message,
    routed before the hold was recorded, reached no node."""
    async with running_cluster(2) as (one, two), trio.open_nursery() as nursery:
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        backplane: Any = two.services.backplane
        put = backplane._put

        async def later(op: Any) -> None:
            await trio.sleep(0.5)
            put(op)

        def slow_join(op: Any) -> None:
            if op.kind == "join":
                nursery.start_soon(later, op)
            else:
                put(op)

        backplane._put = slow_join
        with trio.fail_after(20):
            async with one.connect(alice) as wa:
                opened = trio.current_time()
                async with two.connect(bob) as wb:
                    assert trio.current_time() - opened >= 0.5
                    await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                    "content": "right away"})
                    got = await TestServer.receive_json(wb)
                    assert got["content"] == "right away"
        nursery.cancel_scope.cancel()


async def test_a_read_on_one_node_reaches_the_peer_and_the_readers_tabs_on_the_other() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        with trio.fail_after(20):
            async with one.connect(alice) as wa, two.connect(bob) as b2, \
                    one.connect(bob) as b1:
                await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                "content": "read me", "client_id": "m"})
                mid = (await TestServer.receive_json(b2))["id"]
                await TestServer.receive_json(b1)
                await TestServer.receive_json(wa)  # the ack
                await TestServer.send_json(b2, {"type": "read", "to": alice.id, "up_to": mid,
                                                "client_id": "r"})
                ack = await TestServer.receive_json(b2)
                assert ack["type"] == "ack" and ack["last_read_id"] == mid
                receipt = {"type": "read", "from": bob.id, "to": alice.id, "up_to": mid,
                           "timestamp": ack["timestamp"]}
                assert await TestServer.receive_json(wa) == receipt
                assert await TestServer.receive_json(b1) == receipt
                for ws in (wa, b1, b2):
                    await quiet(ws, 0.2)
            async with two.http(alice) as client:
                (item,) = (await client.get("/api/conversations")).json()["conversations"]
                assert item["peer_read_id"] == mid and item["unread_count"] == 0


async def test_an_edit_and_a_delete_on_one_node_reach_the_other() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob, carol = [await one.create_user(n) for n in ("alice", "bob", "carol")]
        gid = await one.create_group("g", alice, [bob, carol])
        with trio.fail_after(20):
            async with one.connect(alice) as a1, two.connect(alice) as a2, \
                    two.connect(bob) as b2, one.connect(carol) as c1:
                await TestServer.send_json(a1, {"type": "group", "group_id": gid,
                                                "content": "draft", "client_id": "g"})
                for ws in (a2, b2, c1):
                    mid = (await TestServer.receive_json(ws))["id"]
                await TestServer.receive_json(a1)  # the ack
                await TestServer.send_json(a1, {"type": "edit", "id": mid, "content": "final",
                                                "client_id": "e"})
                for ws in (a2, b2, c1):
                    got = await TestServer.receive_json(ws)
                    assert (got["type"], got["id"], got["content"]) == ("edited", mid, "final")
                assert (await TestServer.receive_json(a1))["type"] == "ack"
                await TestServer.send_json(b2, {"type": "delete", "id": mid, "client_id": "d"})
                assert (await TestServer.receive_json(b2))["code"] == "forbidden"
                await TestServer.send_json(a2, {"type": "delete", "id": mid, "client_id": "d"})
                for ws in (a1, b2, c1):
                    got = await TestServer.receive_json(ws)
                    assert (got["type"], got["id"]) == ("deleted", mid)
                assert (await TestServer.receive_json(a2))["type"] == "ack"
                for ws in (a1, a2, b2, c1):
                    await quiet(ws, 0.2)


async def test_a_block_on_one_node_refuses_messages_on_the_other_at_once() -> None:
    async with running_cluster(2) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        with trio.fail_after(20):
            async with one.connect(alice) as wa, two.connect(bob) as wb:
                for i in range(2):  # bob's node caches that nobody blocks bob
                    await TestServer.send_json(wb, {"type": "private", "to": alice.id,
                                                    "content": "hi", "client_id": f"m{i}"})
                    assert (await TestServer.receive_json(wb))["type"] == "ack"
                    await TestServer.receive_json(wa)
                async with one.http(alice) as client:
                    assert (await client.post(f"/api/users/{bob.id}/block")).status_code == 201
                with trio.fail_after(5):  # the other node forgets its cache at once
                    while True:
                        await TestServer.send_json(wb, {"type": "private", "to": alice.id,
                                                        "content": "x", "client_id": "x"})
                        got = await TestServer.receive_json(wb)
                        if got["type"] == "error":
                            break
                        await trio.sleep(0.05)
                assert got["code"] == "blocked"


async def test_an_account_deleted_on_one_node_is_gone_on_the_other() -> None:
    from trionet.settings import Settings

    key = "k" * 32
    async with running_cluster(2, Settings(rate_limit=0, api_key=key)) as (one, two):
        alice, bob = await one.create_user("alice"), await one.create_user("bob")
        with trio.fail_after(20):
            async with two.connect(alice) as wa, two.connect(bob) as wb:
                await TestServer.send_json(wb, {"type": "private", "to": alice.id,
                                                "content": "hi", "client_id": "1"})
                assert (await TestServer.receive_json(wb))["type"] == "ack"  # two knows alice
                await TestServer.receive_json(wa)
                async with one.http() as client:
                    r = await client.delete(f"/api/server/users/{alice.id}",
                                            headers={"Authorization": f"Bearer {key}"})
                    assert r.status_code == 200 and r.json()["connections_closed"] == 0
                with trio.fail_after(5):
                    try:
                        while True:
                            await wa.get_message()
                    except Exception as exc:  # closed by node two
                        assert getattr(getattr(exc, "reason", None), "code", None) == 4001
                await TestServer.send_json(wb, {"type": "private", "to": alice.id,
                                                "content": "?", "client_id": "2"})
                assert (await TestServer.receive_json(wb))["code"] == "unknown_user"


async def test_webhooks_tell_presence_once_for_the_cluster_and_each_event_once() -> None:
    from webhook_helpers import SECRET, Receiver

    from trionet.settings import Settings

    hook = Receiver()
    try:
        settings = Settings(rate_limit=0, webhook_url=hook.url, webhook_secret=SECRET)
        async with running_cluster(2, settings) as (one, two):
            alice, bob = await one.create_user("alice"), await one.create_user("bob")
            with trio.fail_after(30):
                async with one.connect(alice) as a1:
                    await hook.wait_for("user.online")
                    async with two.connect(alice):  # a second tab, on the other node
                        await TestServer.send_json(a1, {"type": "private", "to": bob.id,
                                                        "content": "bob is away",
                                                        "client_id": "m"})
                        (event,) = await hook.wait_for("message.offline")
                        assert event["data"]["offline_user_ids"] == [bob.id]
                    await trio.sleep(0.5)
                    assert not [e for e in hook.accepted() if e["type"] == "user.offline"]
                await hook.wait_for("user.offline")
                await trio.sleep(0.5)
        kinds = [e["type"] for e in hook.accepted()]
        assert sorted(kinds) == ["message.offline", "user.offline", "user.online"]
        ids = [e["id"] for e in hook.accepted()]
        assert len(ids) == len(set(ids))
    finally:
        hook.close()
