"""The WebSocket protocol as pure code: decode and validate client frames, encode server frames.

No I/O and no trio here; see ``docs/protocol.md`` for every frame.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from .errors import ErrorCode, FrameError

__all__ = [
    "ClientFrame",
    "FrameTypes",
    "client_id_of",
    "decode_client_frame",
    "encode",
    "encode_ack",
    "encode_read_ack",
    "encode_error",
]

#: a decoded client frame: an instance of one of the registry's schemas
ClientFrame = Any


class FrameTypes(Protocol):
    """The message types a decoder accepts: what :func:`decode_client_frame` needs of a
    registry (:class:`trionet.realtime.messagetypes.MessageTypes` is one)."""

    @property
    def decoder(self) -> msgspec.json.Decoder[Any]:
        """A decoder of every accepted frame schema (a tagged union on ``type``)."""
        ...


_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def client_id_of(raw: str | bytes) -> str | None:
    """The ``client_id`` of a frame that may be invalid, or None (decodes the JSON)."""
    try:
        obj = _loose.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(obj, dict):
        cid = obj.get("client_id")
        if isinstance(cid, str) and len(cid) <= 64:
            return cid
    return None


def decode_client_frame(
    raw: str | bytes, *, max_content_chars: int, types: FrameTypes
) -> ClientFrame:
    """Decode one text frame against ``types`` (the app's registry of message types); raises
    :class:`FrameError` with the code to answer."""
    decoder = types.decoder
    try:
        frame: ClientFrame = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        cid = client_id_of(raw)
        if text.endswith("at `$.type`") and text.startswith("Invalid value"):
            raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown message type: {text}", cid) from None
        raise FrameError(ErrorCode.INVALID_MESSAGE, text, cid) from None
    except msgspec.DecodeError as exc:
        raise FrameError(ErrorCode.INVALID_JSON, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise FrameError(ErrorCode.INVALID_MESSAGE, "JSON nested too deeply") from None
    content = getattr(frame, "content", None)
    if content is not None and len(content) > max_content_chars:
        raise FrameError(
            ErrorCode.TOO_LARGE,
            f"content is {len(content)} characters; the limit is {max_content_chars}",
            frame.client_id,
        )
    return frame


def encode(frame: dict[str, Any]) -> bytes:
    """One server frame as UTF-8 JSON (what a text frame carries)."""
    return _encoder.encode(frame)


def encode_error(code: str, message: str, client_id: str | None = None) -> bytes:
    return encode({"type": "error", "code": code, "message": message, "client_id": client_id})


def encode_read_ack(client_id: str, timestamp: str, last_read_id: int,
                    unread_count: int) -> bytes:
    """The ack of a ``read`` frame: the marker after it and the messages still unread."""
    return encode({"type": "ack", "client_id": client_id, "id": None, "timestamp": timestamp,
                   "persisted": True, "last_read_id": last_read_id,
                   "unread_count": unread_count})


def encode_ack(client_id: str, id_: int | None, timestamp: str, persisted: bool) -> bytes:
    return encode(
        {
            "type": "ack",
            "client_id": client_id,
            "id": id_,
            "timestamp": timestamp,
            "persisted": persisted,
        }
    )
