"""The hypercorn coupling: the pinned versions, the start-up check, patching once per process."""

from __future__ import annotations

import os
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from hypercorn.protocol import h11, ws_stream
from hypercorn.trio import tcp_server
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from trionet.app import create_app
from trionet.realtime import _hypercorn_fixes as fixes
from trionet.realtime.transport import DIRECT_PATH_ATTRIBUTES, DIRECT_PATH_METHODS
from trionet.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TESTED = fixes.TESTED_HYPERCORN


def _message(*missing: str) -> str:
    return (f"hypercorn: version {version('hypercorn')} (trio {version('trio')}) lacks"
            f" {', '.join(missing)}, which trionet patches or reads; trionet is tested with"
            f" hypercorn{TESTED} (pip install 'hypercorn{TESTED}')")


def _missing(excinfo: pytest.ExceptionInfo[fixes.IncompatibleHypercorn]) -> tuple[str, ...]:
    return excinfo.value.missing


def test_the_pins_are_the_tested_and_installed_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {r.name.lower(): r for r in map(Requirement, project["dependencies"])}
    assert pins["hypercorn"].specifier == SpecifierSet(TESTED)
    for name in ("hypercorn", "quart-trio", "quart"):
        spec = pins[name].specifier
        assert spec.contains(version(name)), (name, str(spec))
        assert any(s.operator == "<" for s in spec), f"{name} has no upper bound"


def test_the_installed_hypercorn_and_trio_pass_the_check() -> None:
    fixes.check()  # raises naming what is missing
    # and the check looks at every name direct_transport walks
    assert "hypercorn.trio.tcp_server.TCPServer.send_lock" in DIRECT_PATH_ATTRIBUTES
    assert "hypercorn.protocol.ws_stream.WSStream.app_send" in DIRECT_PATH_METHODS


def test_a_missing_method_fails_the_check_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(ws_stream.WSStream, "_send_pings")
    with pytest.raises(fixes.IncompatibleHypercorn) as excinfo:
        fixes.check()
    assert isinstance(excinfo.value, SettingsError)
    assert str(excinfo.value) == _message("hypercorn.protocol.ws_stream.WSStream._send_pings")
    assert "\n" not in str(excinfo.value)


def test_an_attribute_no_longer_set_on_instances_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def renamed(self: Any, app: Any, config: Any, context: Any, state: Any,
                stream: Any) -> None:  # hypercorn 0.18's, with the lock renamed _send_lock
        self.app = app
        self.config = config
        self.context = context
        self._send_lock = trio.Lock()
        self.stream = stream
        self.state = state

    monkeypatch.setattr(tcp_server.TCPServer, "__init__", renamed)
    with pytest.raises(fixes.IncompatibleHypercorn) as excinfo:
        fixes.check()
    assert _missing(excinfo) == ("hypercorn.trio.tcp_server.TCPServer.send_lock",)
    assert str(excinfo.value) == _message("hypercorn.trio.tcp_server.TCPServer.send_lock")


def test_a_moved_class_fails_the_check_naming_each_name_reached_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(h11, "H11Protocol")
    with pytest.raises(fixes.IncompatibleHypercorn) as excinfo:
        fixes.check()
    assert _missing(excinfo) == ("hypercorn.protocol.h11.H11Protocol.stream_send",
                                 "hypercorn.protocol.h11.H11Protocol.send")


def test_a_trio_stream_without_its_socket_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def renamed(self: Any, socket: Any) -> None:  # a trio calling SocketStream.socket _socket
        self._socket = socket

    monkeypatch.setattr(trio.SocketStream, "__init__", renamed)
    with pytest.raises(fixes.IncompatibleHypercorn) as excinfo:
        fixes.check()
    assert _missing(excinfo) == ("trio.SocketStream.socket._sock",)


def test_create_app_refuses_to_build_on_a_missing_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.delattr(tcp_server.TCPServer, "protocol_send")
    with pytest.raises(fixes.IncompatibleHypercorn, match=r"TCPServer\.protocol_send"):
        create_app(Settings(database=str(tmp_path / "trionet.db")))
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened


def test_applying_the_fixes_twice_is_a_no_op() -> None:
    def installed() -> tuple[Any, ...]:
        return (ws_stream.WSStream.handle, ws_stream.WSStream._send_pings,
                tcp_server.TCPServer.protocol_send, fixes._original_handle,
                fixes._original_protocol_send)

    fixes.apply()
    first = installed()
    fixes.apply()
    assert installed() == first
    assert first[:3] == (fixes._handle, fixes._send_pings, fixes._protocol_send)
    # what the wrappers call is still hypercorn's own, not a wrapper of a wrapper
    assert fixes._original_handle.__module__ == "hypercorn.protocol.ws_stream"
    assert fixes._original_protocol_send.__module__ == "hypercorn.trio.tcp_server"


async def test_importing_trionet_app_patches_nothing_until_an_app_is_built(
    tmp_path: Path,
) -> None:
    code = (
        "import sys, trionet.app\n"
        "from hypercorn.protocol.ws_stream import WSStream\n"
        "before = getattr(WSStream, '_trionet_patched', False)\n"
        "trionet.app.create_app(trionet.Settings(database=sys.argv[1]))\n"
        "print(before, getattr(WSStream, '_trionet_patched', False))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-c", code, str(tmp_path / "trionet.db")], env=env, cwd=tmp_path,
            check=False, capture_stdout=True, capture_stderr=True)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["False", "True"]


def _without_send_pings(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes (hypercorn's workers too) start with hypercorn's
    ``WSStream._send_pings`` gone, as in a release that renamed it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from hypercorn.protocol import ws_stream\n"
        "del ws_stream.WSStream._send_pings\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["TRIONET_DATABASE"] = str(tmp_path / "trionet.db")
    return env


def _one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("command", [
    ["trionet", "serve", "--host", "127.0.0.1", "--port", "0"],
    ["hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:0", "trionet.app:app"],
])
async def test_serving_on_an_incompatible_hypercorn_stops_with_one_line(
    tmp_path: Path, command: list[str],
) -> None:
    with trio.fail_after(30):
        result = await trio.run_process(
            [str(BIN / command[0]), *command[1:]], env=_without_send_pings(tmp_path),
            cwd=tmp_path, check=False, capture_stdout=True, capture_stderr=True)
    line = _one_line(result.stderr)
    prefix = "Error: " if command[0] == "trionet" else "trionet: "
    assert line == f"{prefix}configuration error: " + _message(
        "hypercorn.protocol.ws_stream.WSStream._send_pings")
    if command[0] == "trionet":  # (hypercorn 0.18 exits 0 whatever its worker's status)
        assert result.returncode != 0


class _Reads:
    """What trionet's read loop for hypercorn's TCPServer touches: its config, its stream and
    its protocol (recording what it is handed), and the handoff posted on it."""

    trionet_handoff = None

    def __init__(self, timeout: float, chunks: list[tuple[float, bytes]]) -> None:
        self.config = SimpleNamespace(read_timeout=timeout)
        self.stream = self
        self.protocol = self
        self.chunks = chunks
        self.handled: list[object] = []

    async def receive_some(self, max_bytes: int) -> bytes:
        if not self.chunks:
            await trio.sleep_forever()
        delay, data = self.chunks.pop(0)
        with trio.CancelScope(shield=True):  # the data arrives even if the deadline passed
            await trio.sleep(delay)
        return data

    async def handle(self, event: object) -> None:
        await trio.sleep(0.01)  # a checkpoint: a cancelled handler would stop here
        self.handled.append(event)


async def test_data_read_as_the_read_timeout_passes_is_still_handled() -> None:
    reads = _Reads(0.05, [(0.1, b"late but here"), (0, b"")])
    with trio.fail_after(5):
        await fixes._read_data(reads)
    assert [getattr(e, "data", type(e).__name__) for e in reads.handled] == [
        b"late but here", b"", "Closed"]


async def test_a_peer_silent_for_the_read_timeout_is_closed() -> None:
    reads = _Reads(0.05, [(0, b"hello")])
    with trio.fail_after(5):
        started = trio.current_time()
        await fixes._read_data(reads)
        assert trio.current_time() - started < 1
    assert [getattr(e, "data", type(e).__name__) for e in reads.handled] == [b"hello", "Closed"]
