"""Frame decoding and encoding (pure)."""

from __future__ import annotations

import json

import pytest

from trionet.core import protocol
from trionet.core.errors import ErrorCode, FrameError
from trionet.realtime.ext_typing import DEFAULT_TYPES
from trionet.realtime.messagetypes import GroupIn, MessageTypes, NotificationIn, PrivateIn

#: the registry every app starts from (the codec takes it as a parameter)
TYPES = MessageTypes(DEFAULT_TYPES)


def decode(raw: str | bytes, limit: int = 100) -> protocol.ClientFrame:
    return protocol.decode_client_frame(raw, max_content_chars=limit, types=TYPES)


def code_of(raw: str | bytes, limit: int = 100) -> tuple[str, str | None, str]:
    with pytest.raises(FrameError) as info:
        decode(raw, limit)
    return info.value.code, info.value.client_id, info.value.message


def test_private_frame_decodes() -> None:
    frame = decode('{"type":"private","to":5,"content":"hi","client_id":"c"}')
    assert isinstance(frame, PrivateIn)
    assert (frame.to, frame.content, frame.client_id) == (5, "hi", "c")


@pytest.mark.parametrize("gid", ['"456"', "456"])
def test_group_id_as_string_or_int(gid: str) -> None:
    frame = decode('{"type":"group","group_id":' + gid + ',"content":"x"}')
    assert isinstance(frame, GroupIn) and int(frame.group_id) == 456


def test_invalid_json() -> None:
    assert code_of("{nope")[0] == ErrorCode.INVALID_JSON


def test_unknown_type() -> None:
    assert code_of('{"type":"teleport","client_id":"k"}')[:2] == (ErrorCode.UNKNOWN_TYPE, "k")


def test_wrong_field_type_names_the_field() -> None:
    code, cid, message = code_of('{"type":"private","to":"bob","content":"x","client_id":"z"}')
    assert code == ErrorCode.INVALID_MESSAGE and cid == "z" and "$.to" in message


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"private","content":"x"}',
        '{"type":"private","to":1,"content":""}',
        '{"type":"private","to":0,"content":"x"}',
        '{"type":"private","to":9007199254740993,"content":"x"}',
        '{"type":"private","to":1,"content":"x","extra":1}',
        '{"type":"group","group_id":"abc","content":"x"}',
        '{"type":"group","group_id":"-1","content":"x"}',
        '{"content":"x"}',
        "[1,2]",
        '"text"',
        '{"type":"private","to":1,"content":"x","client_id":"' + "c" * 65 + '"}',
    ],
)
def test_invalid_messages_are_refused(raw: str) -> None:
    assert code_of(raw)[0] in (ErrorCode.INVALID_MESSAGE, ErrorCode.UNKNOWN_TYPE)


def test_content_over_limit_is_too_large() -> None:
    raw = json.dumps({"type": "private", "to": 1, "content": "x" * 101, "client_id": "q"})
    assert code_of(raw, limit=100)[:2] == (ErrorCode.TOO_LARGE, "q")
    assert isinstance(decode(json.dumps({"type": "private", "to": 1, "content": "x" * 100})),
                      PrivateIn)


def test_client_notification_decodes_so_it_can_be_refused() -> None:
    frame = decode('{"type":"notification","subtype":"x","message":"y"}')
    assert isinstance(frame, NotificationIn)


def test_error_and_ack_frames() -> None:
    assert json.loads(protocol.encode_error("forbidden", "no", "c1")) == {
        "type": "error", "code": "forbidden", "message": "no", "client_id": "c1"}
    assert json.loads(protocol.encode_ack("c1", 7, "t", True)) == {
        "type": "ack", "client_id": "c1", "id": 7, "timestamp": "t", "persisted": True}


def test_deep_nesting_is_refused_cleanly() -> None:
    for raw in ("[" * 5000 + "]" * 5000, '{"type":"private","to":1,"content":'
                + "[" * 5000 + "]" * 5000 + "}"):
        assert code_of(raw)[0] in (ErrorCode.INVALID_MESSAGE, ErrorCode.INVALID_JSON)
