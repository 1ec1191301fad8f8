"""One JSON error shape for the whole API: never an HTML page, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart_trio import QuartTrio

from trionet.app import create_app
from trionet.server import serve
from trionet.settings import Settings
from trionet.testing import TestServer

MIB = 1024 * 1024


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, dict[str, Any]] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@asynccontextmanager
async def serving(app: QuartTrio, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` on a free port for the block; yields a client for it."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        (url,) = await nursery.start(partial(serve, app, settings, shutdown_trigger=stop.wait))
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                yield client
        finally:
            stop.set()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database=str(tmp_path / "trionet.db"), host="127.0.0.1", port=0,
                    rate_limit=0)


async def test_unknown_path_is_a_json_404(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.get("/no/such/thing")
            api = await client.post("/api/nope", json={})
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"
    assert "<" not in response.text  # no HTML anywhere
    assert api.status_code == 404 and _error(api)["code"] == "not_found"


async def test_wrong_method_is_a_json_405_with_allow(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            get_login = await client.get("/api/auth/login")
            delete_me = await client.delete("/api/me")
    assert get_login.status_code == 405
    assert _error(get_login)["code"] == "method_not_allowed"
    assert "POST" in {m.strip() for m in get_login.headers["Allow"].split(",")}
    assert delete_me.status_code == 405
    assert "GET" in {m.strip() for m in delete_me.headers["Allow"].split(",")}


async def test_a_body_over_one_mib_is_a_json_413(server: TestServer) -> None:
    big = b'{"username": "' + b"a" * (MIB + 10) + b'", "password": "x"}'
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.post("/api/auth/register", content=big,
                                         headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


async def test_a_chunked_body_over_one_mib_is_a_json_413(server: TestServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "'
        for _ in range(20):
            yield b"a" * (64 * 1024)
        yield b'", "password": "x"}'

    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.post("/api/auth/register", content=chunks(),
                                         headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


async def test_an_unexpected_exception_is_a_json_500_without_a_traceback(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    @app.route("/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals: /etc/passwd line 42")

    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="trionet"):
        async with serving(app, settings) as client:
            response = await client.get("/boom")
            after = await client.get("/healthz")
    assert response.status_code == 500
    assert _error(response) == {"code": "internal", "message": "internal server error"}
    assert "Traceback" not in response.text and "secret internals" not in response.text
    assert after.status_code == 200  # the server lives on
    assert any("secret internals" in str(r.exc_info) for r in caplog.records)  # logged


async def test_an_http_error_raised_by_a_handler_keeps_the_shape(settings: Settings) -> None:
    from werkzeug.exceptions import ServiceUnavailable

    app = create_app(settings)

    @app.route("/busy")
    async def busy() -> str:
        raise ServiceUnavailable()

    with trio.fail_after(10):
        async with serving(app, settings) as client:
            response = await client.get("/busy")
    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"

