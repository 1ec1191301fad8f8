"""The application factory, and ``app`` for ``hypercorn --worker-class trio trionet.app:app``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import trio
from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .api import register_blueprints
from .asgi import AddressLimit, BodyBeforeResponse
from .asgi.cors import Cors
from .core import protocol
from .core.errors import ApiError, ErrorCode
from .interfaces import GroupMemberFetcher, MessagePersister, SessionResolver
from .realtime import _hypercorn_fixes
from .realtime.messagetypes import MessageType
from .services import Services, services_of
from .settings import Settings, SettingsError
from .store import StoreUnavailable

#: ``Services`` and ``services_of`` live in :mod:`trionet.services`; they stay importable here
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

    Patches hypercorn (once per process: :mod:`trionet.realtime._hypercorn_fixes`), after
    checking it has every name trionet patches or reaches. Raises
    :class:`~trionet.settings.SettingsError` on a bad ``TRIONET_*`` value, or when a name is missing
    (:class:`~trionet.realtime._hypercorn_fixes.IncompatibleHypercorn`, naming it)."""
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

    register_blueprints(app)
    app.asgi_app = BodyBeforeResponse(  # type: ignore[assignment]
        app.asgi_app,  # type: ignore[arg-type]
        timeout=settings.body_timeout, max_bytes=MAX_BODY_BYTES)
    if settings.cors_origins:
        app.asgi_app = Cors(app.asgi_app, settings.cors_origins)  # type: ignore[assignment, arg-type]
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
