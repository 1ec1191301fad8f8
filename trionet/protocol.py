"""The WebSocket protocol as pure code: decode and validate client frames, encode server frames.

No I/O and no trio here; see ``docs/protocol.md`` for every frame.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .errors import ErrorCode, FrameError

__all__ = [
    "BroadcastIn",
    "ClientFrame",
    "GroupIn",
    "NotificationIn",
    "PingIn",
    "PrivateIn",
    "decode_client_frame",
    "encode",
    "encode_ack",
    "encode_error",
]

MAX_ID = 2**53 - 1
UserId = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Content = Annotated[str, msgspec.Meta(min_length=1)]


class _In(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class PrivateIn(_In, tag="private"):
    to: UserId
    content: Content
    client_id: ClientId | None = None


class GroupIn(_In, tag="group"):
    group_id: UserId | Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,15}$")]
    content: Content
    client_id: ClientId | None = None

    @property
    def group(self) -> int:
        return int(self.group_id)


class BroadcastIn(_In, tag="broadcast"):
    content: Content
    client_id: ClientId | None = None


class PingIn(_In, tag="ping"):
    client_id: ClientId | None = None


class NotificationIn(msgspec.Struct, tag_field="type", tag="notification"):
    """Accepted by the decoder only to be refused with ``forbidden``: notifications are
    server-originated."""

    client_id: Any = None


ClientFrame = PrivateIn | GroupIn | BroadcastIn | PingIn | NotificationIn

_decoder = msgspec.json.Decoder(ClientFrame)
_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _client_id_of(raw: str | bytes) -> str | None:
    try:
        obj = _loose.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(obj, dict):
        cid = obj.get("client_id")
        if isinstance(cid, str) and len(cid) <= 64:
            return cid
    return None


def decode_client_frame(raw: str | bytes, *, max_content_chars: int) -> ClientFrame:
    """Decode one text frame; raises :class:`FrameError` with the code to answer."""
    try:
        frame: ClientFrame = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        cid = _client_id_of(raw)
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
