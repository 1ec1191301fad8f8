"""Resume after reconnect: pure helpers to plan a replay, cut it into pages, and drop what
it already sent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

__all__ = ["ReplayItem", "frame_id", "looked_back", "plan_replay", "replay_pages"]

#: ids keep the allocation's millisecond above this many bits (trionet.core.ids)
_MS_SHIFT = 12


def looked_back(since: int | None, seconds: float) -> int | None:
    """The cursor a replay starts from for a client's ``since``: ``seconds`` earlier.

    Several nodes allocate ids each by their own clock and commit them each at their own
    pace, so a message with a smaller id than the newest one a client saw may still have
    been committing elsewhere when that client disconnected; a replay from ``since`` itself
    would skip it for ever. Replaying from a little earlier covers it (the client drops the
    ids it holds already)."""
    if since is None or seconds <= 0:
        return since
    return max(0, since - (int(seconds * 1000) << _MS_SHIFT))


class ReplayItem(NamedTuple):
    """One stored record of a replay plan: its id, its size in bytes, and which kind it is."""

    id: int
    size: int
    notification: bool


def plan_replay(
    message_sizes: Iterable[tuple[int, int]],
    notification_sizes: Iterable[tuple[int, int]],
    limit: int,
    max_bytes: int,
    *,
    since: int = 0,
    since_notification: int | None = None,
) -> tuple[list[ReplayItem], int | None]:
    """What to replay, in id order, from the ``(id, size)`` of the candidates (as
    ``MessagePersister.replay_sizes`` returns them), and the ``from_id`` of a ``sync_gap``
    when older ones were left out (None when nothing was).

    The newest records are kept while they fit both ``limit`` (a count) and ``max_bytes``
    (their summed sizes; 0 for no byte bound). The newest one is always kept, whatever its
    size, so a replay that leaves something out still names the id it starts from.

    Candidates at or below the client's cursors ``since`` / ``since_notification`` come
    from a look-back (:func:`looked_back`): they never count toward the bounds nor make a
    gap; they are replayed (first) only when nothing newer was left out.
    """
    note_cursor = since if since_notification is None else since_notification
    candidates = [ReplayItem(i, size, False) for i, size in message_sizes]
    candidates += [ReplayItem(i, size, True) for i, size in notification_sizes]
    back = [c for c in candidates if c.id <= (note_cursor if c.notification else since)]
    if back:
        fresh = [c for c in candidates if c.id > (note_cursor if c.notification else since)]
        planned, gap_from = plan_replay([(c.id, c.size) for c in fresh if not c.notification],
                                        [(c.id, c.size) for c in fresh if c.notification],
                                        limit, max_bytes)
        if gap_from is None:
            planned = sorted(back, key=lambda item: item.id) + planned
        return planned, gap_from
    candidates.sort(key=lambda item: item.id, reverse=True)
    window: list[ReplayItem] = []
    total = 0
    for item in candidates:
        if len(window) >= limit or (max_bytes and window and total + item.size > max_bytes):
            break
        total += item.size
        window.append(item)
    window.reverse()
    gap = len(window) < len(candidates)
    return window, (window[0].id if gap and window else None)


def replay_pages(
    window: Sequence[ReplayItem], rows: int, max_bytes: int
) -> Iterator[list[ReplayItem]]:
    """``window`` cut, in order, into pages of at most ``rows`` records and ``max_bytes`` of
    summed sizes (a record larger than that gets a page of its own)."""
    page: list[ReplayItem] = []
    size = 0
    for item in window:
        if page and (len(page) >= rows or size + item.size > max_bytes):
            yield page
            page, size = [], 0
        page.append(item)
        size += item.size
    if page:
        yield page


_TYPE_START = b'{"type":"'
_ID_KEY = b',"id":'


def frame_id(data: bytes) -> int | None:
    """The ``id`` of an encoded server frame, read without decoding the JSON.

    Frames that carry one are encoded ``{"type":"...","id":<digits>,...}``: the ``id`` key
    right after the type, however long the type's name. A frame whose second key is not
    ``id`` (an ``ack``, an ``error``, a ``presence``) has none.
    """
    if not data.startswith(_TYPE_START):
        return None
    end = len(_TYPE_START)
    while True:  # the type's closing quote: the first one not escaped by a backslash
        end = data.find(b'"', end)
        if end < 0:
            return None
        backslashes = 0
        while data[end - 1 - backslashes] == 0x5C:  # stops at the opening quote at the latest
            backslashes += 1
        if backslashes % 2 == 0:
            break
        end += 1
    start = end + 1
    if not data.startswith(_ID_KEY, start):
        return None
    start += len(_ID_KEY)
    stop, n = start, len(data)
    while stop < n and 48 <= data[stop] <= 57:
        stop += 1
    return int(data[start:stop]) if stop > start else None
