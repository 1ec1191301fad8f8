"""The application factory, and ``app`` for ``hypercorn --worker-class trio trionet.app:app``."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import trio
from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from . import _hypercorn_fixes, protocol
from .asgi import AddressLimit, BodyBeforeResponse
from .auth import ChainResolver, CookieSessionResolver, JwtResolver, LoginThrottle
from .committer import GroupCommitter
from .dedupe import RecentSends
from .errors import ApiError, ErrorCode
from .ext_typing import DEFAULT_TYPES
from .ids import IdAllocator
from .inbox import InboxPruner, KeyedLocks
from .interfaces import GroupMemberFetcher, MessagePersister, SessionResolver
from .manager import Manager
from .membership import MembershipCache
from .messagetypes import MessageType, MessageTypes
from .metrics import Metrics
from .presence import Presence
from .ratelimit import KeyedLimiter
from .settings import Settings, SettingsError
from .store import Store, StoreUnavailable, open_store

__all__ = ["Services", "app", "create_app", "services_of"]

log = logging.getLogger("trionet")

_STATUS_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.TOO_MANY_REQUESTS,
    500: ErrorCode.INTERNAL,
    503: ErrorCode.UNAVAILABLE,
}


#: largest HTTP request body (larger: 413)
MAX_BODY_BYTES = 1024 * 1024
#: seconds a client is told to wait after a 503 for a busy or unreachable database
STORE_RETRY_AFTER = 2


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
        if resolver is None:
            chain: list[SessionResolver] = [
                CookieSessionResolver(self.store, settings.cookie_name)]
            if settings.jwt_secret:
                chain.append(JwtResolver(self.store, settings.jwt_secret))
            resolver = ChainResolver(chain)
        self.resolver = resolver
        self.groups: GroupMemberFetcher = groups or self.store
        self.persister: MessagePersister = persister or self.store
        self.metrics = Metrics()
        self.membership = MembershipCache(self.groups)
        self.ids = IdAllocator(settings.worker_id)
        self.manager = Manager(metrics=self.metrics, membership=self.membership, ids=self.ids)
        self.committer = GroupCommitter(
            self.persister,
            self.manager.deliver_batch,
            commit_timeout=settings.commit_timeout,
            retry_capacity=settings.retry_buffer,
            metrics=self.metrics,
        )
        self.manager.committer = self.committer
        self.presence = Presence(self.store, self.manager, self.metrics,
                                 limit=settings.presence_limit, active=lambda: not self.draining)
        self.manager.on_presence = self.presence.hook
        #: inboxes bounded to TRIONET_NOTIFICATION_INBOX, pruned by a task of _run
        self.inbox = InboxPruner(self.store, bound=settings.notification_inbox)
        self.manager.on_notified = self.inbox.touched
        #: invites, and group creations, per user (TRIONET_INVITE_RATE each)
        self.invite_limit = KeyedLimiter(settings.invite_rate)
        self.group_limit = KeyedLimiter(settings.invite_rate)
        #: held per group across an invite change and its notification's commit
        self.invite_locks = KeyedLocks()
        #: failed logins per (username, address), username and address (see LoginThrottle)
        self.throttle = LoginThrottle.for_logins()
        #: registrations per client address (TRIONET_REGISTER_RATE)
        self.register_limit = KeyedLimiter(settings.register_rate)
        #: password hashes and checks computed at once (TRIONET_PASSWORD_HASHERS): argon2
        #: takes 64 MiB each; waiting callers are bounded by auth.HASH_QUEUE_LIMIT
        self.hashers = trio.CapacityLimiter(settings.password_hashers)
        self.recent_sends = RecentSends()
        self._known_users: set[int] = set()
        self._admins: dict[int, tuple[float, bool]] = {}
        self.started = False
        self.draining = False
        self.open_handlers = 0
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        """Migrate, then start the committer and the manager in ``nursery``."""
        raise_descriptor_limit()
        await self.store.migrate()
        floor = await self.store.max_id()
        self.ids = self.manager.ids = IdAllocator(self.settings.worker_id, floor=floor)
        await nursery.start(self._run)
        tune_runtime()
        self.started = True

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.committer.run)
                    await nursery.start(self.manager.run)
                    await nursery.start(self.presence.run)
                    await nursery.start(self.inbox.run)
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
        closed = self.manager.connection_count
        with trio.move_on_after(self.settings.shutdown_timeout):
            self.manager.close_all(code)
            # each writer sends its queued frames, then the close; bounded by the timeout
            while self.open_handlers:  # noqa: ASYNC110
                await trio.sleep(0.01)
            await self.committer.flush()
        return closed

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


#: generation-0 threshold while serving: the default (700) makes the collector run every few
#: hundred frames and walk every connection's objects; measured in docs/performance.md
GC_THRESHOLDS = (50_000, 20, 100)
#: seconds the GIL is held before another thread may take it (default 0.005): the database
#: writer thread otherwise waits up to 5 ms for the event loop at every commit
SWITCH_INTERVAL = 0.0005


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


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """The one error shape: ``{"error": {"code": ..., "message": ...}}``."""
    body = protocol.encode({"error": {"code": code, "message": message}})
    return Response(body, status=status, headers=headers, content_type="application/json")


def create_app(
    settings: Settings | None = None,
    *,
    resolver: SessionResolver | None = None,
    groups: GroupMemberFetcher | None = None,
    persister: MessagePersister | None = None,
    message_types: Sequence[MessageType] = (),
) -> QuartTrio:
    """Build a trionet app. Unset parts use the defaults backed by the SQLite database;
    ``message_types`` adds application-defined frame types to the built-in ones.

    Patches hypercorn (once per process: :mod:`trionet._hypercorn_fixes`), after checking it
    has every name trionet patches or reaches. Raises :class:`~trionet.settings.SettingsError`
    on a bad ``TRIONET_*`` value, or when a name is missing
    (:class:`~trionet._hypercorn_fixes.IncompatibleHypercorn`, naming it)."""
    _hypercorn_fixes.check()
    _hypercorn_fixes.apply()
    settings = settings or Settings.from_env()
    app = QuartTrio("trionet")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = settings.body_timeout
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = settings.shutdown_timeout
    app.config["JSON_SORT_KEYS"] = False
    services = Services(settings, resolver=resolver, groups=groups, persister=persister,
                        message_types=message_types)
    app.extensions["trionet"] = services

    from .api import register_blueprints

    register_blueprints(app)
    app.asgi_app = BodyBeforeResponse(  # type: ignore[assignment]
        app.asgi_app,  # type: ignore[arg-type]
        timeout=settings.body_timeout, max_bytes=MAX_BODY_BYTES)
    if settings.max_connections_per_address:
        app.asgi_app = AddressLimit(  # type: ignore[assignment]
            app.asgi_app,  # type: ignore[arg-type]
            settings.max_connections_per_address, services.metrics)
    if settings.proxy_hops:
        # behind reverse proxies: the client's address (login throttle), scheme and host
        # (Origin checks) come from the headers the trusted proxies set
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=settings.proxy_hops)

    @app.before_serving
    async def _start() -> None:
        await services.start(app.nursery)

    @app.after_serving
    async def _stop() -> None:
        with trio.CancelScope(shield=True):
            await services.drain()
            await services.stop()
            await services.store.aclose()

    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(StoreUnavailable)
    async def _store_unavailable(exc: StoreUnavailable) -> Response:
        log.warning("%s: answered 503", exc)
        return error_response(503, ErrorCode.UNAVAILABLE,
                              "the database is busy or unavailable; try again shortly",
                              {"Retry-After": str(STORE_RETRY_AFTER)})

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _STATUS_CODES.get(status, "http_error")
        headers = {}
        allowed = getattr(exc, "valid_methods", None)
        if status == 405 and allowed:
            headers["Allow"] = ", ".join(allowed)
        return error_response(status, code, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    async def _internal(exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, ErrorCode.INTERNAL, "internal server error")

    return app


def _configure_logging(level: str) -> None:
    """Logging for the app under the ``hypercorn`` command."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the hypercorn command gives its loggers handlers of their own (when it first logs, after
    # this): without the filter their lines ("Running on ...") would print twice
    for handler in logging.getLogger().handlers:
        handler.addFilter(_printed_elsewhere)


def _printed_elsewhere(record: logging.LogRecord) -> bool:
    """False for a hypercorn record whose own logger has a handler that printed it."""
    return not (record.name.startswith("hypercorn.")
                and bool(logging.getLogger(record.name).handlers))


def _exit_on_bad_settings(exc: SettingsError) -> NoReturn:
    print(f"trionet: configuration error: {exc}", file=sys.stderr, flush=True)
    # Inside the server's event loop an exception would be wrapped and logged with a
    # traceback (or, during the lifespan, hypercorn would serve on without it): leave now.
    os._exit(2)


class _AppFromEnvironment:
    """``trionet.app:app``: the app built from ``TRIONET_*`` when the ASGI server first calls it.

    hypercorn finds ``app`` by evaluating the name in this module's namespace (a module
    ``__getattr__`` is never asked), so this stand-in is what it loads; importing
    :mod:`trionet.app` still reads no configuration. A bad value ends the process with one
    line on stderr naming the variable, and exit status 2.
    """

    def __init__(self) -> None:
        self._app: QuartTrio | None = None

    def build(self) -> QuartTrio:
        """The app, built from the environment on first use (raises :class:`SettingsError`)."""
        if self._app is None:
            settings = Settings.from_env()
            _configure_logging(settings.log_level)
            self._app = create_app(settings)
        return self._app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            app = self.build()
        except SettingsError as exc:
            _exit_on_bad_settings(exc)
        await app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.build(), name)


app = _AppFromEnvironment()
