"""Server-allocated ids for messages and notifications.

An id is ``(milliseconds since 2025-01-01 UTC) << 12 | worker << 6 | sequence``: an integer
below 2**53 (exact in JavaScript) until 2094, increasing with time, unique across up to 64
processes that each have their own ``worker`` number (``TRIONET_WORKER_ID``, or leased from
the Redis backplane). 64 ids fit one millisecond of one worker; past that it borrows the next
millisecond, so a burst runs a little ahead of the clock and stays unique.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .errors import StoreUnavailable

__all__ = ["EPOCH_MS", "WORKERS", "IdAllocator", "NoWorkerNumber", "id_at", "id_timestamp",
           "id_to_iso"]

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_WORKER_BITS = 6
_SEQ_BITS = 6
#: how many workers (processes) can allocate ids at once
WORKERS = 1 << _WORKER_BITS
_SHIFT = _WORKER_BITS + _SEQ_BITS
_SEQ_MAX = (1 << _SEQ_BITS) - 1


class NoWorkerNumber(StoreUnavailable):
    """This process holds no worker number now (its lease may have passed to another node):
    it allocates no id until it holds one again, so no two nodes ever allocate the same."""


class IdAllocator:
    """Allocates increasing ids; never repeats one, even if the wall clock steps back."""

    def __init__(self, worker: int = 0, *, floor: int = 0) -> None:
        self._worker = 0
        self.set_worker(worker)
        self._ms = floor >> _SHIFT
        self._seq = _SEQ_MAX  # the floor's millisecond is used up

    @property
    def worker(self) -> int | None:
        return None if self._worker < 0 else self._worker >> _SEQ_BITS

    def set_worker(self, worker: int | None) -> None:
        """Allocate with another worker number from now on (one leased for this process);
        None: allocate nothing (:class:`NoWorkerNumber`) until a number is set again."""
        if worker is None:
            self._worker = -1
            return
        if not 0 <= worker < WORKERS:
            raise ValueError(f"worker must be in 0..{WORKERS - 1}")
        self._worker = worker << _SEQ_BITS

    def raise_floor(self, floor: int) -> None:
        """Never return an id at or below ``floor`` (the highest id already stored)."""
        ms = floor >> _SHIFT
        if ms >= self._ms:
            self._ms = ms
            self._seq = _SEQ_MAX

    def next(self) -> int:
        """A new id, greater than every id this allocator returned before."""
        if self._worker < 0:
            raise NoWorkerNumber("no worker number for ids (the Redis lease lapsed); try again")
        now = int(time.time() * 1000) - EPOCH_MS
        if now > self._ms:
            self._ms = now
            self._seq = 0
        elif self._seq < _SEQ_MAX:
            self._seq += 1
        else:  # 64 ids in one millisecond: borrow the next one
            self._ms += 1
            self._seq = 0
        return (self._ms << _SHIFT) | self._worker | self._seq


def id_timestamp(id_: int) -> float:
    """Seconds since the Unix epoch at which ``id_`` was allocated."""
    return ((id_ >> _SHIFT) + EPOCH_MS) / 1000


_last_iso: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")


def id_to_iso(id_: int) -> str:
    """The allocation time of ``id_`` as an ISO 8601 UTC string with milliseconds."""
    global _last_iso, _last_second
    ms = (id_ >> _SHIFT) + EPOCH_MS
    if _last_iso[0] == ms:  # ids come in bursts within one millisecond
        return _last_iso[1]
    second, milli = divmod(ms, 1000)
    if _last_second[0] != second:  # formatting a date is the cost: once a second
        _last_second = (second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S."))
    iso = f"{_last_second[1]}{milli:03d}Z"
    _last_iso = (ms, iso)
    return iso


def id_at(seconds: float) -> int:
    """The smallest id that can be allocated at ``seconds`` since the Unix epoch."""
    return max(0, int(seconds * 1000) - EPOCH_MS) << _SHIFT
