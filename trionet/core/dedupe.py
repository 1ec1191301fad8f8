"""Idempotent resend: what is remembered of recent sends that carried a ``client_id``.

A :class:`Receipt` holds what a resend needs and nothing more: a 16-byte fingerprint of the
frame (to tell a resend from a different frame under a reused ``client_id``) and, once the
commit's outcome is known, the id, time and ``persisted`` flag of the original ack. Until then
it points at the send in flight (a :class:`Sending`: the committer's
:class:`~trionet.realtime.committer.Pending`), so a resend can wait for it; :meth:`Receipt.settle`
drops that reference (and the message's content with it).

:class:`RecentSends` keeps receipts by (sender id, client id), bounded by count overall, by
count per sender, and by age. What falls out is still caught when the copy reaches the
database (its unique index on sender and ``client_id``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar

from ..interfaces import MessageRecord

__all__ = ["RESEND_MEMORY_SECONDS", "Receipt", "RecentSends", "Sending", "fingerprint",
           "record_fingerprint", "reused_message"]

#: how long a ``client_id`` is remembered in memory
RESEND_MEMORY_SECONDS = 600.0


def reused_message(client_id: str) -> str:
    """The text of the ``client_id_reused`` error."""
    return (f"client_id {client_id!r} was used for a different message; a resend must repeat"
            " the frame exactly, and a new message needs a new client_id")


def fingerprint(kind: str, recipient_id: int | None, group_id: int | None,
                subtype: str | None, content: str) -> bytes:
    """A digest of what makes two persisted frames the same message."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{kind}\0{recipient_id}\0{group_id}\0{subtype}\0".encode())
    digest.update(content.encode("utf-8", "surrogatepass"))
    return digest.digest()


def record_fingerprint(record: MessageRecord) -> bytes:
    """:func:`fingerprint` of a stored (or about to be stored) message."""
    return fingerprint(record.kind, record.recipient_id, record.group_id, record.subtype,
                       record.content)


class Sending(Protocol):
    """What a receipt reads of its send once the commit's outcome is known."""

    @property
    def message(self) -> MessageRecord | None: ...

    @property
    def persisted(self) -> bool: ...

    @property
    def duplicate_of(self) -> tuple[int, str] | None: ...

    @property
    def reused(self) -> bool: ...


#: the send a receipt points at while it is in flight (the committer's ``Pending``)
S = TypeVar("S", bound=Sending)


class Receipt(Generic[S]):
    """One accepted send with a ``client_id``: its fingerprint and its ack."""

    __slots__ = ("fingerprint", "pending", "id", "created_at", "persisted", "reused", "at")

    def __init__(self, fp: bytes, pending: S | None, at: float) -> None:
        self.fingerprint = fp
        self.pending = pending
        self.id = 0
        self.created_at = ""
        self.persisted = False
        #: the frame was refused as a reuse of a stored message's ``client_id``: this
        #: receipt answers nothing (the stored message is the one a resend must match)
        self.reused = False
        self.at = at

    @property
    def settled(self) -> bool:
        return self.pending is None

    def settle(self, pending: S) -> None:
        """Keep the outcome of ``pending`` (called once it is delivered) and let it go."""
        if pending.duplicate_of is not None:
            self.id, self.created_at = pending.duplicate_of
            self.persisted = True
        elif pending.message is not None:
            self.id, self.created_at = pending.message.id, pending.message.created_at
            self.persisted = pending.persisted
        self.reused = pending.reused
        self.pending = None


class RecentSends(Generic[S]):
    """Receipts by (sender id, client id): at most ``size`` in all, ``per_user`` per sender,
    none older than ``max_age`` seconds (the caller passes the clock)."""

    def __init__(self, size: int = 50_000, *, per_user: int = 1_000,
                 max_age: float = RESEND_MEMORY_SECONDS) -> None:
        self._size = size
        self._per_user = per_user
        self._max_age = max_age
        #: in insertion order, which is also age order
        self._items: OrderedDict[tuple[int, str], Receipt[S]] = OrderedDict()
        self._by_user: dict[int, deque[str]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sender_id: int, client_id: str, now: float) -> Receipt[S] | None:
        found = self._items.get((sender_id, client_id))
        if found is None or now - found.at > self._max_age:
            return None
        return found

    def add(self, sender_id: int, client_id: str, receipt: Receipt[S]) -> None:
        key = (sender_id, client_id)
        if key in self._items:
            self._drop(key)
        self._expire(receipt.at)
        self._items[key] = receipt
        mine = self._by_user.setdefault(sender_id, deque())
        mine.append(client_id)
        if len(mine) > self._per_user:
            self._drop((sender_id, mine[0]))
        while len(self._items) > self._size:
            self._drop(next(iter(self._items)))

    def _expire(self, now: float) -> None:
        items = self._items
        while items:
            key, oldest = next(iter(items.items()))
            if now - oldest.at <= self._max_age:
                return
            self._drop(key)

    def _drop(self, key: tuple[int, str]) -> None:
        del self._items[key]
        mine = self._by_user[key[0]]
        if mine[0] == key[1]:
            mine.popleft()
        else:  # re-added before it aged out: rare
            mine.remove(key[1])
        if not mine:
            del self._by_user[key[0]]
