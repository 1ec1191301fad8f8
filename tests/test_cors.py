"""CORS (``TRIONET_CORS_ORIGINS``): the decisions as plain functions, the headers of a live
server, and a page on another origin in real Chromium."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio
from api_helpers import quick_user

from trionet.asgi.cors import applies, cors_headers, preflight_headers
from trionet.settings import Settings, SettingsError
from trionet.testing import TestServer, TestUser, running_server

APP = "http://app.example:3000"
ALLOWED = frozenset({APP})
CHROMIUM = Path("/usr/bin/chromium")
HAS_CHROMIUM = CHROMIUM.exists()


def test_the_decisions() -> None:
    assert applies("/api/me") and applies("/api/conversations/read")
    assert not applies("/api/server/notify") and not applies("/ws") and not applies("/")
    assert cors_headers(APP, ALLOWED) == [
        (b"access-control-allow-origin", APP.encode()),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"Retry-After")]
    assert cors_headers(APP + "/", ALLOWED)[0][1] == (APP + "/").encode()
    assert cors_headers("HTTP://APP.EXAMPLE:3000", ALLOWED)  # browsers send lower case
    assert cors_headers("http://evil.example", ALLOWED) == []
    assert cors_headers(None, ALLOWED) == []
    names = [name for name, _ in preflight_headers(APP, ALLOWED)]
    assert b"access-control-allow-methods" in names and b"access-control-max-age" in names
    assert preflight_headers("http://evil.example", ALLOWED) == []


def test_the_setting_lists_origins_and_never_a_wildcard() -> None:
    env = {"TRIONET_CORS_ORIGINS": f"{APP}, https://web.example/"}
    assert Settings.from_env(environ=env).cors_origins == (APP, "https://web.example")
    for bad in ("*", f"{APP},*", "app.example"):
        with pytest.raises(SettingsError, match="TRIONET_CORS_ORIGINS"):
            Settings.from_env(environ={"TRIONET_CORS_ORIGINS": bad})


@pytest.fixture
async def cors_server() -> Any:
    async with running_server(Settings(rate_limit=0, cors_origins=(APP,),
                                       api_key="k" * 32)) as server:
        yield server


async def test_a_listed_origin_gets_credentials_others_get_nothing(
    cors_server: TestServer
) -> None:
    alice = await quick_user(cors_server, "alice")
    with trio.fail_after(10):
        async with cors_server.http(alice) as http:
            r = await http.options("/api/conversations/read", headers={
                "Origin": APP, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == APP
            assert r.headers["access-control-allow-credentials"] == "true"
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "Content-Type" in r.headers["access-control-allow-headers"]
            r = await http.options("/api/me", headers={
                "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
            assert r.status_code == 403 and "access-control-allow-origin" not in r.headers

            r = await http.get("/api/me", headers={"Origin": APP})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
            assert r.headers["access-control-allow-credentials"] == "true"
            assert "Origin" in r.headers["vary"]
            r = await http.get("/api/me", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            # a state-changing call from the listed origin passes the Origin check ...
            r = await http.post("/api/groups", json={"name": "From the app"},
                                headers={"Origin": APP})
            assert r.status_code == 201 and r.headers["access-control-allow-origin"] == APP
            # ... one from elsewhere does not
            r = await http.post("/api/groups", json={"name": "Forged"},
                                headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            # the server API and the chat page are not opened to other origins
            r = await http.post("/api/server/broadcast", json={"content": "x"},
                                headers={"Origin": APP, "Authorization": "Bearer " + "k" * 32})
            assert "access-control-allow-origin" not in r.headers
            r = await http.get("/", headers={"Origin": APP})
            assert "access-control-allow-origin" not in r.headers


async def test_without_the_setting_there_are_no_cors_headers(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    async with server.http(alice) as http:
        r = await http.get("/api/me", headers={"Origin": APP})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


# -- a page on another origin, in real Chromium ---------------------------------------------------

PAGE = """<!doctype html><title>loading</title><script>
fetch(new URLSearchParams(location.search).get("api") + "/api/me", {credentials: "include"})
  .then((r) => r.json()).then((me) => { document.title = "me:" + me.username; })
  .catch(() => { document.title = "blocked"; });
</script>"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def other_origin() -> Iterator[str]:
    """A plain page server on 127.0.0.1 at another port: another origin, the same site."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def page_title(api: str, page: str, user: TestUser) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "trionet_session", "value": user.token,
                                  "url": api}])
            tab = context.new_page()
            tab.goto(f"{page}/?api={api}")
            tab.wait_for_function("document.title !== 'loading'", timeout=10_000)
            return str(tab.title())
        finally:
            browser.close()


@pytest.mark.slow
async def test_a_page_on_a_listed_origin_calls_the_api_with_its_cookie(other_origin: str) -> None:
    if not HAS_CHROMIUM:  # never skipped: scripts/test installs it
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test does, as root)")
    for listed, expected in ((True, "me:alice"), (False, "blocked")):
        settings = Settings(rate_limit=0, cors_origins=(other_origin,) if listed else ())
        async with running_server(settings, port=free_port()) as server:
            alice = await quick_user(server, "alice")
            with trio.fail_after(30):
                title = await trio.to_thread.run_sync(page_title, server.url, other_origin,
                                                      alice)
            assert title == expected, listed
