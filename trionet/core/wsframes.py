"""Reading the WebSocket frames a client sends most (RFC 6455, 5.2), without I/O.

The connection's reader reads its socket itself once the handshake is done
(:mod:`trionet.realtime.reads`). :func:`parse` takes the bytes read and returns the messages in
them: every final, unfragmented text or binary frame, masked as a client's must be, with no
reserved bit set (no extension is negotiated) and no longer than the limit, and every ping. It
stops at the first frame of any other kind (a close, a pong's neighbour is fine: pongs are
skipped) and says so, and the caller hands the bytes from there on to the WebSocket library
that owns the connection (wsproto, under hypercorn), which answers a close, reassembles a
fragmented message, or closes the connection with the right code for a protocol error, a
message that is too big or text that is not UTF-8. That library never sees a byte of the
frames read here, so it always resumes at a frame boundary.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["HAND_BACK", "MORE", "NEED_DATA", "Ping", "parse", "pong_frame", "unmask"]

_U16: Final = struct.Struct("!H")
_U64: Final = struct.Struct("!Q")

#: :func:`parse` stopped at a frame it leaves to the library (a close, a fragment, a
#: protocol error, one over the limit, text that is not UTF-8)
HAND_BACK: Final = True
#: :func:`parse` stopped at a frame that is not complete yet
NEED_DATA: Final = False
#: :func:`parse` stopped after ``max_items`` items; the rest is parsed by the next call
MORE: Final = None

_TEXT, _BINARY, _PING, _PONG = 0x1, 0x2, 0x9, 0xA


class Ping(bytes):
    """A ping's payload (to be answered with a pong carrying it)."""

    __slots__ = ()


def unmask(payload: bytes | bytearray | memoryview, key: bytes | bytearray | memoryview) -> bytes:
    """``payload`` XOR the repeated 4-byte masking ``key``, as one big-integer XOR (C speed)."""
    n = len(payload)
    if n == 0:
        return b""
    key = bytes(key)
    mask = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little")


def parse(
    data: bytes | bytearray, limit: int, max_items: int = 64
) -> tuple[list[str | bytes], int, bool | None]:
    """The messages in ``data``, where parsing stopped, and why.

    Returns ``(items, offset, why)``: each item is a text message (``str``), a binary one
    (``bytes``) or a :class:`Ping`, in order, at most ``max_items`` of them; pongs are skipped.
    ``data[offset:]`` is what is left: with :data:`HAND_BACK` it begins with a whole or partial
    frame for the library, with :data:`NEED_DATA` with an incomplete frame or nothing, with
    :data:`MORE` with frames not parsed yet. ``limit`` is the largest payload a message may
    have.
    """
    items: list[str | bytes] = []
    pos = 0
    end = len(data)
    while True:
        if len(items) >= max_items and pos < end:
            return items, pos, MORE
        if end - pos < 2:
            return items, pos, NEED_DATA
        b0 = data[pos]
        b1 = data[pos + 1]
        opcode = b0 & 0x0F
        if b0 & 0xF0 != 0x80 or not b1 & 0x80 or opcode not in (_TEXT, _BINARY, _PING, _PONG):
            # a fragment, a reserved bit, an unmasked frame, a close or an unknown opcode
            return items, pos, HAND_BACK
        length = b1 & 0x7F
        head = pos + 2
        if length > 125 and opcode >= _PING:
            return items, pos, HAND_BACK  # a control frame's payload is at most 125 bytes
        if length == 126:
            if end - head < 2:
                return items, pos, NEED_DATA
            length = _U16.unpack_from(data, head)[0]
            head += 2
            if length < 126:
                return items, pos, HAND_BACK  # not the shortest encoding: wsproto's 1002
        elif length == 127:
            if end - head < 8:
                return items, pos, NEED_DATA
            length = _U64.unpack_from(data, head)[0]
            head += 8
            if length < 65536 or length >> 63:
                return items, pos, HAND_BACK  # not the shortest, or the top bit set
        if length > limit:
            return items, pos, HAND_BACK
        start = head + 4  # after the masking key
        stop = start + length
        if stop > end:
            return items, pos, NEED_DATA
        payload = unmask(memoryview(data)[start:stop], data[head:start])
        if opcode == _TEXT:
            try:
                items.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                return items, pos, HAND_BACK  # the library closes with 1007
        elif opcode == _BINARY:
            items.append(payload)
        elif opcode == _PING:
            items.append(Ping(payload))
        pos = stop


def pong_frame(payload: bytes) -> bytes:
    """The server's (unmasked) pong answering a ping with ``payload`` (at most 125 bytes)."""
    return bytes((0x8A, len(payload))) + payload
