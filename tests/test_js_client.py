"""The JavaScript client (``clients/js``), tested by Node's test runner against a live server.

The server runs here, on 127.0.0.1; ``clients/js/test/client.test.mjs`` connects to it with
the ``ws`` package (installed by ``npm ci`` from the package's lock file when missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
from api_helpers import quick_user

from trionet.testing import running_server

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "js"


def _node_ready() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    if not (CLIENT / "node_modules" / "ws").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True,
                       timeout=300, capture_output=True)
    return node


def test_the_page_runs_on_the_same_module() -> None:
    page = Path(__file__).resolve().parent.parent / "trionet" / "static" / "trionet-client.js"
    assert page.resolve() == (CLIENT / "trionet-client.js").resolve()


async def test_the_client_against_a_live_server() -> None:
    node = await trio.to_thread.run_sync(_node_ready)
    if node is None:
        pytest.fail("Node.js and npm are needed for the JavaScript client's tests")
    async with running_server() as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        env = {**os.environ, "TRIONET_TEST_URL": server.url, "ALICE_ID": str(alice.id),
               "ALICE_TOKEN": alice.token, "BOB_ID": str(bob.id), "BOB_TOKEN": bob.token}
        with trio.fail_after(90):
            result = await trio.run_process(
                [node, "--test", "--test-reporter=spec", "test/"], cwd=CLIENT, env=env,
                capture_stdout=True, capture_stderr=True, check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    assert "pass 5" in output, output
