"""The ``trionet`` command: migrate, user create/list (click's runner), and serve (a process)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from faults import children_of, wait_ready

from trionet.cli import main

BIN = Path(sys.executable).parent


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "trionet.db"


def invoke(*args: str, input: str | None = None) -> Result:
    env = {k: None for k in os.environ if k.startswith("TRIONET_")}  # unset them
    return CliRunner().invoke(main, list(args), input=input, env=env)


def _users(db_path: Path) -> list[tuple[int, str, str | None, int]]:
    conn = sqlite3.connect(db_path)
    try:
        return list(conn.execute("SELECT id, username, password_hash, is_admin FROM users"))
    finally:
        conn.close()


def test_migrate_creates_the_schema_and_a_second_run_changes_nothing(db_path: Path) -> None:
    first = invoke("migrate", "--db", str(db_path))
    assert first.exit_code == 0, first.output
    assert "m0001_initial" in first.output
    second = invoke("migrate", "--db", str(db_path))
    assert second.exit_code == 0, second.output
    assert second.output.strip() == "database is up to date"


def test_migrate_reads_the_database_from_the_environment(db_path: Path) -> None:
    result = CliRunner().invoke(main, ["migrate"], env={"TRIONET_DATABASE": str(db_path)})
    assert result.exit_code == 0, result.output
    assert db_path.exists()


def test_user_create_reads_the_password_from_stdin(db_path: Path) -> None:
    result = invoke("user", "create", "alice", "--password-stdin", "--db", str(db_path),
                    input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "alice" in result.output
    ((_id, name, hashed, is_admin),) = _users(db_path)
    assert (name, is_admin) == ("alice", 0)
    assert hashed is not None and PasswordHasher().verify(hashed, "correct horse battery")


def test_user_create_prompts_for_the_password_twice(db_path: Path) -> None:
    result = invoke("user", "create", "alice", "--db", str(db_path),
                    input="correct horse battery\ncorrect horse battery\n")
    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output  # hidden input
    assert [u[1] for u in _users(db_path)] == ["alice"]


def test_user_create_admin(db_path: Path) -> None:
    result = invoke("user", "create", "root", "--admin", "--password-stdin", "--db",
                    str(db_path), input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "admin" in result.output
    assert _users(db_path)[0][3] == 1


def test_user_create_duplicate_fails_with_a_clear_message(db_path: Path) -> None:
    args = ("user", "create", "alice", "--password-stdin", "--db", str(db_path))
    assert invoke(*args, input="correct horse battery\n").exit_code == 0
    again = invoke(*args, input="another password\n")
    assert again.exit_code != 0
    assert "alice" in again.output and "taken" in again.output
    assert "Traceback" not in again.output
    assert len(_users(db_path)) == 1


@pytest.mark.parametrize("password", ["short", "", "1234567"])
def test_user_create_refuses_a_short_password(db_path: Path, password: str) -> None:
    result = invoke("user", "create", "alice", "--password-stdin", "--db", str(db_path),
                    input=password + "\n")
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
    assert not db_path.exists() or _users(db_path) == []


@pytest.mark.parametrize("username", ["has space", "semi;colon", "x" * 33, ""])
def test_user_create_refuses_a_name_the_api_would_refuse(db_path: Path, username: str) -> None:
    result = invoke("user", "create", username, "--password-stdin", "--db", str(db_path),
                    input="correct horse battery\n")
    assert result.exit_code != 0
    assert "username" in result.output
    assert not db_path.exists() or _users(db_path) == []


def test_user_list_shows_id_name_and_admin_flag(db_path: Path) -> None:
    for name, extra in (("alice", ()), ("root", ("--admin",))):
        created = invoke("user", "create", name, *extra, "--password-stdin", "--db",
                         str(db_path), input="correct horse battery\n")
        assert created.exit_code == 0, created.output
    result = invoke("user", "list", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["1\talice", "2\troot\tadmin"]


def test_user_list_on_an_empty_database_prints_nothing(db_path: Path) -> None:
    result = invoke("user", "list", "--db", str(db_path))
    assert result.exit_code == 0 and result.output == ""


def test_an_unusable_database_path_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "trionet.db"
    for args in (("migrate",), ("user", "list")):
        result = invoke(*args, "--db", str(missing))
        assert result.exit_code != 0
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert str(missing) in result.output


def test_serve_with_an_unusable_database_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "trionet.db"
    result = subprocess.run(
        [str(BIN / "trionet"), "serve", "--port", "0", "--db", str(missing)],
        env=_server_env(tmp_path), cwd=tmp_path, capture_output=True, timeout=30, check=False,
    )
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"Error: database {missing}: unable to open database file"]


def test_a_bad_variable_stops_the_command_with_one_line(db_path: Path) -> None:
    result = CliRunner().invoke(main, ["migrate", "--db", str(db_path)],
                                env={"TRIONET_DB_SYNCHRONOUS": "sometimes"})
    assert result.exit_code != 0
    assert "TRIONET_DB_SYNCHRONOUS" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
    env["TRIONET_SHUTDOWN_TIMEOUT"] = "3"
    return env


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_serve_runs_in_its_own_process_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "trionet"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--db", str(tmp_path / "served.db")]
    with (tmp_path / "stderr").open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            command, env=_server_env(tmp_path), cwd=tmp_path, stdout=stderr, stderr=stderr
        )
        try:
            with trio.fail_after(20):
                await wait_ready(url, process, "/healthz")
            assert children_of(process.pid) == []  # no worker process: signals reach the server
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                registered = await client.post(
                    "/api/auth/register", json={"username": "alice", "password": "0123456789"}
                )
            assert registered.status_code == 201
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(5):
                returncode = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5):
                    await process.wait()
    log = (tmp_path / "stderr").read_text()
    assert returncode == 0, log
    assert "Traceback" not in log
    assert _users(tmp_path / "served.db")[0][1] == "alice"
    last = log.strip().splitlines()[-1]
    assert "shutdown complete in" in last and "0 clients closed" in last, log


async def test_hypercorn_serves_the_app_built_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _server_env(tmp_path)
    env["TRIONET_DATABASE"] = str(tmp_path / "hyper.db")
    command = [str(BIN / "hypercorn"), "--worker-class", "trio", "--bind",
               f"127.0.0.1:{port}", "trionet.app:app"]
    with (tmp_path / "stderr").open("wb") as stderr:
        # its own session, so the worker hypercorn spawns can be cleaned up with it
        process = await trio.lowlevel.open_process(
            command, env=env, cwd=tmp_path, stdout=stderr, stderr=stderr,
            start_new_session=True,
        )
        try:
            with trio.fail_after(20):
                await wait_ready(url, process, "/healthz")
                async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                    registered = await client.post(
                        "/api/auth/register",
                        json={"username": "alice", "password": "0123456789"},
                    )
            assert registered.status_code == 201
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                returncode = await process.wait()
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                with trio.move_on_after(5):
                    await process.wait()
    log = (tmp_path / "stderr").read_text()
    assert returncode == 0, log
    assert "Traceback" not in log
    assert _users(tmp_path / "hyper.db")[0][1] == "alice"
    assert log.count("Running on") == 1, log


def test_serve_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "trionet"), "serve", "--port", str(port), "--db",
             str(tmp_path / "x.db")],
            env=_server_env(tmp_path), cwd=tmp_path, capture_output=True, timeout=30,
            check=False,
        )
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "Traceback" not in err
    assert f"127.0.0.1:{port}" in err
