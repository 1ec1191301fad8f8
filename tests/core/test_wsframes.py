"""The client-frame parser the connection's reader uses (plain functions, no I/O), checked
against frames wsproto's client writes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import XorMaskerSimple

from trionet.core import wsframes
from trionet.core.wsframes import HAND_BACK, MORE, NEED_DATA, parse, pong_frame, unmask

LIMIT = 64 * 1024


def client_bytes(*events: object) -> bytes:
    """What a wsproto client writes for ``events`` (masked, as every client's frames are)."""
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(e) for e in events)  # type: ignore[arg-type]


def masked(first: int, payload: bytes, key: bytes = b"\x11\x22\x33\x44") -> bytes:
    """One client frame with first byte ``first`` (FIN, RSV, opcode) around ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, 0x80 | 127)) + struct.pack("!Q", n)
    return head + key + unmask(payload, key)


@pytest.mark.parametrize("size", [0, 1, 5, 125, 126, 127, 65535, 65536])
def test_text_and_binary_messages_of_every_length_form(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    data = client_bytes(TextMessage(data=text), BytesMessage(data=b"\x00\xff" * (size // 2)))
    items, offset, why = parse(data, 10**6)
    assert items == [text, b"\x00\xff" * (size // 2)]
    assert type(items[1]) is bytes
    assert offset == len(data) and why is NEED_DATA


@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8),
       st.integers(1, 97))
def test_messages_split_anywhere_come_out_whole_and_in_order(
    messages: list[str | bytes], step: int
) -> None:
    data = client_bytes(*[TextMessage(data=m) if isinstance(m, str) else BytesMessage(data=m)
                          for m in messages])
    got: list[str | bytes] = []
    buffer = b""
    for i in range(0, len(data), step):  # arriving a few bytes at a time
        buffer += data[i:i + step]
        items, offset, why = parse(buffer, LIMIT)
        assert why is NEED_DATA
        got += items
        buffer = buffer[offset:]
    assert got == messages and buffer == b""


def test_pings_are_returned_and_pongs_skipped_in_order() -> None:
    data = client_bytes(TextMessage(data="a"), Ping(payload=b"hi"), Pong(payload=b"x"),
                        TextMessage(data="b"))
    items, offset, why = parse(data, LIMIT)
    assert items == ["a", b"hi", "b"]
    assert type(items[1]) is wsframes.Ping
    assert offset == len(data) and why is NEED_DATA


@pytest.mark.parametrize("name,frame", [
    ("close", client_bytes(CloseConnection(code=1000))),
    ("first fragment", client_bytes(Message(data="par", message_finished=False))),
    ("continuation", masked(0x80, b"tail")),
    ("reserved bit (a compressed frame)", masked(0xC1, b"x")),
    ("unmasked", bytes((0x81, 1)) + b"x"),
    ("unknown opcode", masked(0x83, b"x")),
    ("control frame over 125 bytes", masked(0x89, b"p" * 126)),
    ("text that is not UTF-8", masked(0x81, b"\xff\xfe")),
    ("a 16-bit length under 126", bytes((0x81, 0xFE)) + struct.pack("!H", 5) + b"\0" * 9),
    ("a 64-bit length under 65536", bytes((0x81, 0xFF)) + struct.pack("!Q", 5) + b"\0" * 9),
    ("a 64-bit length with its top bit", bytes((0x81, 0xFF)) + struct.pack("!Q", 1 << 63)),
    ("a ping whose length field says 126", bytes((0x89, 0xFE)) + struct.pack("!H", 3)),
])
def test_any_other_frame_is_handed_back_where_it_starts(name: str, frame: bytes) -> None:
    before = client_bytes(TextMessage(data="first"))
    data = before + frame + client_bytes(TextMessage(data="after"))
    items, offset, why = parse(data, LIMIT)
    assert items == ["first"], name
    assert offset == len(before) and why is HAND_BACK, name


def test_a_frame_over_the_limit_is_handed_back_from_its_header_alone() -> None:
    header = bytes((0x81, 0x80 | 127)) + struct.pack("!Q", LIMIT + 1) + b"\x00" * 4
    assert parse(header, LIMIT) == ([], 0, HAND_BACK)
    exactly = client_bytes(TextMessage(data="x" * LIMIT))
    assert parse(exactly, LIMIT) == (["x" * LIMIT], len(exactly), NEED_DATA)


def test_an_incomplete_header_or_payload_waits_for_more() -> None:
    data = client_bytes(TextMessage(data="x" * 300))
    for cut in (1, 2, 3, 5, 7, len(data) - 1):
        assert parse(data[:cut], LIMIT) == ([], 0, NEED_DATA)


@given(st.binary(max_size=600), st.binary(min_size=4, max_size=4))
def test_unmask_is_wsprotos_masking(payload: bytes, key: bytes) -> None:
    assert unmask(payload, key) == bytes(XorMaskerSimple(key).process(bytearray(payload)))


def test_the_pong_answers_with_the_pings_payload() -> None:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(pong_frame(b"payload"))
    assert [(type(e), e.payload) for e in client.events()] == [(Pong, b"payload")]


def test_at_most_max_items_come_from_one_call_and_the_next_goes_on() -> None:
    data = client_bytes(*[TextMessage(data=str(i)) for i in range(150)])
    got: list[str | bytes] = []
    calls = 0
    while data:
        items, offset, why = parse(data, LIMIT, max_items=64)
        calls += 1
        assert len(items) <= 64
        got += items
        data = data[offset:]
        assert why is (MORE if data else NEED_DATA)
    assert got == [str(i) for i in range(150)] and calls == 3
    exactly = client_bytes(*[TextMessage(data="x")] * 64)
    assert parse(exactly, LIMIT, max_items=64)[2] is NEED_DATA  # nothing left: not MORE
