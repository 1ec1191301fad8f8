"""PostgreSQL connections, run off the trio event loop.

psycopg's asyncio API does not run under trio, so every call takes a connection from a sync
:class:`psycopg_pool.ConnectionPool` in a worker thread (``trio.to_thread.run_sync``), at most
``pool_size`` at once (a ``CapacityLimiter`` as large as the pool, so a call never waits for
a connection another call holds). Connections are in autocommit mode: a read is its own
statement, a write runs in one explicit transaction.

What can go wrong with the server surfaces as :class:`~trionet.errors.StoreUnavailable`:
refused or lost connections, a server restart, a lock held past ``lock_timeout`` (a table
locked by another session), a statement past ``statement_timeout``, and no connection within
``connect_timeout``.

A connection is checked as it is taken from the pool (:func:`usable`): after a server restart
or ``pg_terminate_backend`` its socket has the server's goodbye waiting, so the next call
drops it (the pool opens another in its place) and takes the next, without an error. The check
costs nothing while the socket is quiet. (psycopg_pool's own ``check=`` would also do, but it
runs a query on every checkout and waits 1 s, 2 s, 4 s... between the dead connections it finds,
so a pool of terminated connections would time out.)
"""

from __future__ import annotations

import math
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import trio
from psycopg import conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from ...core.errors import StoreUnavailable
from .migrate import apply_migrations

__all__ = ["Conn", "Database", "usable"]

P = ParamSpec("P")
T = TypeVar("T")

#: a pooled connection (autocommit, tuple rows)
Conn = psycopg.Connection[TupleRow]

#: how long a migration run waits for another migrator (or a lock on a table it alters)
MIGRATE_LOCK_TIMEOUT = 60.0
#: how often a write transaction is retried after a deadlock or serialization failure
#: (the whole transaction was rolled back, so running it again is safe)
WRITE_ATTEMPTS = 3
#: how long the pool keeps retrying (1 s, 2 s, 4 s... apart) to replace a connection it lost;
#: then it gives up, and the next call that needs a connection starts a new attempt at once
#: (so after a long outage the first call after the server is back gets a connection)
RECONNECT_TIMEOUT = 10.0


def _ms(seconds: float) -> str:
    return str(max(0, int(seconds * 1000)))


def _readable(fileno: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fileno, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    return bool(select.select([fileno], [], [], 0)[0])  # pragma: no cover - Windows


def usable(conn: Conn) -> bool:
    """Whether an idle pooled connection can still serve a call.

    An idle connection's socket has nothing to read, unless the server has closed it
    (restart, ``pg_terminate_backend``, idle timeout: a FATAL message and EOF wait there);
    only then is it asked with an empty query (a round trip) whether it still works.
    """
    if conn.closed or conn.broken:
        return False
    try:
        if not _readable(conn.fileno()):
            return True
        conn.execute("")
    except (psycopg.Error, OSError, ValueError):
        return False
    return True


class Database:
    """A PostgreSQL database opened for trionet: a lazily opened pool of configured
    connections, and :meth:`read` / :meth:`write` to run plain functions on one."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        lock_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.url = url
        self.pool_size = pool_size
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        given = conninfo.conninfo_to_dict(url)  # a malformed URL fails here, not on first use
        self._connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in given:
            self._connect_kwargs["connect_timeout"] = max(1, math.ceil(connect_timeout))
        if "application_name" not in given:
            self._connect_kwargs["application_name"] = "trionet"
        # the URL's own ``options=-c lock_timeout=...`` win over the arguments
        given_options = str(given.get("options", ""))
        self._settings = [
            (name, _ms(seconds))
            for name, seconds in (("lock_timeout", lock_timeout),
                                  ("statement_timeout", statement_timeout))
            if name not in given_options
        ]
        self._limiter = trio.CapacityLimiter(pool_size)
        self._pool: ConnectionPool[Conn] | None = None
        self._lock = threading.Lock()

    # -- connections ----------------------------------------------------------------------

    def connect(self) -> Conn:
        """A new connection outside the pool (autocommit; the caller closes it)."""
        return psycopg.connect(self.url, autocommit=True, **self._connect_kwargs)

    def _configure(self, conn: Conn) -> None:
        # (a SET once per connection rather than a startup ``options`` parameter, which
        # connection poolers such as PgBouncer refuse)
        for name, value in self._settings:
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    def pool(self) -> ConnectionPool[Conn]:
        """The pool, opened on first use (its connections are made in the background)."""
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[Conn] = ConnectionPool(
                    self.url,
                    kwargs={"autocommit": True, **self._connect_kwargs},
                    min_size=1,
                    max_size=self.pool_size,
                    open=False,
                    configure=self._configure,
                    timeout=self.connect_timeout,
                    reconnect_timeout=RECONNECT_TIMEOUT,
                    name="trionet",
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A usable connection from the pool, for the block (blocking; ``PoolTimeout`` when
        none comes within ``connect_timeout``). Dead ones met on the way are dropped."""
        pool = self.pool()
        deadline = time.monotonic() + self.connect_timeout
        while True:
            conn = pool.getconn(timeout=max(0.0, deadline - time.monotonic()))
            if usable(conn):
                break
            conn.close()  # the pool discards a closed connection and opens a new one
            pool.putconn(conn)
            if time.monotonic() >= deadline:
                raise PoolTimeout(f"no usable connection after {self.connect_timeout:.2f} sec")
        try:
            yield conn
        finally:
            pool.putconn(conn)  # rolled back if a transaction was left open, or discarded

    # -- calls ----------------------------------------------------------------------------

    def read_sync(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` on a pooled connection, each statement on its own (blocking)."""
        with self.connection() as conn:
            return fn(conn, *args, **kw)

    def write_sync(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one transaction on a pooled connection (blocking); a
        deadlock or serialization failure rolls it back and runs it again, a few times."""
        with self.connection() as conn:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    with conn.transaction():
                        return fn(conn, *args, **kw)
                except psycopg.errors.TransactionRollback:
                    if attempt == WRITE_ATTEMPTS:
                        raise
            raise AssertionError("unreachable")

    async def read(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """:meth:`read_sync` in a worker thread; raises
        :class:`~trionet.errors.StoreUnavailable` when the database cannot serve it."""
        try:
            return await trio.to_thread.run_sync(
                lambda: self.read_sync(fn, *args, **kw), limiter=self._limiter
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    async def write(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """:meth:`write_sync` in a worker thread; raises
        :class:`~trionet.errors.StoreUnavailable` as :meth:`read` does."""
        try:
            return await trio.to_thread.run_sync(
                lambda: self.write_sync(fn, *args, **kw), limiter=self._limiter
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    # -- lifecycle ------------------------------------------------------------------------

    def migrate_sync(self) -> list[str]:
        """Apply pending migrations on a connection of its own (blocking)."""
        with self.connect() as conn:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false),"
                " set_config('statement_timeout', '0', false)",
                (_ms(MIGRATE_LOCK_TIMEOUT),),
            )
            return apply_migrations(conn)

    async def migrate(self) -> list[str]:
        try:
            return await trio.to_thread.run_sync(self.migrate_sync)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    def close(self) -> None:
        """Close the pool and its connections (no call may be running); a later call opens
        a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """Wait for running calls to finish, then close every connection."""
        borrowers = [object() for _ in range(int(self._limiter.total_tokens))]
        with trio.CancelScope(shield=True):
            for borrower in borrowers:
                await self._limiter.acquire_on_behalf_of(borrower)
            try:
                await trio.to_thread.run_sync(self.close)
            finally:
                for borrower in borrowers:
                    self._limiter.release_on_behalf_of(borrower)
