import trio

async def test_private_roundtrip(server):
    alice = await server.create_user("alice")
    bob = await server.create_user("bob")
    with trio.fail_after(10):
        async with server.connect(bob) as wb, server.connect(alice) as wa:
            await server.send_json(wa, {"type": "private", "to": bob.id, "content": "hi", "client_id": "c1"})
            got = await server.receive_json(wb)
            ack = await server.receive_json(wa)
            print(got, ack)
            assert got["content"] == "hi"
            assert ack["type"] == "ack" and ack["persisted"] is True
