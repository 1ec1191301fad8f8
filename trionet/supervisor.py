"""``trionet serve --workers N``: N worker processes on one port, each a node of the backplane.

The supervisor (this process) serves nothing itself. It reserves the port (a bound
``SO_REUSEPORT`` socket, which also resolves port 0), then starts N ``trionet serve --worker``
processes that each listen on it with ``SO_REUSEPORT``: the kernel spreads new connections
over them. Each worker is a whole trionet node (its own manager, committer and Redis
backplane node) in its own session, so a terminal's Ctrl-C reaches only the supervisor, which
passes a graceful stop (SIGTERM: every client closed with 1001, everything written) to every
worker and waits for them. A worker that exits on its own is started again after a second; one
that cannot even start (it exits within :data:`EARLY_EXIT_SECONDS`, :data:`EARLY_EXITS` times
in a row) stops the whole server, with its exit status.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence

import trio

from .settings import Settings

__all__ = ["supervise", "reserve_port", "stop_signal_or_orphaned", "EARLY_EXITS",
           "EARLY_EXIT_SECONDS"]

log = logging.getLogger("trionet.supervisor")

#: a worker that exits this soon after starting did not start
EARLY_EXIT_SECONDS = 5.0
#: this many early exits of one worker in a row stop the server
EARLY_EXITS = 3
#: seconds between a worker's exit and its restart
RESTART_DELAY = 1.0


#: how often a worker checks that its supervisor is still its parent
ORPHAN_CHECK_SECONDS = 0.5


async def stop_signal_or_orphaned(supervisor: int) -> None:
    """A worker's shutdown trigger: returns on SIGINT or SIGTERM, or once the supervisor (pid
    ``supervisor``) is no longer its parent (it died, SIGKILL included): no worker outlives
    its supervisor, and each one stops gracefully. (``PR_SET_PDEATHSIG`` would not do: it
    fires when the *thread* that started the worker exits, and trio starts processes from
    worker threads that end when idle.)"""
    from .server import wait_for_signal

    async with trio.open_nursery() as nursery:

        async def orphaned() -> None:
            while os.getppid() == supervisor:  # noqa: ASYNC110 (nothing to wait on)
                await trio.sleep(ORPHAN_CHECK_SECONDS)
            log.error("the supervisor (pid %d) is gone: this worker stops", supervisor)
            nursery.cancel_scope.cancel()

        async def signalled() -> None:
            await wait_for_signal()
            nursery.cancel_scope.cancel()

        nursery.start_soon(orphaned)
        nursery.start_soon(signalled)


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) ``SO_REUSEPORT`` socket holding ``host:port`` for the workers'
    listening sockets (port 0: a free one, read from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _Worker:
    def __init__(self, number: int, command: Sequence[str], env: dict[str, str]) -> None:
        self.number = number
        self.command = list(command)
        self.env = env
        self.process: trio.Process | None = None
        self.early_exits = 0

    async def run(self, stopping: trio.Event, failed: list[int]) -> None:
        """Run the worker, again after it exits, until ``stopping`` is set."""
        while not stopping.is_set():
            started = time.monotonic()
            self.process = await trio.lowlevel.open_process(
                self.command, env=self.env, start_new_session=True)
            log.info("worker %d started (pid %d)", self.number, self.process.pid)
            if stopping.is_set():  # the stop came while it was starting
                self.signal(signal.SIGTERM)
            code = await self.process.wait()
            if stopping.is_set():
                log.info("worker %d stopped (exit status %d)", self.number, code)
                return
            early = time.monotonic() - started < EARLY_EXIT_SECONDS
            self.early_exits = self.early_exits + 1 if early else 0
            log.error("worker %d (pid %d) exited with status %d%s", self.number,
                      self.process.pid, code, "; restarting it" if self.early_exits
                      < EARLY_EXITS else "")
            if self.early_exits >= EARLY_EXITS:
                failed.append(code or 1)
                stopping.set()
                return
            await trio.sleep(RESTART_DELAY)

    def signal(self, signum: int) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass


async def supervise(settings: Settings, workers: int) -> int:
    """Serve on ``settings.host:port`` with ``workers`` processes until SIGINT or SIGTERM;
    returns the exit status."""
    reserved = reserve_port(settings.host, settings.port)
    port = reserved.getsockname()[1]
    env = {**os.environ, "TRIONET_HOST": settings.host, "TRIONET_PORT": str(port),
           "TRIONET_DATABASE": settings.database}
    command = [sys.executable, "-m", "trionet", "serve", f"--worker-of={os.getpid()}"]
    pool = [_Worker(n, command, env) for n in range(1, workers + 1)]
    stopping = trio.Event()
    failed: list[int] = []
    log.info("serving on http://%s:%d with %d worker processes", settings.host, port, workers)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                for worker in pool:
                    nursery.start_soon(worker.run, stopping, failed)

                async def on_signal() -> None:
                    async for signum in signals:
                        log.info("received %s; stopping every worker gracefully",
                                 signal.Signals(signum).name)
                        stopping.set()
                        return

                nursery.start_soon(on_signal)
                await stopping.wait()
                for worker in pool:
                    worker.signal(signal.SIGTERM)
                # every worker drains within its shutdown timeout; then they are killed
                with trio.move_on_after(settings.shutdown_timeout + 10) as waited:
                    for worker in pool:
                        if worker.process is not None:
                            await worker.process.wait()
                if waited.cancelled_caught:
                    for worker in pool:
                        worker.signal(signal.SIGKILL)
                nursery.cancel_scope.cancel()
    finally:
        reserved.close()
    return failed[0] if failed else 0

