"""The chat page at ``/``, in real Chromium (Playwright) and over plain HTTP.

Two browser contexts are two people on a trionet started by the test, on 127.0.0.1 only.
Playwright's sync API runs in a worker thread (it cannot run inside trio); the thread calls
back into trio (``trio.from_thread.run``) to stop and start the server.

Every page is watched (:class:`Problems`): a console error, a failed request, a dialog or a
script error fails the test, unless the step that causes it on purpose names exactly it. The
page's looks are checked too: WCAG AA contrast of every visible text, in several states.

Set ``TRIONET_SCREENSHOTS=1`` to rewrite ``docs/images/chat-alice.png`` and ``chat-bob.png``
(the README shows one) from the run; otherwise screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from contrast import RGBA, contrast_ratio, effective_background, minimum_ratio, parse_color

from trionet.api.web import STATIC_DIR, content_security_policy
from trionet.testing import TestServer, TestUser, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"

HAS_CHROMIUM = CHROMIUM.exists()


@pytest.fixture
def chromium_installed() -> None:
    """The browser tests never skip: without Chromium they fail, saying how to get it."""
    if not HAS_CHROMIUM:
        pytest.fail("Chromium is missing: scripts/test installs it (apt-get install -y chromium)")


needs_chromium = pytest.mark.usefixtures("chromium_installed")


# -- the page over plain HTTP ------------------------------------------------------------------


async def test_page_is_served_at_root_with_a_strict_csp(server: TestServer) -> None:
    async with server.http() as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    host = server.url.removeprefix("http://")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert f"connect-src 'self' ws://{host} wss://{host}" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/static/app.js">' in response.text


async def test_page_files_are_served_with_their_types_and_the_csp(server: TestServer) -> None:
    files = sorted(p.name for p in STATIC_DIR.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(files)
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
             ".html": "text/html"}
    async with server.http() as http:
        for name in files:
            response = await http.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(types[Path(name).suffix]), name
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_page_has_no_inline_code_and_never_inserts_html() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    for script in STATIC_DIR.glob("*.js"):
        code = script.read_text()
        assert not re.search(r"\.innerHTML\s*=|outerHTML|insertAdjacentHTML|document\.write"
                             r"|\beval\(", code), script.name
        assert code.startswith("// "), f"{script.name} needs its comment at the top"


def test_csp_names_only_a_plain_host() -> None:
    assert "ws://chat.example:8443" in content_security_policy("chat.example:8443")
    assert "ws://[::1]:8000" in content_security_policy("[::1]:8000")
    for bad in ("evil; script-src *", "a b", "x'y", None):
        csp = content_security_policy(bad)
        assert "connect-src 'self';" in csp and "script-src 'self';" in csp


# -- the server, stopped and started from the browser thread -----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Servers:
    """trionet on a fixed port and database, which the browser thread can restart."""

    nursery: trio.Nursery
    database: Path
    running: list[tuple[trio.Event, trio.Event]] = field(default_factory=list)

    async def start(self, port: int) -> TestServer:
        stop, done = trio.Event(), trio.Event()

        async def run(*, task_status: trio.TaskStatus[TestServer]) -> None:
            try:
                async with running_server(database=self.database, port=port) as server:
                    task_status.started(server)
                    await stop.wait()
            finally:
                done.set()

        server: TestServer = await self.nursery.start(run)
        self.running.append((stop, done))
        return server

    async def stop(self) -> None:
        """Shut the last started server down (its clients get 1001)."""
        stop, done = self.running.pop()
        stop.set()
        with trio.fail_after(15):
            await done.wait()

    async def traffic_while_down(self, sender: str, to: str, group: str) -> None:
        """With the page's server down: through another port on the same database, ``sender``
        writes to ``to`` privately and to the group, and ``to`` gets a notification."""
        side = await self.start(free_port())
        async with side.http() as http:
            login = (await http.post("/api/auth/login",
                                     json={"username": sender, "password": PASSWORD})).json()
        user = TestUser(id=login["id"], username=sender, token=login["token"])
        async with side.http(user) as http:
            recipient = (await http.get("/api/users", params={"username": to})).json()["users"][0]
            group_id = next(g["id"] for g in (await http.get("/api/groups")).json()["groups"]
                            if g["name"] == group)
        async with side.connect(user) as ws:
            frames = [
                {"type": "private", "to": recipient["id"], "content": "Sent while you were away"},
                {"type": "group", "group_id": group_id,
                 "content": "Group news while you were away"},
            ]
            for i, frame in enumerate(frames):
                await side.send_json(ws, {**frame, "client_id": f"away-{i}"})
                assert (await side.receive_json(ws))["type"] == "ack"
        await side.services.manager.notify(recipient["id"], "friend_request",
                                           "carol wants to be your friend")
        await self.stop()


# -- the scenario, in the browser thread --------------------------------------------------------


@dataclass
class Problems:
    """What went wrong on the pages :meth:`watch` watches: dialogs, script errors, console
    errors, and requests that failed (a network error, or an HTTP status of 400 or more).

    A step that makes a request fail on purpose (a wrong password, a stopped server) names
    exactly what it expects with :meth:`expecting`, for as long as the step lasts; any other
    problem, and those same ones outside the step, stay in ``found``.
    """

    found: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def add(self, problem: str) -> None:
        if not any(pattern.fullmatch(problem) for pattern in self.expected):
            self.found.append(problem)

    @contextmanager
    def expecting(self, *patterns: str) -> Iterator[None]:
        compiled = [re.compile(pattern) for pattern in patterns]
        self.expected.extend(compiled)
        try:
            yield
        finally:
            for pattern in compiled:
                self.expected.remove(pattern)

    def watch(self, page: Page) -> None:
        def console(message: Any) -> None:
            if message.type == "error":
                self.add(f"console error: {message.text} at {message.location.get('url')}")

        def response(answer: Any) -> None:
            if answer.status >= 400:
                self.add(f"HTTP {answer.status}: {answer.request.method} {answer.url}")

        def dialog(box: Any) -> None:
            self.add(f"dialog: {box.message}")
            box.dismiss()

        page.on("dialog", dialog)
        page.on("pageerror", lambda error: self.add(f"script error: {error}"))
        page.on("console", console)
        page.on("requestfailed", lambda request: self.add(
            f"request failed: {request.method} {request.url}: {request.failure}"))
        page.on("response", response)

    def assert_none(self, *pages: Page) -> None:
        """No problem so far, on any page (each page is asked a round trip first, so what it
        reported before has arrived)."""
        for page in pages:
            page.evaluate("0")
        assert not self.found, "problems on the page:\n" + "\n".join(self.found)


def failed_login(base: str) -> tuple[str, str]:
    """The two problems a wrong password makes: its 401, and the console line about it."""
    url = re.escape(f"{base}/api/auth/login")
    return (rf"HTTP 401: POST {url}",
            rf"console error: Failed to load resource: the server responded with a status of"
            rf" 401 \([A-Za-z ]*\) at {url}")


def server_down(base: str) -> tuple[str, ...]:
    """The problems a page's reconnecting makes while its server is down: WebSocket handshakes
    that fail (logged by Chromium from trionet-client.js) and the session probe after each."""
    host = re.escape(base.removeprefix("http://"))
    session = re.escape(f"{base}/api/session")
    gone = r"net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)"
    return (rf"console error: WebSocket connection to 'ws://{host}/ws\?[^']*' failed: .*"
            rf" at {re.escape(base)}/static/trionet-client\.js",
            rf"request failed: GET {session}: {gone}",
            rf"console error: Failed to load resource: {gone} at {session}")


def open_person(browser: Browser, base: str, problems: Problems) -> Page:
    """A fresh person (browser context) on the page, signed out; what goes wrong on it goes
    to ``problems``."""
    context = browser.new_context(viewport={"width": 1040, "height": 660})
    page = context.new_page()
    page.set_default_timeout(5_000)
    problems.watch(page)
    page.goto(base + "/")
    return page


def register(page: Page, username: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#me")).to_have_text(username)
    expect(page.locator("#connection")).to_have_text("online")


def say(page: Page, text: str) -> None:
    """Type a message and press Enter."""
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def texts(page: Page) -> Any:
    return page.locator("#messages .msg .text")


def once(page: Page, text: str) -> Any:
    """The one message with exactly ``text`` (fails on none or a duplicate, when asserted)."""
    return page.locator("#messages .msg", has=page.get_by_text(text, exact=True))


def scenario(servers: Servers, port: int, shots: Path,
             run: Callable[..., Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = f"http://127.0.0.1:{port}"
    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            alice = open_person(browser, base, problems)
            bob = open_person(browser, base, problems)
            expect(alice.get_by_role("button", name="Log in")).to_be_visible()
            problems.assert_none(alice, bob)  # a signed-out load logs no error (no 401)
            register(alice, "alice")
            register(bob, "bob")

            # alice creates a group and invites bob: his bell counts it, the invite shows
            alice.get_by_label("New group").fill("Book club")
            alice.get_by_role("button", name="Create").click()
            expect(alice.locator("#pane-title")).to_have_text("Book club")
            alice.locator("#invite-name").fill("bob")
            alice.locator("#invite-name").press("Enter")
            expect(alice.locator("#pane-status")).to_have_text("Invited bob.")
            expect(bob.locator("#bell-count")).to_have_text("1")
            expect(bob.locator("#invite-list")).to_contain_text("Book club from alice")
            bob.locator("#bell").click()
            unread = bob.locator("#notification-list li.unread .text")
            expect(unread).to_have_text(["You were invited to join group 'Book club'"])
            bob.get_by_role("button", name="Mark all read").click()
            expect(bob.locator("#bell-count")).to_be_hidden()
            expect(bob.locator("#notification-list li.read")).to_have_count(1)
            bob.keyboard.press("Escape")
            expect(bob.locator("#notifications")).to_be_hidden()
            bob.locator("#invite-list").get_by_role("button", name="Accept").click()
            expect(bob.locator("#pane-title")).to_have_text("Book club")

            # group messages, each seen live by the other
            say(alice, "Hello book club! First pick: Dune?")
            expect(once(bob, "Hello book club! First pick: Dune?")).to_have_count(1)
            expect(alice.locator("#messages .msg.mine .state")).to_have_text(["sent"])
            say(bob, "Dune sounds great.")
            expect(once(alice, "Dune sounds great.")).to_have_count(1)

            # private messages: alice opens a chat by name, bob sees it in his sidebar
            alice.get_by_label("Message a user").fill("bob")
            alice.get_by_label("Message a user").press("Enter")
            expect(alice.locator("#pane-title")).to_have_text("bob")
            expect(alice.locator("#pane-presence")).to_have_text("online")
            say(alice, "Tea or coffee at the meeting?")
            person = bob.locator("#people-list a", has_text="alice")
            expect(person.locator(".badge")).to_have_text("1")
            expect(person.locator(".dot")).to_have_class(re.compile(r"\bonline\b"))
            person.click()
            expect(once(bob, "Tea or coffee at the meeting?")).to_have_count(1)
            say(bob, "Tea, always.")
            expect(once(alice, "Tea, always.")).to_have_count(1)

            # typing goes out; a server without the typing extension answers unknown_type,
            # which the page ignores quietly (test_typing_shows_on_the_other_page checks
            # that alice sees it once the server relays it)
            bob.locator("#composer-input").press_sequentially("Also bring bis")
            say(bob, "Also bring biscuits.")
            expect(once(alice, "Also bring biscuits.")).to_have_count(1)
            expect(bob.locator("#connection")).to_have_text("online")
            expect(bob.locator("#messages .msg.failed")).to_have_count(0)

            # the XSS string is text, on both sides
            say(alice, XSS)
            expect(once(bob, XSS)).to_have_count(1)
            expect(texts(alice).last).to_have_text(XSS)
            expect(bob.locator("#messages img")).to_have_count(0)
            say(alice, "(that was a test: it should show as plain text)")
            expect(once(bob, "(that was a test: it should show as plain text)")).to_have_count(1)
            alice.screenshot(path=str(shots / "chat-alice.png"))
            bob.screenshot(path=str(shots / "chat-bob.png"))

            # alice reloads: the same conversation, its history from the server
            alice.reload()
            expect(alice.locator("#pane-title")).to_have_text("bob")
            expect(texts(alice)).to_have_text(
                ["Tea or coffee at the meeting?", "Tea, always.", "Also bring biscuits.", XSS,
                 "(that was a test: it should show as plain text)"])
            expect(alice.locator("#messages .msg.mine .state")).to_have_text(["sent"] * 3)

            # the server restarts (same port, same database) while both pages are open:
            # only then may their reconnects fail
            problems.assert_none(alice, bob)
            with problems.expecting(*server_down(base)):
                run(servers.stop)
                for page in (alice, bob):
                    expect(page.locator("#offline-banner")).to_be_visible()
                say(alice, "Written while the server was down")
                expect(alice.locator("#messages .msg.mine .state").last
                       ).to_have_text("sending…")
                run(servers.traffic_while_down, "bob", "alice", "Book club")
                run(servers.start, port)
                for page in (alice, bob):  # reconnect with backoff, then resume from `since`
                    expect(page.locator("#offline-banner")).to_be_hidden(timeout=15_000)
                problems.assert_none(alice, bob)  # the failed reconnects, and nothing else
            expect(once(alice, "Sent while you were away")).to_have_count(1)
            expect(alice.locator("#messages .msg.mine .state").last).to_have_text("sent")
            expect(once(bob, "Written while the server was down")).to_have_count(1)
            expect(once(bob, "Sent while you were away")).to_have_count(1)  # his other device
            expect(alice.locator("#bell-count")).to_have_text("1")
            expect(alice.locator("#group-list a", has_text="Book club").locator(".badge")
                   ).to_have_text("1")
            say(bob, "Back online.")
            expect(once(alice, "Back online.")).to_have_count(1)
            alice.locator("#group-list a", has_text="Book club").click()
            expect(once(alice, "Group news while you were away")).to_have_count(1)
            expect(texts(alice)).to_have_count(3)

            # alice logs out (bob sees her go offline) and logs in again
            bob.locator("#people-list a", has_text="alice").click()
            expect(bob.locator("#pane-presence")).to_have_text("online")
            alice.get_by_role("button", name="Log out").click()
            expect(alice.get_by_role("button", name="Log in")).to_be_visible()
            expect(bob.locator("#pane-presence")).to_have_text("offline")
            alice.get_by_label("Username").fill("alice")
            alice.get_by_label("Password").fill(PASSWORD)
            alice.get_by_label("Password").press("Enter")
            expect(alice.locator("#connection")).to_have_text("online")
            expect(bob.locator("#pane-presence")).to_have_text("online")

            # a narrow window: the sidebar stacks above the conversation
            bob.set_viewport_size({"width": 380, "height": 720})
            sidebar = bob.locator(".sidebar").bounding_box()
            composer = bob.locator("#composer").bounding_box()
            assert sidebar is not None and composer is not None
            assert composer["y"] > sidebar["y"] + sidebar["height"] - 1
            assert composer["x"] + composer["width"] <= 381
            bob.screenshot(path=str(shots / "chat-bob-narrow.png"))
            # no alert() from the XSS string, no script or console error, no failed request
            problems.assert_none(alice, bob)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_two_people_chat_live_and_miss_nothing_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    shots = tmp_path / "shots"
    shots.mkdir()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            servers = Servers(nursery, tmp_path / "chat.db")
            await servers.start(port)
            await trio.to_thread.run_sync(scenario, servers, port, shots, trio.from_thread.run)
            await servers.stop()
    if os.environ.get("TRIONET_SCREENSHOTS"):
        for name in ("chat-alice.png", "chat-bob.png"):
            shutil.copy(shots / name, ROOT / "docs" / "images" / name)


# -- frames pushed by the server: typing, broadcasts, presence ----------------------------------


def open_as(browser: Browser, url: str, user: TestUser, other: TestUser,
            problems: Problems) -> Page:
    """A page signed in as ``user`` (its session cookie), showing the chat with ``other``;
    what goes wrong on it goes to ``problems``."""
    from playwright.sync_api import expect

    context = browser.new_context()
    context.add_cookies([{"name": "trionet_session", "value": user.token, "url": url}])
    page = context.new_page()
    page.set_default_timeout(5_000)
    problems.watch(page)
    page.goto(f"{url}/#/user/{other.id}")
    expect(page.locator("#connection")).to_have_text("online")
    expect(page.locator("#pane-title")).to_have_text(other.username)
    return page


def pushed_frames_scenario(server: TestServer, alice: TestUser, bob: TestUser, group: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    push = server.services.manager

    def to_alice(frame: dict[str, Any]) -> None:
        trio.from_thread.run(push.send_to_user, alice.id, frame)

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_as(browser, server.url, alice, bob, problems)
            typing = page.locator("#typing")
            to_alice({"type": "typing", "from": bob.id, "to": alice.id})
            expect(typing).to_have_text("bob is typing…")
            expect(typing).to_have_text("", timeout=6_000)  # about 3 s after the last frame
            to_alice({"type": "typing", "from": bob.id, "group_id": group})
            page.wait_for_timeout(300)
            expect(typing).to_have_text("")  # that group is not the open conversation
            page.locator("#group-list a", has_text="Readers").click()
            to_alice({"type": "typing", "from": bob.id, "group_id": group})
            expect(typing).to_have_text("bob is typing…")

            to_alice({"type": "broadcast", "from": None, "content": f"Maintenance {XSS}",
                      "timestamp": "2026-11-26T02:36:45.001Z"})
            expect(page.locator("#broadcast-banner")).to_be_visible()
            expect(page.locator("#broadcast-text")).to_have_text(f"Maintenance {XSS}")
            page.get_by_role("button", name="Dismiss announcement").click()
            expect(page.locator("#broadcast-banner")).to_be_hidden()

            page.goto(f"{server.url}/#/user/{bob.id}")
            expect(page.locator("#pane-presence")).to_have_text("offline")
            to_alice({"type": "presence", "user_id": bob.id, "online": True,
                      "timestamp": "2026-11-26T02:36:45.001Z"})
            expect(page.locator("#pane-presence")).to_have_text("online")
            expect(page.locator("#pane-presence .dot")).to_have_attribute("aria-label", "online")
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_page_shows_typing_broadcasts_and_presence_pushed_to_it() -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        group = await server.create_group("Readers", alice, [bob])
        with trio.fail_after(60):
            await trio.to_thread.run_sync(pushed_frames_scenario, server, alice, bob, group)


# -- history paged backwards ---------------------------------------------------------------------


def history_scenario(url: str, alice: TestUser, bob: TestUser, total: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_as(browser, url, alice, bob, problems)
            shown = page.locator("#messages .msg .text")
            expect(shown).to_have_count(50)  # the newest page, scrolled to its end
            expect(shown.last).to_have_text(f"m{total - 1}")
            for count in (100, total):  # scrolling to the top fetches the page before it
                page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
                expect(shown).to_have_count(count)
            assert shown.all_text_contents() == [f"m{i}" for i in range(total)]
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_history_pages_backwards_as_the_list_scrolls_up() -> None:
    total = 120
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(30):
            async with server.connect(bob) as ws:
                for i in range(total):
                    await server.send_json(ws, {"type": "private", "to": alice.id,
                                                "content": f"m{i}", "client_id": str(i)})
                    assert (await server.receive_json(ws))["type"] == "ack"
            # the page's socket resumes from 3 s before it opened (app.js) and would show what
            # was sent within them as well: only history pages may fill this list
            await trio.sleep(3.2)
            await trio.to_thread.run_sync(history_scenario, server.url, alice, bob, total)


# -- typing end to end (the server's typing extension) ------------------------------------------


def typing_scenario(url: str, alice: TestUser, bob: TestUser) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            at_alice = open_as(browser, url, alice, bob, problems)
            at_bob = open_as(browser, url, bob, alice, problems)
            at_bob.locator("#composer-input").press_sequentially("Let me th")
            expect(at_alice.locator("#typing")).to_have_text("bob is typing…")
            expect(at_alice.locator("#typing")).to_have_text("", timeout=6_000)
            problems.assert_none(at_alice, at_bob)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_typing_shows_on_the_other_page() -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(60):
            await trio.to_thread.run_sync(typing_scenario, server.url, alice, bob)


# -- unread counts and read receipts --------------------------------------------------------


def receipts_scenario(url: str, alice: TestUser, bob: TestUser, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # bob, with two tabs on the page and no conversation open: the server's counts
            context = browser.new_context(viewport={"width": 1040, "height": 660})
            context.add_cookies([{"name": "trionet_session", "value": bob.token, "url": url}])
            tabs = [context.new_page() for _ in range(2)]
            for tab in tabs:
                tab.set_default_timeout(5_000)
                problems.watch(tab)
                tab.goto(f"{url}/")
            one, two = tabs

            def badge(tab: Page, section: str, name: str) -> Any:
                return tab.locator(f"#{section}-list a", has_text=name).locator(".badge")

            for tab in tabs:
                expect(badge(tab, "people", "alice")).to_have_text("3")
                expect(badge(tab, "group", "Readers")).to_have_text("2")
            one.reload()  # counts are the server's: a reload keeps them
            expect(badge(one, "people", "alice")).to_have_text("3")
            expect(badge(one, "group", "Readers")).to_have_text("2")

            at_alice = open_as(browser, url, alice, bob, problems)
            expect(texts(at_alice)).to_have_count(3)
            expect(at_alice.locator("#messages .seen")).to_have_count(0)

            # bob reads the chat in one tab: the badge goes in both, alice sees "Seen"
            one.locator("#people-list a", has_text="alice").click()
            expect(texts(one)).to_have_count(3)
            expect(badge(one, "people", "alice")).to_have_count(0)
            expect(badge(two, "people", "alice")).to_have_count(0)
            seen = at_alice.locator("#messages .msg.mine", has=at_alice.locator(".seen"))
            expect(seen.locator(".text")).to_have_text(["Third, and last"])
            # the group, read in the other tab
            two.locator("#group-list a", has_text="Readers").click()
            expect(texts(two)).to_have_count(2)
            expect(badge(one, "group", "Readers")).to_have_count(0)

            # live: a message to the open chat is read at once, and "Seen" moves to it
            say(at_alice, "Are you there?")
            expect(once(one, "Are you there?")).to_have_count(1)
            expect(seen.locator(".text")).to_have_text(["Are you there?"])
            expect(badge(two, "people", "alice")).to_have_count(0)
            say(one, "Yes!")
            expect(once(at_alice, "Yes!")).to_have_count(1)
            expect(seen.locator(".text")).to_have_text(["Are you there?"])
            # after a reload, alice's "Seen" comes from the server (peer_read_id)
            at_alice.reload()
            expect(texts(at_alice)).to_have_count(5)
            expect(seen.locator(".text")).to_have_text(["Are you there?"])
            at_alice.screenshot(path=str(shots / "receipts-alice.png"))
            # a message to a chat bob does not have open counts in his other tab
            two.locator("#group-list a", has_text="Readers").click()
            one.goto(f"{url}/#/group/{two.evaluate('location.hash').split('/')[-1]}")
            say(at_alice, "One more thing")
            expect(badge(two, "people", "alice")).to_have_text("1")
            expect(badge(one, "people", "alice")).to_have_text("1")
            two.screenshot(path=str(shots / "receipts-bob.png"))
            problems.assert_none(one, two, at_alice)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_unread_badges_follow_the_servers_counts_and_seen_follows_the_peers_reads(
    tmp_path: Path
) -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        group = await server.create_group("Readers", alice, [bob])
        with trio.fail_after(60):
            async with server.connect(alice) as ws:
                frames = [{"type": "private", "to": bob.id, "content": text}
                          for text in ("First", "Second", "Third, and last")]
                frames += [{"type": "group", "group_id": group, "content": text}
                           for text in ("Group one", "Group two")]
                for i, frame in enumerate(frames):
                    await server.send_json(ws, {**frame, "client_id": str(i)})
                    assert (await server.receive_json(ws))["type"] == "ack"
            # outside the seconds a page's first replay covers (app.js), so only the
            # server's counts can show them
            await trio.sleep(3.2)
            await trio.to_thread.run_sync(receipts_scenario, server.url, alice, bob, tmp_path)
    if os.environ.get("TRIONET_SCREENSHOTS"):
        for name in ("receipts-alice.png", "receipts-bob.png"):
            shutil.copy(tmp_path / name, ROOT / "docs" / "images" / name)


# -- edit and delete ---------------------------------------------------------------------------


def changes_scenario(url: str, alice: TestUser, bob: TestUser, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            at_alice = open_as(browser, url, alice, bob, problems)
            at_bob = open_as(browser, url, bob, alice, problems)
            say(at_alice, "Meet at 5?")
            say(at_alice, "I have a secret")
            say(at_bob, "Fine by me")
            expect(once(at_bob, "I have a secret")).to_have_count(1)
            expect(once(at_alice, "Fine by me")).to_have_count(1)
            # only my own messages can be changed
            expect(at_alice.locator("#messages .msg.mine .actions")).to_have_count(2)
            expect(at_alice.locator("#messages .msg.theirs .actions")).to_have_count(0)

            mine = once(at_alice, "Meet at 5?")
            mine.get_by_role("button", name="Edit").click()
            box = at_alice.get_by_label("Edit message")
            expect(box).to_have_value("Meet at 5?")
            box.fill("Meet at 6?")
            box.press("Enter")
            expect(once(at_alice, "Meet at 6?").locator(".edited")).to_have_text("(edited)")
            expect(once(at_bob, "Meet at 6?").locator(".edited")).to_have_text("(edited)")
            expect(once(at_bob, "Meet at 5?")).to_have_count(0)

            secret = once(at_alice, "I have a secret")
            secret.get_by_role("button", name="Delete").click()
            secret.get_by_role("button", name="Delete for everyone?").click()
            for page in (at_alice, at_bob):
                expect(page.locator("#messages .msg.deleted .text")).to_have_text(
                    ["Message deleted"])
                expect(once(page, "I have a secret")).to_have_count(0)
            at_alice.screenshot(path=str(shots / "changes-alice.png"))
            # history shows them as they are now
            at_bob.reload()
            expect(texts(at_bob)).to_have_text(["Meet at 6?", "Message deleted", "Fine by me"])
            expect(at_bob.locator("#messages .msg .edited")).to_have_count(1)
            problems.assert_none(at_alice, at_bob)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_my_messages_can_be_edited_and_deleted_and_the_other_side_sees_it(
    tmp_path: Path
) -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(60):
            await trio.to_thread.run_sync(changes_scenario, server.url, alice, bob, tmp_path)
    if os.environ.get("TRIONET_SCREENSHOTS"):
        shutil.copy(tmp_path / "changes-alice.png", ROOT / "docs" / "images" / "changes-alice.png")


# -- blocking ------------------------------------------------------------------------------------


def blocking_scenario(url: str, alice: TestUser, bob: TestUser, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            at_alice = open_as(browser, url, alice, bob, problems)
            at_bob = open_as(browser, url, bob, alice, problems)
            say(at_alice, "Hello Bob")
            expect(once(at_bob, "Hello Bob")).to_have_count(1)
            for page in (at_alice, at_bob):  # (strangers until a message: see presence)
                expect(page.locator("#pane-presence")).to_have_text("online")

            toggle = at_bob.locator("#block-toggle")
            expect(toggle).to_have_text("Block")
            toggle.click()
            expect(toggle).to_have_text("Unblock")
            expect(at_bob.locator("#pane-status")).to_have_text(
                "You blocked alice: neither of you can write to the other.")
            # each sees the other offline; alice's next message is refused, visibly
            expect(at_alice.locator("#pane-presence")).to_have_text("offline")
            expect(at_bob.locator("#pane-presence")).to_have_text("offline")
            say(at_alice, "Are you ignoring me?")
            expect(at_alice.locator("#messages .msg.failed .state")).to_contain_text("not sent")
            expect(once(at_bob, "Are you ignoring me?")).to_have_count(0)
            at_alice.screenshot(path=str(shots / "blocked-alice.png"))
            at_bob.reload()  # the block is the server's: it stays after a reload
            expect(at_bob.locator("#block-toggle")).to_have_text("Unblock")
            expect(at_bob.locator("#pane-presence")).to_have_text("offline")

            at_bob.locator("#block-toggle").click()
            expect(at_bob.locator("#block-toggle")).to_have_text("Block")
            expect(at_alice.locator("#pane-presence")).to_have_text("online")
            expect(at_bob.locator("#pane-presence")).to_have_text("online")
            say(at_alice, "Friends again?")
            expect(once(at_bob, "Friends again?")).to_have_count(1)
            problems.assert_none(at_alice, at_bob)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_blocking_from_the_chat_header_refuses_and_hides_both_ways(
    tmp_path: Path
) -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(60):
            await trio.to_thread.run_sync(blocking_scenario, server.url, alice, bob, tmp_path)
    if os.environ.get("TRIONET_SCREENSHOTS"):
        shutil.copy(tmp_path / "blocked-alice.png", ROOT / "docs" / "images" / "blocked-alice.png")


# -- bidirectional text stays inside its own element --------------------------------------------

RLO_TEXT = "hi \u202eevil.example/reset\u202c bye"


def bidi_scenario(url: str, alice: TestUser, bob: TestUser) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_as(browser, url, alice, bob, problems)
            shown = page.locator("#messages .msg .text")
            expect(shown).to_have_count(1)
            expect(shown.first).to_have_text(RLO_TEXT)
            isolated = shown.first.evaluate(
                "node => [node.dir, getComputedStyle(node).unicodeBidi]")
            assert isolated == ["auto", "isolate"], isolated
            name = page.locator("#messages .msg .name").first
            assert name.evaluate("node => getComputedStyle(node).unicodeBidi") == "isolate"
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_a_right_to_left_override_in_a_message_is_isolated_on_the_page() -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(60):
            async with server.connect(bob) as ws:
                await server.send_json(ws, {"type": "private", "to": alice.id,
                                            "content": RLO_TEXT, "client_id": "rlo"})
                assert (await server.receive_json(ws))["type"] == "ack"
            await trio.to_thread.run_sync(bidi_scenario, server.url, alice, bob)


# -- signing in: a failed login points to registration ------------------------------------------


def login_scenario(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_person(browser, url, problems)
            expect(page.get_by_role("button", name="Log in")).to_be_visible()
            problems.assert_none(page)  # the signed-out load: no 401 for "who am I"
            with problems.expecting(*failed_login(url)):
                page.get_by_label("Username").fill("newcomer")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_label("Password").press("Enter")
                expect(page.get_by_role("alert")).to_have_text(
                    "Wrong username or password. New here? Choose Create account.")
                problems.assert_none(page)  # the one 401 expected, nothing else
            page.get_by_role("button", name="Create account").click()
            expect(page.locator("#me")).to_have_text("newcomer")
            expect(page.locator("#connection")).to_have_text("online")
            # a reload aborts what the page still had in flight (the clock probe, say)
            with problems.expecting(rf"request failed: GET {re.escape(url)}/\S*: net::ERR_ABORTED"):
                page.reload()
                expect(page.locator("#me")).to_have_text("newcomer")
                expect(page.locator("#connection")).to_have_text("online")
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_a_failed_login_points_to_create_account() -> None:
    async with running_server(port=free_port()) as server:
        with trio.fail_after(60):
            await trio.to_thread.run_sync(login_scenario, server.url)


# -- the page's looks: WCAG contrast of every text, bubbles, the status flash -------------------

#: JavaScript: the background layers behind ``node``, from itself out to <html>, each as
#: [computed background-color, the opacity it is painted with (its own and its ancestors')]
LAYERS_JS = """
const opacityOf = (node) => {
  let opacity = 1;
  for (let at = node; at; at = at.parentElement) opacity *= Number(getComputedStyle(at).opacity);
  return opacity;
};
const layersOf = (node) => {
  const layers = [];
  for (let at = node; at; at = at.parentElement) {
    layers.push([getComputedStyle(at).backgroundColor, opacityOf(at)]);
  }
  return layers;
};
"""

#: JavaScript: every visible text on the page (text nodes, input values and placeholders,
#: ::before/::after content) with its colour, size, weight and the layers behind it
TEXTS_JS = "() => {" + LAYERS_JS + """
  const name = (node) => node.id ? `#${node.id}` : node.tagName.toLowerCase()
    + [...node.classList].map((c) => `.${c}`).join("");
  const where = (node) => {
    const parts = [];
    for (let at = node; at && at !== document.body && parts.length < 4; at = at.parentElement) {
      parts.unshift(name(at));
      if (at.id) break;
    }
    return parts.join(" > ");
  };
  const shown = (node) => {
    if (!node.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    const box = node.getBoundingClientRect();
    return box.width > 1 && box.height > 1; // .visually-hidden is for screen readers only
  };
  const found = [];
  const add = (node, text, style, pseudo = "", own = null) => found.push({
    where: where(node) + pseudo, text: text.trim().slice(0, 60), color: style.color,
    size: parseFloat(style.fontSize), weight: Number(style.fontWeight),
    opacity: opacityOf(node), layers: own ? [own, ...layersOf(node)] : layersOf(node),
    disabled: node.closest(":disabled") !== null,
  });
  for (const node of document.body.querySelectorAll("*")) {
    if (!shown(node)) continue;
    const style = getComputedStyle(node);
    const text = [...node.childNodes].filter((c) => c.nodeType === Node.TEXT_NODE)
      .map((c) => c.textContent).join("");
    if (text.trim()) add(node, text, style);
    if (node.matches("input, textarea")) {
      if (node.value.trim()) add(node, node.value, style, "(value)");
      else if (node.placeholder) {
        add(node, node.placeholder, getComputedStyle(node, "::placeholder"), "::placeholder");
      }
    }
    for (const pseudo of ["::before", "::after"]) {
      const css = getComputedStyle(node, pseudo);
      if (/^".*\\S.*"$/.test(css.content)) {
        add(node, css.content.slice(1, -1), css, pseudo, [css.backgroundColor, 1]);
      }
    }
  }
  return found;
}"""


def background_of(layers: list[list[Any]]) -> RGBA:
    """The opaque colour behind a text, from the layers LAYERS_JS reports."""
    painted = []
    for css, opacity in layers:
        colour = parse_color(css)
        painted.append(colour._replace(a=colour.a * opacity))
    return effective_background(painted)


def contrast_offenders(page: Page, state: str, must_see: tuple[str, ...]) -> list[str]:
    """Every visible text of ``page`` under WCAG AA contrast (4.5:1; 3:1 for large text), as
    lines naming the state, the element, the text and the ratio. The texts in ``must_see``
    must be among those measured (so a state that failed to show cannot pass)."""
    offenders, measured = [], []
    for item in page.evaluate(TEXTS_JS):
        measured.append(item["text"])
        if item["disabled"]:
            continue  # WCAG 1.4.3 exempts the text of an inactive control
        background = background_of(item["layers"])
        colour = parse_color(item["color"])
        ratio = contrast_ratio(colour._replace(a=colour.a * item["opacity"]), background)
        need = minimum_ratio(item["size"], item["weight"])
        if ratio < need:
            shade = "#{:02x}{:02x}{:02x}".format(*(round(c) for c in background[:3]))
            offenders.append(f"{state}: {item['where']} {item['text']!r}: {ratio:.2f}:1 < "
                             f"{need}:1 ({item['color']} on {shade})")
    missing = [text for text in must_see if not any(text in seen for seen in measured)]
    assert not missing, f"{state}: not on the page: {missing}"
    return offenders


def contrast_scenario(server: TestServer, alice: TestUser, bob: TestUser) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = server.url
    problems = Problems()
    offenders: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            card = open_person(browser, url, problems)
            expect(card.get_by_role("button", name="Log in")).to_be_visible()
            offenders += contrast_offenders(card, "login card", (
                "trionet", "Chat and notifications, live.", "Username", "Log in",
                "Create account"))
            with problems.expecting(*failed_login(url)):
                card.get_by_label("Username").fill("newcomer")
                card.get_by_label("Password").fill(PASSWORD)
                card.get_by_role("button", name="Log in").click()
                expect(card.get_by_role("alert")).to_contain_text("Create account")
                offenders += contrast_offenders(card, "failed login", (
                    "Wrong username or password", "newcomer"))
                problems.assert_none(card)

            page = open_as(browser, url, alice, bob, problems)
            expect(texts(page)).to_have_text(["Are you coming on Sunday?", "Bring cake if you can.",
                                              "Great, see you there!"])
            expect(page.locator("#messages .msg.mine .state")).to_have_text(["sent"])
            expect(page.locator("#invite-list")).to_contain_text("Hikers from bob")
            trio.from_thread.run(server.services.manager.send_to_user, alice.id, {
                "type": "broadcast", "from": None, "content": "Maintenance at noon",
                "timestamp": "2026-11-26T02:36:45.001Z"})
            expect(page.locator("#broadcast-banner")).to_be_visible()
            offenders += contrast_offenders(page, "conversation", (
                "Are you coming on Sunday?", "Bring cake if you can.", "You", "sent", "bob",
                "online", "Readers", "Hikers", "from", "Accept", "Decline",
                "Maintenance at noon", "Write a message… (Enter sends)", "Group name", "2"))

            page.locator("#bell").click()
            expect(page.locator("#notification-list li.unread")).to_have_count(2)
            offenders += contrast_offenders(page, "unread notifications", (
                "carol wants to be your friend", "You were invited to join group 'Hikers'",
                "Mark all read"))
            page.get_by_role("button", name="Mark all read").click()
            expect(page.locator("#notification-list li.read")).to_have_count(2)
            offenders += contrast_offenders(page, "read notifications", (
                "carol wants to be your friend",))
            page.keyboard.press("Escape")

            page.locator("#group-list a", has_text="Readers").click()
            expect(page.locator("#pane-title")).to_have_text("Readers")
            expect(page.locator("#messages.loaded")).to_have_count(1)
            page.locator("#invite-name").fill("carol")
            page.locator("#invite-name").press("Enter")
            expect(page.locator("#pane-status")).to_have_text("Invited carol.")
            offenders += contrast_offenders(page, "status flash", (
                "Invited carol.", "No messages yet. Say hello!", "Invite"))
            problems.assert_none(card, page)
        finally:
            browser.close()
    assert not offenders, "text under WCAG AA contrast:\n" + "\n".join(offenders)


async def chat_with_news(server: TestServer) -> tuple[TestUser, TestUser]:
    """alice and bob, with a private chat (two from bob, one from alice), alice's group
    "Readers", an invite from bob to his group "Hikers", and a notification for alice."""
    alice, bob = await server.create_user("alice"), await server.create_user("bob")
    await server.create_user("carol")
    await server.create_group("Readers", alice)
    hikers = await server.create_group("Hikers", bob)
    async with server.http(bob) as http:
        invited = await http.post("/api/groups/invite",
                                  json={"group_id": hikers, "user_id": alice.id})
        assert invited.status_code == 201, invited.text
    for sender, to, content in [(bob, alice, "Are you coming on Sunday?"),
                                (bob, alice, "Bring cake if you can."),
                                (alice, bob, "Great, see you there!")]:
        async with server.connect(sender) as ws:
            await server.send_json(ws, {"type": "private", "to": to.id, "content": content,
                                        "client_id": content})
            assert (await server.receive_json(ws))["type"] == "ack"
    await server.services.manager.notify(alice.id, "friend_request",
                                         "carol wants to be your friend")
    return alice, bob


@pytest.mark.slow
@needs_chromium
async def test_every_visible_text_meets_wcag_aa_contrast() -> None:
    async with running_server(port=free_port()) as server:
        with trio.fail_after(60):
            alice, bob = await chat_with_news(server)
            await trio.to_thread.run_sync(contrast_scenario, server, alice, bob)


#: JavaScript: a received bubble's background layers and top border, and the pane's layers
BUBBLE_JS = "(bubble) => {" + LAYERS_JS + """
  const style = getComputedStyle(bubble);
  return { bubble: layersOf(bubble), pane: layersOf(bubble.parentElement),
    border: [style.borderTopColor, parseFloat(style.borderTopWidth), style.borderTopStyle] };
}"""

#: JavaScript: the gaps (px) around the text of the status line (#pane-status)
STATUS_GAPS_JS = """(status) => {
  const range = document.createRange();
  range.selectNodeContents(status);
  const text = range.getBoundingClientRect();
  const header = document.querySelector(".pane-header").getBoundingClientRect();
  const messages = document.getElementById("messages").getBoundingClientRect();
  return { above: text.top - header.bottom, below: messages.top - text.bottom,
    left: text.left - status.getBoundingClientRect().left };
}"""


def layout_scenario(url: str, alice: TestUser, bob: TestUser) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_as(browser, url, alice, bob, problems)
            received = page.locator("#messages .msg.theirs")
            expect(received).to_have_count(2)
            found = received.first.evaluate(BUBBLE_JS)
            pane = background_of(found["pane"])
            bubble = contrast_ratio(background_of(found["bubble"]), pane)
            colour, width, style = found["border"]
            border = (contrast_ratio(parse_color(colour), pane)
                      if width >= 1 and style not in ("none", "hidden") else 1.0)
            # a received bubble stands out from the pane: by its background or its border
            assert max(bubble, border) >= 1.3, (bubble, border)

            page.locator("#group-list a", has_text="Readers").click()
            expect(page.locator("#pane-title")).to_have_text("Readers")
            expect(page.locator("#messages.loaded")).to_have_count(1)
            page.locator("#invite-name").fill("carol")
            page.locator("#invite-name").press("Enter")
            status = page.locator("#pane-status")
            expect(status).to_have_text("Invited carol.")
            gaps = status.evaluate(STATUS_GAPS_JS)
            # room between the flash and the header above it, the messages below, the edge
            assert gaps["above"] >= 6 and gaps["below"] >= 6 and gaps["left"] >= 12, gaps
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_a_received_bubble_stands_out_and_a_status_flash_has_room() -> None:
    async with running_server(port=free_port()) as server:
        with trio.fail_after(60):
            alice, bob = await chat_with_news(server)
            await trio.to_thread.run_sync(layout_scenario, server.url, alice, bob)


# -- answering an invite clears its notification -------------------------------------------------


def invite_answer_scenario(url: str, bob: TestUser, alice: TestUser) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems = Problems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_as(browser, url, bob, alice, problems)
            expect(page.locator("#bell-count")).to_have_text("1")
            expect(page.locator("#invite-list")).to_contain_text("Readers")
            page.locator("#invite-list").get_by_role("button", name="Accept").click()
            expect(page.locator("#pane-title")).to_have_text("Readers")
            # the invite's notification is read now: on the page at once, and after a reload
            expect(page.locator("#bell-count")).to_be_hidden()
            # a reload aborts what the page still had in flight (an icon, say): that is all
            with problems.expecting(rf"request failed: GET {re.escape(url)}/\S*: net::ERR_ABORTED"):
                page.reload()
                expect(page.locator("#connection")).to_have_text("online")
            expect(page.locator("#bell-count")).to_be_hidden()
            page.locator("#bell").click()
            expect(page.locator("#notification-list li.read")).to_have_count(1)
            problems.assert_none(page)
        finally:
            browser.close()


@pytest.mark.slow
@needs_chromium
async def test_accepting_an_invite_clears_its_unread_notification_on_the_bell() -> None:
    async with running_server(port=free_port()) as server:
        alice, bob = await server.create_user("alice"), await server.create_user("bob")
        with trio.fail_after(60):
            async with server.http(alice) as http:
                gid = (await http.post("/api/groups", json={"name": "Readers"})).json()["id"]
                invited = await http.post("/api/groups/invite",
                                          json={"group_id": gid, "user_id": bob.id})
                assert invited.status_code == 201
            await trio.to_thread.run_sync(invite_answer_scenario, server.url, bob, alice)
