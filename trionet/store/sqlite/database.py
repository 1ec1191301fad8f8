"""SQLite connections, run off the trio event loop.

Writes go through one connection serialised by a ``CapacityLimiter(1)``, each call one
transaction; reads take a connection from a small pool (at most ``readers`` open), so a slow
read never waits behind a write (WAL) and never stalls the event loop.

The one exception is :meth:`Database.try_write_inline`, for the committer's short batch inserts: see
there for when it runs on the event loop and why.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils
import trio

from ...core.errors import StoreUnavailable
from .migrate import apply_migrations

log = logging.getLogger("trionet.store.sqlite")

__all__ = ["Database"]

P = ParamSpec("P")
T = TypeVar("T")


def _finish_transaction(
    conn: sqlite3.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kw: P.kwargs,
) -> T:
    """Run ``fn`` in the transaction ``conn`` has begun, then commit; roll back on any error,
    also after a failed COMMIT (busy, disk full), which leaves the transaction open."""
    try:
        result = fn(conn, *args, **kw)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


#: inline writes per checkpoint of the log (see Database.try_write_inline)
CHECKPOINT_EVERY = 64


#: passive checkpoints tried before one with writes held off
CHECKPOINT_TRIES = 4


def _checkpoint(conn: sqlite3.Connection) -> bool:
    """A passive checkpoint; whether it copied the whole log it saw (a commit may have added
    to it since)."""
    # every row fetched: an unfinished statement would hold a snapshot, and keep the log
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
    return not busy and frames == copied


class Database:
    """A SQLite database file opened for trionet (WAL, foreign keys, busy timeout)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "NORMAL",
        readers: int = 4,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: sqlite3.Connection | None = None
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(readers)
        self._idle_readers: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._inline: sqlite3.Connection | None = None
        self._inline_writes = 0
        #: set to ask run_checkpoints for one; None while that task is not running
        self._checkpoint_wanted: trio.Event | None = None
        self._writes = 0  # write transactions begun, inline or not
        #: checkpoints run_checkpoints has run, and of those, how many held writes off
        self.checkpoints = 0
        self.held_checkpoints = 0

    def connect(self) -> sqlite3.Connection:
        """A new configured connection (autocommit mode: callers open transactions)."""
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        for attempt in range(50):  # a new file: another process may be switching it to WAL
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.02)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        with self._lock:
            self._all.append(conn)
        return conn

    def migrate(self) -> list[str]:
        """Apply pending migrations (blocking); returns the names applied."""
        conn = self.connect()
        try:
            return apply_migrations(sqlite_utils.Database(conn))
        finally:
            self._forget(conn)

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self.connect()
        return self._writer

    def read_sync(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` on a pooled reader connection (caller holds the read limiter).

        Connections are pooled, not kept per thread: trio's worker threads come and go, and a
        connection per thread would leave one open for every thread that ever read.
        """
        with self._lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self.connect()
        try:
            return fn(conn, *args, **kw)
        finally:
            with self._lock:
                keep = conn in self._all  # not closed by close() meanwhile
                if keep and not conn.in_transaction:
                    self._idle_readers.append(conn)
            if keep and conn.in_transaction:  # fn left one open: drop the connection
                self._forget(conn)

    def write_sync(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one write transaction (caller holds the write limiter)."""
        conn = self._writer_conn()
        self._writes += 1
        conn.execute("BEGIN IMMEDIATE")
        return _finish_transaction(conn, fn, *args, **kw)

    async def write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one write transaction, in a worker thread.

        Raises :class:`~trionet.errors.StoreUnavailable` when the database stays locked or
        busy past the busy timeout (or cannot be opened).
        """
        try:
            return await trio.to_thread.run_sync(
                lambda: self.write_sync(fn, *args, **kw), limiter=self._write_limiter
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    def try_write_inline(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> tuple[bool, T | None]:
        """Run a short write transaction here, on the event loop, if it cannot block; returns
        ``(False, None)`` without doing anything when it could.

        With ``synchronous=NORMAL`` in WAL mode a commit appends to the log without an fsync,
        so a batch insert costs a fraction of a millisecond of CPU, while the same commit in a
        worker thread waits for the GIL at every SQLite call whenever the event loop is busy
        (several milliseconds per commit, measured in docs/performance.md). It runs inline only
        when the write lock is free right now (a connection with no busy timeout: a lock held
        by another process makes it give up at once) and ``synchronous`` is NORMAL.

        The inline connection never checkpoints the log. One write in
        :data:`CHECKPOINT_EVERY` asks :meth:`run_checkpoints` for a checkpoint in a worker
        thread, which no commit waits for; while that task is not running, that write goes to
        the worker thread instead, whose commit checkpoints (and the batch's delivery waits).
        """
        self._inline_writes += 1
        self._writes += 1
        due = self._inline_writes % CHECKPOINT_EVERY == 0
        wanted = self._checkpoint_wanted
        if (
            self._synchronous != "NORMAL"
            or self._write_limiter.borrowed_tokens
            or (due and wanted is None)
        ):
            return False, None
        conn = self._inline_conn()
        self._write_limiter.acquire_nowait()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # locked elsewhere
                return False, None
            result = True, _finish_transaction(conn, fn, *args, **kw)
        finally:
            self._write_limiter.release()
        if due and wanted is not None:
            wanted.set()
        return result

    async def run_checkpoints(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Checkpoint the log in a worker thread whenever inline writes ask
        (:meth:`try_write_inline`), until cancelled.

        A passive checkpoint copies what it can of the log into the database without blocking
        readers or writers; once the whole log is copied, the next write starts it over. Under
        a steady stream of commits, one may land during the checkpoint (which then leaves its
        pages), so it is tried again, a few pages each time, up to :data:`CHECKPOINT_TRIES`
        times, and then once with writes held off (without that, the log would grow without
        end).
        Before this, every 64th commit went to the worker thread for its checkpoint and the
        batch's delivery waited for it: that one commit in 64 set the 99th percentile of a
        group's delivery latency (5.4-7.6 ms against 1.2-1.6 ms without it, at 500 messages a
        second to groups of 100)."""
        self._checkpoint_wanted = wanted = trio.Event()
        task_status.started()
        try:
            while True:
                await wanted.wait()
                self._checkpoint_wanted = wanted = trio.Event()
                try:
                    for _ in range(CHECKPOINT_TRIES):
                        writes = self._writes
                        if await self.read(_checkpoint) and self._writes == writes:
                            break  # all copied, and nothing committed meanwhile
                    else:
                        self.held_checkpoints += 1
                        await trio.to_thread.run_sync(
                            lambda: _checkpoint(self._writer_conn()), limiter=self._write_limiter)
                except (StoreUnavailable, sqlite3.Error) as exc:
                    log.warning("checkpoint of %s failed (%s); the next one retries",
                                self.path, exc)
                self.checkpoints += 1
        finally:
            self._checkpoint_wanted = None

    def _inline_conn(self) -> sqlite3.Connection:
        if self._inline is None:
            conn = self.connect()
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._inline = conn
        return self._inline

    async def read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` on a reader connection, in a worker thread (raises
        :class:`~trionet.errors.StoreUnavailable` as :meth:`write` does)."""
        try:
            return await trio.to_thread.run_sync(
                lambda: self.read_sync(fn, *args, **kw), limiter=self._read_limiter
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    async def aclose(self) -> None:
        """Wait for running calls to finish, then close every connection (further calls fail)."""
        borrowers = [object() for _ in range(int(self._read_limiter.total_tokens))]
        writer = object()
        with trio.CancelScope(shield=True):
            await self._write_limiter.acquire_on_behalf_of(writer)
            for borrower in borrowers:
                await self._read_limiter.acquire_on_behalf_of(borrower)
            try:
                self.close()
            finally:
                for borrower in borrowers:
                    self._read_limiter.release_on_behalf_of(borrower)
                self._write_limiter.release_on_behalf_of(writer)

    def close(self) -> None:
        """Close every connection this object opened (no call may be running)."""
        with self._lock:
            conns, self._all, self._idle_readers = self._all, [], []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._writer = None
        self._inline = None
