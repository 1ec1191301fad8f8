"""Fault injection over real sockets, for the fault tests of either store and the backplane."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

__all__ = ["CuttableProxy", "children_of", "free_port", "wait_ready"]


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL, Redis) that a test can cut
    (every connection dropped, new ones refused) and restore on the same port: an outage
    without touching the machine's server."""

    def __init__(self, nursery: trio.Nursery, target_port: int, *, delay: float = 0.0) -> None:
        self.nursery = nursery
        self.target_port = target_port
        #: seconds each chunk waits before it is passed on (a slow network)
        self.delay = delay
        self.port = 0
        self._scope: trio.CancelScope | None = None

    async def start(self) -> None:
        self._scope = await self.nursery.start(self._serve)

    async def _serve(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as pipes:
                task_status.started(scope)
                await trio.serve_listeners(self._pipe, listeners, handler_nursery=pipes)

    async def _pipe(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.target_port) as server:
            async def copy(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                async for chunk in src:
                    if self.delay:
                        await trio.sleep(self.delay)
                    await dst.send_all(chunk)
                raise _Closed()  # one side hung up: end both directions

            try:
                async with trio.open_nursery() as both:
                    both.start_soon(copy, client, server)
                    both.start_soon(copy, server, client)
            except* (_Closed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def cut(self) -> None:
        assert self._scope is not None
        self._scope.cancel()


class _Closed(Exception):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def wait_ready(url: str, process: trio.Process, path: str = "/readyz") -> None:
    """Poll ``url + path`` until it answers 200; fails if ``process`` exits meanwhile."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while True:
            assert process.returncode is None, "the server exited during start-up"
            try:
                if (await http.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.05)
