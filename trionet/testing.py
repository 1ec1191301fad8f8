"""Test trionet, or an integration built on it, against a real server in the test's nursery.

::

    from trionet.testing import running_server

    async def test_private_message():
        async with running_server() as server:
            alice = await server.create_user("alice")
            bob = await server.create_user("bob")
            async with server.connect(bob) as ws:
                async with server.connect(alice) as wa:
                    await wa.send_message('{"type":"private","to":%d,"content":"hi"}' % bob.id)
                    frame = await server.receive_json(ws)
                    assert frame["content"] == "hi"

Every helper talks to the server over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio
import trio_websocket
from quart_trio import QuartTrio

from .app import create_app
from .auth import hash_password, hash_token, make_jwt, new_token
from .interfaces import GroupMemberFetcher, MessagePersister, SessionResolver
from .realtime.messagetypes import MessageType
from .server import serve
from .services import Services, services_of
from .settings import Settings

__all__ = ["TestServer", "TestUser", "fresh_postgres_database", "fresh_redis_prefix",
           "running_cluster", "running_server", "scratch_database"]


@dataclass
class TestUser:
    """A user with a live session token (sent as the session cookie)."""

    __test__ = False

    id: int
    username: str
    token: str
    is_admin: bool = False
    password: str = "password123"
    cookie_name: str = "trionet_session"

    @property
    def cookie(self) -> str:
        """The ``Cookie`` header value that logs this user in."""
        return f"{self.cookie_name}={self.token}"


@dataclass
class TestServer:
    """A trionet server running in the test's nursery."""

    __test__ = False

    url: str
    app: QuartTrio
    settings: Settings
    _stop: trio.Event = field(default_factory=trio.Event, repr=False)
    #: set once the server has shut down
    stopped: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    async def create_user(
        self, username: str, *, admin: bool = False, password: str | None = "password123"
    ) -> TestUser:
        """Create a user directly in the store and open a session for it (``password=None``:
        no password, which skips the deliberately slow hash)."""
        svc = self.services
        hashed = None if password is None else await hash_password(password, hashers=svc.hashers)
        user = await svc.store.create_user(username, hashed, is_admin=admin)
        token = new_token()
        await svc.store.create_session(hash_token(token), user.id,
                                       time.time() + self.settings.session_ttl)
        return TestUser(id=user.id, username=username, token=token, is_admin=admin,
                        password=password or "", cookie_name=self.settings.cookie_name)

    async def create_group(
        self, name: str, owner: TestUser, members: list[TestUser] | tuple[TestUser, ...] = ()
    ) -> int:
        """Create a group owned by ``owner`` with ``members`` accepted; returns its id."""
        group = await self.services.store.create_group(owner.id, name, [u.id for u in members])
        gid = int(group["id"])
        self.services.manager.membership_changed(gid)
        return gid

    def jwt_for(self, user_id: int, ttl: float = 3600) -> str:
        """A JWT for ``user_id`` (the server must have a JWT secret)."""
        assert self.settings.jwt_secret, "set jwt_secret in the settings"
        return make_jwt(self.settings.jwt_secret, user_id, ttl)

    def headers_for(self, user: TestUser | None) -> dict[str, str]:
        cookie_name = self.settings.cookie_name
        return {} if user is None else {"Cookie": f"{cookie_name}={user.token}"}

    @asynccontextmanager
    async def http(self, user: TestUser | None = None) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client for the server, authenticated as ``user`` when given."""
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers_for(user),
                                     timeout=10) as client:
            yield client

    @asynccontextmanager
    async def connect(
        self,
        user: TestUser | None = None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[trio_websocket.WebSocketConnection]:
        """A WebSocket to ``/ws`` authenticated as ``user`` (cookie)."""
        extra = [(k.encode(), v.encode())
                 for k, v in {**self.headers_for(user), **(headers or {})}.items()]
        url = self.ws_url + (f"?{query}" if query else "")
        async with trio_websocket.open_websocket_url(url, extra_headers=extra) as ws:
            yield ws

    async def raw_websocket(
        self, user: TestUser, *, query: str = "", receive_buffer: int | None = None
    ) -> trio.SocketStream:
        """A TCP stream that has completed the ``/ws`` handshake as ``user`` and speaks no
        WebSocket beyond it: for tests of what the server does with broken or silent peers.

        ``query`` is added to the URL (``"since=0"`` for a resume); ``receive_buffer`` sets the
        socket's ``SO_RCVBUF`` before it connects, so that a peer that does not read stalls
        the server's writes after that many bytes rather than the kernel's default.
        """
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        if receive_buffer is None:
            stream = await trio.open_tcp_stream(host, int(port))
        else:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, receive_buffer)
            try:
                await sock.connect((host, int(port)))
            except BaseException:
                sock.close()
                raise
            stream = trio.SocketStream(sock)
        target = "/ws" + (f"?{query}" if query else "")
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\n".encode()
            + b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + f"Cookie: {self.settings.cookie_name}={user.token}\r\n\r\n".encode())
        response = await stream.receive_some(4096)
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            await stream.aclose()
            raise AssertionError(f"handshake refused: {response[:80]!r}")
        return stream

    @staticmethod
    async def receive_json(
        ws: trio_websocket.WebSocketConnection,
        seconds: float = 5,
        *,
        ignore: Collection[str] = ("presence",),
    ) -> dict[str, Any]:
        """The next frame whose type is not in ``ignore``, decoded; fails after ``seconds``.

        Presence events are skipped by default, since they arrive whenever another user of a
        shared group or conversation connects; pass ``ignore=()`` to see every frame.
        """
        with trio.fail_after(seconds):
            while True:
                decoded: dict[str, Any] = json.loads(await ws.get_message())
                if decoded.get("type") not in ignore:
                    return decoded

    @staticmethod
    async def send_json(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any]) -> None:
        await ws.send_message(json.dumps(frame))

    async def stop(self) -> None:
        """Shut down gracefully (clients get 1001); returns once the server is down."""
        self._stop.set()
        await self.stopped.wait()


#: the PostgreSQL server test databases are made on, as an admin URL (the role needs CREATEDB)
DEFAULT_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def fresh_postgres_database(admin_url: str | None = None) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards (also when the block fails);
    yields its URL. It is made on the server of ``admin_url`` (default: the
    ``TRIONET_TEST_POSTGRES`` variable, else ``postgresql://postgres@127.0.0.1:5432/postgres``).
    Needs the postgres extra."""
    import psycopg
    from psycopg import sql

    admin = admin_url or os.environ.get("TRIONET_TEST_POSTGRES") or DEFAULT_POSTGRES_ADMIN
    name = f"trionet_test_{secrets.token_hex(6)}"
    parts = urlsplit(admin)
    url = urlunsplit(parts._replace(path="/" + name))

    def run(statement: sql.Composed) -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    await trio.to_thread.run_sync(run, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(
                run, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


#: the Redis server test deployments use (``TRIONET_TEST_REDIS`` overrides it)
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def fresh_redis_prefix(url: str | None = None) -> AsyncIterator[tuple[str, str]]:
    """A Redis URL (default: ``TRIONET_TEST_REDIS``, else ``redis://127.0.0.1:6379/0``) and a
    new key prefix no one else uses; every key under the prefix is deleted afterwards."""
    import coredis

    url = url or os.environ.get("TRIONET_TEST_REDIS") or DEFAULT_TEST_REDIS
    prefix = f"trionet-test-{secrets.token_hex(6)}"
    try:
        yield url, prefix
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            client = coredis.Redis.from_url(url, decode_responses=False)
            async with client:
                cursor, keys = await client.scan(0, match=f"{prefix}:*", count=1000)
                while True:
                    if keys:
                        await client.delete(list(keys))
                    if not cursor:
                        break
                    cursor, keys = await client.scan(cursor, match=f"{prefix}:*", count=1000)


@asynccontextmanager
async def running_cluster(
    nodes: int = 2,
    settings: Settings | None = None,
    *,
    database: str | Path | None = None,
    redis_url: str | None = None,
    per_node: Sequence[Mapping[str, Any]] = (),
) -> AsyncIterator[list[TestServer]]:
    """``nodes`` trionet servers in this process on one database and one Redis backplane (a
    fresh key prefix, cleaned afterwards), each on its own 127.0.0.1 port: a deployment of
    several nodes, for tests of what crosses between them. The database is a temporary
    SQLite file or, with ``TRIONET_TEST_STORE=postgresql``, a fresh PostgreSQL database;
    ``database`` names another. ``per_node[i]`` holds settings of node ``i`` alone (its
    ``redis_url`` through a proxy a test can cut, say)."""
    base = settings or Settings(rate_limit=0)
    with tempfile.TemporaryDirectory(prefix="trionet-test-") as tmp:
        async with AsyncExitStack() as stack:
            db_url = str(database) if database is not None else (
                await stack.enter_async_context(scratch_database(tmp)))
            url, prefix = await stack.enter_async_context(fresh_redis_prefix(redis_url))
            # settings.redis_url (through a proxy, say) reaches the same Redis as redis_url
            final = base.replace(host="127.0.0.1", port=0, database=db_url,
                                 redis_url=base.redis_url or url, redis_prefix=prefix)
            servers = [await stack.enter_async_context(_serving(
                final.replace(**(per_node[i] if i < len(per_node) else {})), resolver=None,
                groups=None, persister=None, message_types=())) for i in range(nodes)]
            yield servers


@asynccontextmanager
async def scratch_database(tmp: str | Path) -> AsyncIterator[str]:
    """A database for one test: a SQLite file in the folder ``tmp``, or with
    ``TRIONET_TEST_STORE=postgresql`` a fresh PostgreSQL database (see
    :func:`fresh_postgres_database`); yields its URL (or path)."""
    kind = os.environ.get("TRIONET_TEST_STORE", "sqlite")
    if kind == "postgresql":
        async with fresh_postgres_database() as url:
            yield url
    elif kind == "sqlite":
        yield str(Path(tmp) / "trionet.db")
    else:
        raise ValueError(f"TRIONET_TEST_STORE must be sqlite or postgresql, not {kind!r}")


@asynccontextmanager
async def running_server(
    settings: Settings | None = None,
    *,
    resolver: SessionResolver | None = None,
    groups: GroupMemberFetcher | None = None,
    persister: MessagePersister | None = None,
    database: str | Path | None = None,
    port: int = 0,
    message_types: Sequence[MessageType] = (),
) -> AsyncIterator[TestServer]:
    """Serve a fresh trionet app on a free 127.0.0.1 port for the duration of the block.

    Without ``database`` (or ``settings.database`` left at its default) the data lives in a
    temporary SQLite file removed afterwards, or, with ``TRIONET_TEST_STORE=postgresql``, in a
    fresh PostgreSQL database dropped afterwards (see :func:`fresh_postgres_database`).
    ``database`` may be a file path or a ``postgresql://`` URL. The rate limit is off unless
    ``settings`` sets one; registrations over HTTP keep ``register_rate`` (10 a minute per
    address; 0 turns it off).
    ``port`` (default: any free one) lets a test restart a server where clients expect it.
    """
    base = settings or Settings(rate_limit=0)
    with tempfile.TemporaryDirectory(prefix="trionet-test-") as tmp:
        async with AsyncExitStack() as stack:
            db_url = str(database) if database is not None else (
                base.database if settings is not None and base.database != Settings().database
                else await stack.enter_async_context(scratch_database(tmp))
            )
            async with _serving(base.replace(host="127.0.0.1", port=port, database=db_url),
                                resolver=resolver, groups=groups, persister=persister,
                                message_types=message_types) as server:
                yield server


@asynccontextmanager
async def _serving(
    final: Settings,
    *,
    resolver: SessionResolver | None,
    groups: GroupMemberFetcher | None,
    persister: MessagePersister | None,
    message_types: Sequence[MessageType],
) -> AsyncIterator[TestServer]:
    app = create_app(final, resolver=resolver, groups=groups, persister=persister,
                     message_types=message_types)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        stopped = trio.Event()

        async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(app, final, shutdown_trigger=stop.wait, task_status=task_status)
            finally:
                stopped.set()

        binds = await nursery.start(run)
        server = TestServer(url=binds[0], app=app, settings=final, _stop=stop,
                            stopped=stopped)
        try:
            yield server
        finally:
            stop.set()
