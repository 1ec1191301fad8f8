"""Serving an app with hypercorn's trio worker, in this process.

The listening socket is made here so the kernel can abort a connection whose writes stall
(``TCP_USER_TIMEOUT``): hypercorn's socket writes cannot be cancelled, so a client that stops
reading would otherwise pin its writer task forever.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from .realtime._hypercorn_fixes import PING_SWEEP_ATTRIBUTE
from .realtime.pings import PingSweep
from .services import services_of
from .settings import Settings

__all__ = ["hypercorn_config", "listening_socket", "serve", "wait_for_signal"]

log = logging.getLogger("trionet.server")


def listening_socket(host: str, port: int, *, tcp_user_timeout: float,
                     reuse_port: bool = False) -> socket.socket:
    """A bound, listening TCP socket; accepted sockets inherit ``TCP_USER_TIMEOUT``.
    ``reuse_port``: share the port with the other workers (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if tcp_user_timeout > 0 and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(tcp_user_timeout * 1000))
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def hypercorn_config(settings: Settings, sock: socket.socket | None = None) -> HyperConfig:
    """The hypercorn settings trionet needs (limits, pings, timeouts)."""
    config = HyperConfig()
    if sock is not None:
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
    else:
        config.bind = [f"{settings.host}:{settings.port}"]
    config.websocket_max_message_size = settings.max_message_bytes
    config.websocket_ping_interval = settings.ping_interval
    config.read_timeout = int(settings.read_timeout)
    config.graceful_timeout = settings.shutdown_timeout
    config.backlog = 1024
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    if settings.redis_url:  # start-up waits for Redis as long as it takes (and says so)
        config.startup_timeout = 7 * 24 * 3600
    return config


async def wait_for_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s; shutting down", signal.Signals(signum).name)
            return


async def serve(
    app: QuartTrio,
    settings: Settings,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns (default: SIGINT/SIGTERM).

    At shutdown every client is closed with 1001 and the committer is flushed before
    hypercorn stops; ``task_status`` receives the bound URLs. ``reuse_port``: one of several
    workers on one port (``trionet serve --workers N``).
    """
    services = services_of(app)
    sock = listening_socket(
        settings.host, settings.port, tcp_user_timeout=settings.tcp_user_timeout,
        reuse_port=reuse_port,
    )
    config = hypercorn_config(settings, sock)
    trigger = shutdown_trigger or wait_for_signal

    stopping: list[tuple[float, int]] = []

    async def shutdown() -> None:
        await trigger()
        started = time.monotonic()
        stopping.append((started, await services.drain(1001)))

    # one task pings every WebSocket (rather than hypercorn's task per connection)
    pings = PingSweep(settings.ping_interval)
    setattr(config, PING_SWEEP_ATTRIBUTE, pings)
    services.pings = pings
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(pings.run)
            try:
                await hypercorn_serve(app, config, shutdown_trigger=shutdown,
                                      task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()
    finally:
        services.pings = None
        sock.close()
    if stopping:
        started, closed = stopping[0]
        log.info("shutdown complete in %.2f s: %d client%s closed", time.monotonic() - started,
                 closed, "" if closed == 1 else "s")
