"""Every example in the guides (docs/integration.md, docs/testing.md) runs here.

The convention, for whoever writes a guide:

- Each fenced ```python block is an example, and its first line says so: ``# example: NAME``
  (NAME unique across the guides). A guide has no Python block that is not an example.
- ``# requires: A, B`` (optional, right after) puts the code of examples A and B (of the same
  guide, defining things, with no tests of their own) in front of this one, so a guide can define
  a class in one block and use it in the next.
- ``# file: PATH`` (optional) writes the block as that file of the test project instead of a
  ``test_NAME.py`` module: ``conftest.py`` for fixtures, and a ```toml block with
  ``# file: pyproject.toml`` for the pytest configuration. The guides' own pytest configuration
  is therefore the one the examples run under.
- Blocks that define ``async def test_...`` functions are tests: they run as pytest tests, under
  pytest-trio, exactly as they would in an application's test suite. Every such test bounds its
  waits with ``trio.fail_after``. Other blocks must at least import cleanly.

All examples are written into one temporary directory (a test project: ``pyproject.toml``,
``conftest.py``, ``test_*.py``) and run by one pytest subprocess; each example is then one
parametrized test here, which fails with the example's own failure report. The examples start
servers with :func:`trionet.testing.running_server` on 127.0.0.1 and finish in seconds.

Shell, HTTP and nginx snippets are not executed; the nginx one is checked for the settings a
WebSocket proxy needs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ("integration.md", "testing.md")
RUN_TIMEOUT = 300  # seconds for the whole pytest subprocess (it takes a few)
#: warnings fail an example, as in trionet's own suite, except those it ignores too (sockets the
#: WebSocket client library leaves to the garbage collector surface at a random later test)
STRICT_WARNINGS = ["-W", "error", "-W", "ignore::DeprecationWarning",
                   "-W", "ignore::ResourceWarning",
                   "-W", "ignore::pytest.PytestUnraisableExceptionWarning"]

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^#\s*(example|requires|file):\s*(.+?)\s*$")

#: writes each test's outcome to a JSON file; loaded into the subprocess with ``-p``
_REPORT_PLUGIN = '''
import json, os

_results = {"tests": {}, "collect_errors": {}}

def pytest_collectreport(report):
    if report.failed:
        _results["collect_errors"][report.nodeid] = str(report.longrepr)

def pytest_runtest_logreport(report):
    entry = _results["tests"].setdefault(report.nodeid, {"outcome": "passed", "report": ""})
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["report"] += f"[{report.when}] {report.longreprtext}\\n"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"

def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["GUIDE_REPORT"], "w") as f:
        json.dump(_results, f)
'''


@dataclass(frozen=True)
class Block:
    """One fenced code block of a guide."""

    guide: str
    lang: str
    code: str
    line: int  # where the block's code starts in the guide (1-based)


@dataclass(frozen=True)
class Example:
    guide: str
    name: str
    lang: str
    code: str  # without the marker lines
    line: int
    requires: tuple[str, ...] = ()
    file: str | None = None

    @property
    def path(self) -> str:
        """The file the example is written to in the test project."""
        return self.file or f"test_{self.name.replace('-', '_')}.py"

    @property
    def tests(self) -> list[str]:
        """Names of the test functions the example defines."""
        if self.lang != "python":
            return []
        return [node.name for node in ast.parse(self.code).body
                if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
                and node.name.startswith("test_")]


def blocks(guide: str) -> Iterator[Block]:
    """Every top-level fenced block of ``docs/<guide>``."""
    lines = (ROOT / "docs" / guide).read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        start = i + 1
        i = start
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        yield Block(guide, opened.group(1), "\n".join(lines[start:i]) + "\n", start + 1)
        i += 1


def parse_example(block: Block) -> Example | None:
    """The example a block holds, or None when its first line does not mark one."""
    lines = block.code.splitlines()
    marks: dict[str, str] = {}
    taken = 0
    for line in lines:
        found = _MARK.match(line)
        if found is None or (taken == 0 and found.group(1) != "example"):
            break
        marks[found.group(1)] = found.group(2)
        taken += 1
    if "example" not in marks:
        return None
    requires = tuple(r.strip() for r in marks.get("requires", "").split(",") if r.strip())
    return Example(block.guide, marks["example"], block.lang,
                   "\n".join(lines[taken:]) + "\n", block.line, requires, marks.get("file"))


def all_examples() -> list[Example]:
    found = []
    for guide in GUIDES:
        for block in blocks(guide):
            example = parse_example(block)
            if example is not None:
                found.append(example)
    return found


EXAMPLES = all_examples()
BY_NAME = {e.name: e for e in EXAMPLES}


def module_source(example: Example) -> str:
    """The file's text: the required examples' code, then the example's own."""
    parts = [f"# {example.guide}, line {example.line}: example {example.name}\n"]
    for name in example.requires:
        parts.append(f"# --- from example {name} ---\n{BY_NAME[name].code}")
    parts.append(f"# --- example {example.name} ---\n{example.code}")
    return "\n".join(parts)


def write_project(root: Path) -> None:
    """The test project the examples make up."""
    for example in EXAMPLES:
        target = root / example.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(module_source(example) if example.lang == "python" else example.code)
    (root / "_guide_report.py").write_text(_REPORT_PLUGIN)


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every example once, in one pytest subprocess; returns its report."""
    root = tmp_path_factory.mktemp("guides")
    write_project(root)
    report = root / "_report.json"
    env = {**os.environ, "GUIDE_REPORT": str(report), "PYTHONPATH": str(root),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "_guide_report", "-p", "no:cacheprovider",
         "-q", "--continue-on-collection-errors", "--rootdir", str(root), *STRICT_WARNINGS,
         str(root)],
        cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    if not report.exists():
        pytest.fail(f"the examples' pytest run did not finish:\n{proc.stdout}\n{proc.stderr}")
    results: dict[str, Any] = json.loads(report.read_text())
    results["output"] = proc.stdout + proc.stderr
    return results


# -- the convention itself ----------------------------------------------------------------


def test_every_python_block_of_the_guides_is_an_example() -> None:
    stray = [f"{b.guide}:{b.line}" for g in GUIDES for b in blocks(g)
             if b.lang == "python" and parse_example(b) is None]
    assert not stray, f"python blocks without '# example: NAME': {stray}"


def test_examples_are_well_formed() -> None:
    names = [e.name for e in EXAMPLES]
    assert len(names) == len(set(names)), "example names must be unique"
    assert {e.guide for e in EXAMPLES} == set(GUIDES)
    assert any(e.file == "pyproject.toml" for e in EXAMPLES), "the pytest config is an example"
    for example in EXAMPLES:
        for name in example.requires:
            required = BY_NAME.get(name)
            assert required is not None, f"{example.name} requires unknown {name}"
            assert required.guide == example.guide and not required.tests, (
                f"{example.name} may require only definitions of its own guide, not {name}")
        if example.tests:
            assert "fail_after" in example.code, f"{example.name}: bound the test's waits"
            assert "localhost" not in example.code, f"{example.name}: 127.0.0.1 only"


def test_examples_pass_ruff(tmp_path: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    write_project(tmp_path)
    files = [str(tmp_path / e.path) for e in EXAMPLES if e.lang == "python"]
    # E402: a module made of several examples has imports further down
    proc = subprocess.run(
        [ruff, "check", "--no-cache", "--isolated", "--line-length", "100",
         "--select", "E,F,W,B,ASYNC", "--ignore", "E402", *files],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- running them -------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.guide}:{e.name}")
def test_guide_example(example: Example, guide_run: dict[str, Any]) -> None:
    where = f"docs/{example.guide} line {example.line}, example {example.name}"
    errors = {node: text for node, text in guide_run["collect_errors"].items()
              if node in ("", ".", example.path) or node.startswith(example.path + "::")}
    assert not errors, f"{where} does not import:\n" + "\n".join(errors.values())
    if example.lang != "python" or example.file is not None:
        return  # configuration and conftest: used by every test of the run
    ran = {node.split("::", 1)[1]: result for node, result in guide_run["tests"].items()
           if node.startswith(example.path + "::")}
    missing = [t for t in example.tests if t not in ran]
    assert not missing, f"{where}: tests did not run: {missing}\n{guide_run['output'][-3000:]}"
    failed = {name: r for name, r in ran.items() if r["outcome"] != "passed"}
    assert not failed, f"{where}:\n" + "\n".join(
        f"{name}: {r['outcome']}\n{r['report']}" for name, r in failed.items())


# -- snippets that are not run --------------------------------------------------------------


def nginx_snippet() -> str:
    snippets = [b.code for b in blocks("integration.md") if b.lang == "nginx"]
    assert len(snippets) == 1, "integration.md has one nginx example"
    return snippets[0]


def test_nginx_snippet_proxies_websockets_and_outlives_the_ping_interval() -> None:
    conf = nginx_snippet()
    for needed in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                   "proxy_set_header Connection $connection_upgrade;",
                   "proxy_set_header Host $host;", "X-Forwarded-For", "X-Forwarded-Proto"):
        assert needed in conf, needed
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s?;", conf)
    assert timeout is not None
    assert int(timeout.group(1)) > Settings().read_timeout  # TRIONET_PING_INTERVAL * 2 + 5


NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None)
OPENSSL = shutil.which("openssl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.skipif(NGINX is None or OPENSSL is None, reason="needs nginx and openssl")
async def test_the_nginx_snippet_really_proxies_websockets_over_tls(tmp_path: Path) -> None:
    """The guide's nginx configuration, as written but for its ports and certificate, in front
    of a trionet: the WebSocket upgrade goes through, and trionet's Origin check behaves as the
    guide says when TLS ends at the proxy."""
    assert NGINX is not None and OPENSSL is not None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await trio.run_process([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                           capture_stdout=True, capture_stderr=True)
    proxy_port, trionet_port = free_port(), free_port()
    conf = (nginx_snippet()
            .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{trionet_port};")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{proxy_port} ssl;")
            .replace("/etc/ssl/chat.example.com.pem", str(cert))
            .replace("/etc/ssl/chat.example.com.key", str(key)))
    assert str(cert) in conf and f":{proxy_port} ssl" in conf
    temp = "\n".join(f"{d}_temp_path {tmp_path}/{d};" for d in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}\n{conf}\n}}\n")
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    proxied = f"wss://127.0.0.1:{proxy_port}/ws"

    def headers(token: str, origin: str) -> list[tuple[str, str]]:
        return [("Cookie", f"trionet_session={token}"), ("Origin", origin)]

    with trio.fail_after(30):
        nginx = await trio.lowlevel.open_process(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
        try:
            while True:  # until nginx listens
                try:
                    await (await trio.open_tcp_stream("127.0.0.1", proxy_port)).aclose()
                    break
                except OSError:
                    assert nginx.poll() is None, (tmp_path / "error.log").read_text()
                    await trio.sleep(0.05)
            # the browser's origin is https; nginx passes Host without the port: trionet,
            # seeing http, does not take https://127.0.0.1 for its own origin
            async with running_server(port=trionet_port) as server:
                alice = await server.create_user("alice")
                with pytest.raises(trio_websocket.ConnectionRejected) as refused:
                    async with trio_websocket.open_websocket_url(
                            proxied, ssl_context=client_tls,
                            extra_headers=headers(alice.token, "https://127.0.0.1")):
                        pass
                assert refused.value.status_code == 403
            # with TRIONET_ALLOWED_ORIGINS set, messages flow through the proxy
            settings = Settings(allowed_origins=("https://127.0.0.1",), rate_limit=0)
            async with running_server(settings, port=trionet_port) as server:
                alice, bob = await server.create_user("alice"), await server.create_user("bob")
                async with trio_websocket.open_websocket_url(
                        proxied, ssl_context=client_tls,
                        extra_headers=headers(bob.token, "https://127.0.0.1")) as bob_ws, \
                        trio_websocket.open_websocket_url(
                            proxied, ssl_context=client_tls,
                            extra_headers=headers(alice.token, "https://127.0.0.1")) as alice_ws:
                    await TestServer.send_json(alice_ws, {"type": "private", "to": bob.id,
                                                          "content": "through nginx"})
                    frame = await TestServer.receive_json(bob_ws)
                    assert frame["content"] == "through nginx"
        finally:
            nginx.terminate()
            await nginx.wait()
