"""Resume after reconnect: pure helpers to order a replay and drop what it already sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .frames import message_frame, notification_frame
from .interfaces import MessageRecord, NotificationRecord

__all__ = ["frame_id", "plan_replay"]


def plan_replay(
    messages: Iterable[MessageRecord],
    notifications: Iterable[NotificationRecord],
    limit: int,
) -> tuple[list[tuple[int, dict[str, Any]]], int | None]:
    """Frames to replay in id order (the newest ``limit``), and the ``from_id`` of a
    ``sync_gap`` when older ones were left out (None when nothing was)."""
    frames = [(m.id, message_frame(m)) for m in messages]
    frames += [(n.id, notification_frame(n)) for n in notifications]
    frames.sort(key=lambda pair: pair[0])
    gap = len(frames) > limit
    if gap:
        frames = frames[-limit:]
    return frames, (frames[0][0] if gap and frames else None)


def frame_id(data: bytes) -> int | None:
    """The ``id`` of an encoded server frame, read without decoding the JSON.

    Frames that carry one are encoded ``{"type":"...","id":<digits>,...}``.
    """
    start = data.find(b',"id":', 8, 40)
    if start < 0:
        return None
    start += 6
    end = start
    while end < len(data) and 48 <= data[end] <= 57:
        end += 1
    return int(data[start:end]) if end > start else None
