"""The services one app shares: :class:`Services` (settings, the store, the manager, the
committer and the pluggable parts), and :func:`services_of` to find them from an app.

Built by :func:`trionet.app.create_app`; the HTTP and WebSocket endpoints (:mod:`trionet.api`)
and :mod:`trionet.testing` reach them through :func:`services_of`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio
from quart_trio import QuartTrio

from .auth import (
    ChainResolver,
    CookieSessionResolver,
    JwtResolver,
    LocalLoginGuard,
    LoginGuard,
    LoginThrottle,
)
from .backplane import Backplane, LocalBackplane
from .core.dedupe import RecentSends
from .core.events import PresenceChanged
from .core.ids import IdAllocator
from .core.ratelimit import KeyedLimiter
from .interfaces import GroupMemberFetcher, MessagePersister, SessionResolver
from .jwtkeys import JwksKeys, KeySource, PublicKey, SecretKey
from .metrics import Metrics
from .realtime.blocks import BlockCache
from .realtime.committer import GroupCommitter, Pending
from .realtime.ext_typing import DEFAULT_TYPES
from .realtime.inbox import InboxPruner, KeyedLocks
from .realtime.manager import Manager
from .realtime.membership import MembershipCache
from .realtime.messagetypes import MessageType, MessageTypes
from .realtime.notifier import Notifier
from .realtime.pings import PingSweep
from .realtime.presence import Presence
from .realtime.registry import Registry
from .realtime.retention import Retention
from .realtime.routequeue import RouteQueue
from .realtime.webhooks import Webhooks
from .settings import Settings, SettingsError
from .store import Store, open_store

__all__ = ["Services", "node_id", "raise_descriptor_limit", "services_of", "tune_runtime"]

log = logging.getLogger("trionet")


class Services:
    """Everything the handlers share: settings, storage, the manager and the pluggable parts."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: SessionResolver | None,
        groups: GroupMemberFetcher | None,
        persister: MessagePersister | None,
        message_types: Sequence[MessageType] = (),
    ) -> None:
        self.settings = settings
        self.message_types = MessageTypes((*DEFAULT_TYPES, *message_types))
        #: everything trionet keeps (TRIONET_DATABASE picks SQLite or PostgreSQL)
        self.store: Store = open_store(settings.database, synchronous=settings.db_synchronous)
        #: trionet's own JWT resolver, when it built one (a deleted account is forgotten there)
        self._jwt: JwtResolver | None = None
        if resolver is None:
            chain: list[SessionResolver] = [
                CookieSessionResolver(self.store, settings.cookie_name)]
            if settings.jwt_enabled:
                self._jwt = JwtResolver(self.store, jwt_keys(settings),
                                        audience=settings.jwt_audience,
                                        issuer=settings.jwt_issuer)
                chain.append(self._jwt)
            resolver = ChainResolver(chain)
        self.resolver = resolver
        self.groups: GroupMemberFetcher = groups or self.store
        self.persister: MessagePersister = persister or self.store
        self.metrics = Metrics()
        self.membership = MembershipCache(self.groups)
        #: who blocks whom, for the routers, invites and presence
        self.blocks = BlockCache(self.store)
        #: ids of messages and notifications; its floor is raised to the store's at start
        self.ids = IdAllocator(settings.worker_id)
        node = node_id()
        #: everything routed waits here for the manager task
        self.routes = RouteQueue(metrics=self.metrics)
        routes = self.routes

        def presence_changed(user_id: int, online: bool) -> None:
            if not self.draining:  # a drain closes everyone: nothing worth announcing
                routes.control_nowait(PresenceChanged(user_id, online, node))

        self.registry = Registry(metrics=self.metrics, node=node, on_presence=presence_changed)
        self.metrics.node.labels(node).set(1)
        #: how this process reaches the others: Redis (TRIONET_REDIS_URL), or nobody (it is
        #: the whole deployment)
        self.backplane: Backplane
        if settings.redis_url:
            try:
                from .backplane.redis import RedisBackplane
            except ImportError as exc:  # coredis is an extra
                raise SettingsError(
                    "TRIONET_REDIS_URL",
                    "the Redis backplane needs the redis extra: pip install 'trionet[redis]'"
                    f" (missing {exc.name or exc})") from None
            self.backplane = RedisBackplane(settings.redis_url, settings.redis_prefix, node,
                                            metrics=self.metrics, on_worker=self.ids.set_worker,
                                            members_of=self.membership.peek,
                                            lease_seconds=settings.redis_lease)
        else:
            self.backplane = LocalBackplane(node, self.registry.is_online)
        #: seconds before ``since`` a replay starts: with several nodes, ids are allocated
        #: by several clocks and committed at several paces (see trionet.core.resume)
        self.resume_lookback = RESUME_LOOKBACK_SECONDS if settings.redis_url else 0.0
        #: events for the backend (TRIONET_WEBHOOK_URL); None: no webhooks
        self.webhooks: Webhooks | None = None
        if settings.webhook_url and settings.webhook_secret:
            self.webhooks = Webhooks(self.store, settings.webhook_url, settings.webhook_secret,
                                     self.ids, self.backplane.is_online, self.metrics)
        self.committer = GroupCommitter(
            self.persister,
            self.routes.committed if self.webhooks is None else self._committed,
            commit_timeout=settings.commit_timeout,
            retry_capacity=settings.retry_buffer,
            metrics=self.metrics,
        )
        #: inboxes bounded to TRIONET_NOTIFICATION_INBOX, pruned by a task of _run
        self.inbox = InboxPruner(self.store, bound=settings.notification_inbox)
        #: deletes what is older than TRIONET_RETENTION_DAYS, by a task of _run
        self.retention = Retention(self.store, settings.retention_days, self.metrics)
        self.notifier = Notifier(self.committer, self.ids, on_notified=self.inbox.touched)
        self.presence = Presence(self.store, self.backplane.is_online, self.routes, self.metrics,
                                 limit=settings.presence_limit, active=lambda: not self.draining)
        self.manager = Manager(
            registry=self.registry, membership=self.membership, backplane=self.backplane,
            queue=self.routes, notifier=self.notifier, metrics=self.metrics,
            on_presence=self._presence_changed, blocks=self.blocks,
            on_user_deleted=self.forget_user,
        )
        #: invites, and group creations, per user (TRIONET_INVITE_RATE each)
        self.invite_limit = KeyedLimiter(settings.invite_rate)
        self.group_limit = KeyedLimiter(settings.invite_rate)
        #: held per group across an invite change and its notification's commit
        self.invite_locks = KeyedLocks()
        #: failed logins per (username, address), username and address (see LoginThrottle),
        #: counted by this process, or by every node together in Redis
        self.throttle = LoginThrottle.for_logins()
        self.logins: LoginGuard = LocalLoginGuard(self.throttle)
        if settings.redis_url:
            from .backplane.redis import RedisBackplane
            from .backplane.redis_throttle import RedisLoginGuard

            assert isinstance(self.backplane, RedisBackplane)
            self.logins = RedisLoginGuard(self.backplane, window=self.throttle.window,
                                          limit_of=self.throttle.limit_of,
                                          fallback=self.logins)
        #: registrations per client address (TRIONET_REGISTER_RATE)
        self.register_limit = KeyedLimiter(settings.register_rate)
        #: password hashes and checks computed at once (TRIONET_PASSWORD_HASHERS): argon2
        #: takes 64 MiB each; waiting callers are bounded by auth.HASH_QUEUE_LIMIT
        self.hashers = trio.CapacityLimiter(settings.password_hashers)
        self.recent_sends: RecentSends[Pending] = RecentSends()
        self._known_users: set[int] = set()
        #: the JSON Schema of the WebSocket frames, built on first request (GET /schema/...)
        self.frame_schema: dict[str, Any] | None = None
        self._admins: dict[int, tuple[float, bool]] = {}
        self.started = False
        self.draining = False
        self.open_handlers = 0
        #: the server's WebSocket ping task, while :func:`trionet.server.serve` serves
        self.pings: PingSweep | None = None
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        """Migrate, then start the committer and the manager in ``nursery``."""
        raise_descriptor_limit()
        await self.store.migrate()
        floor = await self.store.max_id()
        self.ids.raise_floor(floor)
        await nursery.start(self._run)
        tune_runtime()
        self.started = True

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    run_checkpoints = getattr(self.store, "run_checkpoints", None)
                    if run_checkpoints is not None:  # SQLite: the log's, off the commit path
                        await nursery.start(run_checkpoints)
                    await nursery.start(self.committer.run)
                    await nursery.start(self.manager.run)
                    await nursery.start(self.presence.run)
                    await nursery.start(self.inbox.run)
                    await nursery.start(self.retention.run)
                    if self.webhooks is not None:
                        await nursery.start(self.webhooks.run)
                    task_status.started()
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop the committer, the manager and their helpers (after :meth:`drain`)."""
        self._scope.cancel()
        if self.started:
            await self._stopped.wait()

    async def drain(self, code: int = 1001) -> int:
        """Close every client with ``code``, then write everything still queued; returns how
        many clients it closed.

        Bounded by ``shutdown_timeout``; called before the server stops accepting handlers.
        """
        self.draining = True
        closed = self.registry.connection_count
        with trio.move_on_after(self.settings.shutdown_timeout):
            self.registry.close_all(code)
            # each writer sends its queued frames, then the close; bounded by the timeout
            while self.open_handlers:  # noqa: ASYNC110
                await trio.sleep(0.01)
            await self.committer.flush()
            # what was committed last reaches the other nodes too: routed, then sent
            if self.started:
                with contextlib.suppress(trio.ClosedResourceError):  # the manager stopped
                    await self.routes.send([], wait=True)
                await self.backplane.flush()
        return closed

    async def _committed(self, batch: list[Pending]) -> None:
        """With webhooks, a committed batch: its events queued (never waiting), then routed."""
        assert self.webhooks is not None
        self.webhooks.committed(batch)
        await self.routes.committed(batch)

    def _presence_changed(self, user_id: int, online: bool) -> None:
        self.presence.hook(user_id, online)
        if self.webhooks is not None:
            self.webhooks.presence(user_id, online)

    def forget_user(self, user_id: int) -> None:
        """Drop what this process caches of a user (their account was deleted)."""
        self._known_users.discard(user_id)
        self._admins.pop(user_id, None)
        if self._jwt is not None:
            self._jwt.forget(user_id)

    async def user_exists(self, user_id: int) -> bool:
        if user_id in self._known_users:
            return True
        user = await self.store.get_user(user_id)
        if user is not None:
            self._known_users.add(user_id)
        return user is not None

    async def is_admin(self, user_id: int) -> bool:
        hit = self._admins.get(user_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await self.store.get_user(user_id)
        admin = user is not None and user.is_admin
        self._admins[user_id] = (now + 30.0, admin)
        return admin


#: how far back a replay looks on a deployment of several nodes: covers a commit still under
#: way elsewhere (TRIONET_COMMIT_TIMEOUT, 1 s by default) and clocks of hosts a little apart
RESUME_LOOKBACK_SECONDS = 5.0

#: generation-0 threshold while serving: the default (700) makes the collector run every few
#: hundred frames and walk every connection's objects; measured in docs/performance.md
GC_THRESHOLDS = (50_000, 20, 100)
#: seconds the GIL is held before another thread may take it (default 0.005): the database
#: writer thread otherwise waits up to 5 ms for the event loop at every commit
SWITCH_INTERVAL = 0.0005


def jwt_keys(settings: Settings) -> list[KeySource]:
    """The key sources the settings name (TRIONET_JWT_SECRET, _PUBLIC_KEY, JWKS_URL)."""
    keys: list[KeySource] = []
    if settings.jwt_secret:
        keys.append(SecretKey(settings.jwt_secret))
    if settings.jwt_public_key:
        keys.append(PublicKey(settings.jwt_public_key))
    if settings.jwks_url:
        keys.append(JwksKeys(settings.jwks_url))
    return keys


def node_id() -> str:
    """A name for this process among the nodes of a deployment, never reused: its host, its
    pid and 48 random bits."""
    host = "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum() or c == "-")
    return f"{host[:32] or 'node'}-{os.getpid()}-{secrets.token_hex(6)}"


def tune_runtime() -> None:
    """Process-wide tuning for a server: freeze start-up objects, relax the GC, hand the GIL
    over sooner. Applied when serving starts."""
    if os.environ.get("TRIONET_NO_RUNTIME_TUNING"):
        return
    gc.collect()
    gc.freeze()  # start-up objects never need scanning again
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)


def raise_descriptor_limit() -> tuple[int, int] | None:
    """Raise this process's soft limit on open files to its hard limit (each connection takes
    one); returns (soft before, hard), or None where the platform has no such limit."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft, hard
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, hard)
    elif not _fd_limit_logged:
        log.info("open-file limit: %d (the hard limit)", hard)
    _fd_limit_logged.append(True)
    return soft, hard


#: non-empty once the open-file limit was logged (each app of a process would log it again)
_fd_limit_logged: list[bool] = []


def services_of(app: QuartTrio) -> Services:
    """The :class:`Services` of an app built by :func:`create_app`."""
    found: Services = app.extensions["trionet"]
    return found
