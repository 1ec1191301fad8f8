"""SQLite storage: migrations, connection settings, the schema's guarantees, work off the loop."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
import trio

from trionet.core.clock import now_iso
from trionet.store.sqlite import Database, accounts
from trionet.store.sqlite.migrate import MIGRATION_SET, migrations_dir, pending_migrations

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(str(tmp_path / "trionet.db"))
    database.migrate()
    try:
        yield database
    finally:
        database.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master"))
    finally:
        conn.close()


def test_migrations_apply_once_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "trionet.db"
    database = Database(str(path))
    try:
        first = database.migrate()
        assert first[0] == "m0001_initial"
        assert first == [p.stem for p in sorted(migrations_dir().glob("m[0-9]*.py"))]
        schema = _schema(path)
        assert database.migrate() == []
        assert _schema(path) == schema
        conn = database.connect()
        assert pending_migrations(sqlite_utils.Database(conn)) == []
        recorded = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,)
        )]
        assert recorded == first
    finally:
        database.close()


def test_concurrent_migrators_apply_each_migration_once(tmp_path: Path) -> None:
    path = str(tmp_path / "trionet.db")
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        database = Database(path)
        try:
            start.wait()
            results.append(database.migrate())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    applied = [name for names in results for name in names]
    assert sorted(applied) == sorted(set(applied))
    assert "m0001_initial" in applied


def test_a_failing_migration_keeps_none_of_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "m0001_good.py").write_text(
        "def migrate(db):\n    db.execute('CREATE TABLE kept (id INTEGER PRIMARY KEY)')\n"
    )
    (folder / "m0002_bad.py").write_text(
        "def migrate(db):\n"
        "    db.execute('CREATE TABLE half (id INTEGER PRIMARY KEY)')\n"
        "    db.execute('THIS IS NOT SQL')\n"
    )
    monkeypatch.setattr("trionet.store.sqlite.migrate.migrations_dir", lambda: folder)
    path = tmp_path / "trionet.db"
    database = Database(str(path))
    try:
        with pytest.raises(sqlite3.OperationalError):
            database.migrate()
        conn = database.connect()
        assert pending_migrations(sqlite_utils.Database(conn)) == ["m0001_good", "m0002_bad"]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert not names & {"kept", "half"}
    finally:
        database.close()


def test_every_connection_uses_wal_foreign_keys_and_a_busy_timeout(db: Database) -> None:
    conn = db.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


async def test_reader_and_writer_connections_have_foreign_keys_on(db: Database) -> None:
    with trio.fail_after(10):
        assert await db.read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
        assert await db.write(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]) == 1


def test_the_tables_have_the_columns_the_api_needs(db: Database) -> None:
    conn = db.connect()

    def columns(table: str) -> set[str]:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}

    assert {"id", "username", "password_hash", "is_admin", "created_at"} <= columns("users")
    assert {"token_hash", "user_id", "expires_at"} <= columns("sessions")
    assert {"id", "name", "owner_id", "created_at"} <= columns("groups")
    assert {"group_id", "user_id", "status", "invited_by", "created_at"} <= columns(
        "group_members"
    )
    assert {"id", "kind", "sender_id", "recipient_id", "group_id", "content", "client_id",
            "created_at"} <= columns("messages")
    assert {"id", "user_id", "subtype", "message", "payload", "read_at", "created_at"} <= columns(
        "notifications"
    )


def test_history_and_resume_queries_use_an_index(db: Database) -> None:
    conn = db.connect()
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"messages_by_pair", "messages_by_group", "messages_client_id",
            "conversations_by_recency", "notifications_by_user", "sessions_by_user"} <= indexes

    def plan(sql: str) -> str:
        return " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))

    pair = plan("SELECT * FROM messages WHERE kind = 'private' AND peer_lo = 1 AND peer_hi = 2"
                " AND id < 99 ORDER BY id DESC LIMIT 50")
    assert "USING INDEX messages_by_pair" in pair
    group = plan("SELECT * FROM messages WHERE kind = 'group' AND group_id = 1"
                 " ORDER BY id DESC LIMIT 50")
    assert "USING INDEX messages_by_group" in group
    resume = plan("SELECT peer_id FROM conversations WHERE user_id = 1 AND last_message_id > 5"
                  " ORDER BY last_message_id DESC LIMIT 50")
    assert "USING INDEX conversations_by_recency" in resume
    assert "TEMP B-TREE" not in resume  # walked newest first, not sorted
    inbox = plan("SELECT * FROM notifications WHERE user_id = 1 AND id > 5 ORDER BY id")
    assert "USING INDEX notifications_by_user" in inbox


def _message(conn: sqlite3.Connection, id_: int, sender: int, client_id: str | None) -> None:
    conn.execute(
        "INSERT INTO messages (id, kind, sender_id, recipient_id, peer_lo, peer_hi, content,"
        " client_id, created_at) VALUES (?, 'private', ?, 2, 1, 2, 'hi', ?, ?)",
        (id_, sender, client_id, now_iso()),
    )


def test_a_sender_cannot_store_two_messages_with_one_client_id(db: Database) -> None:
    conn = db.connect()
    _message(conn, 1, sender=1, client_id="c1")
    with pytest.raises(sqlite3.IntegrityError):
        _message(conn, 2, sender=1, client_id="c1")
    _message(conn, 3, sender=2, client_id="c1")  # another sender may use the same client id
    _message(conn, 4, sender=1, client_id=None)  # messages without a client id never clash
    _message(conn, 5, sender=1, client_id=None)
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 4


def test_usernames_are_unique_ignoring_case(db: Database) -> None:
    conn = db.connect()
    accounts.create_user(conn, "alice", None)
    with pytest.raises(accounts.UsernameTaken):
        accounts.create_user(conn, "ALICE", None)


def test_foreign_keys_are_enforced_and_sessions_go_with_their_user(db: Database) -> None:
    conn = db.connect()
    with pytest.raises(sqlite3.IntegrityError):
        accounts.create_session(conn, "h" * 64, 999, time.time() + 60)
    user = accounts.create_user(conn, "bob", None)
    accounts.create_session(conn, "h" * 64, user["id"], time.time() + 60)
    conn.execute("DELETE FROM users WHERE id = ?", (user["id"],))
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


def test_a_failed_write_rolls_back_the_whole_transaction(db: Database) -> None:
    def two_users_then_fail(conn: sqlite3.Connection) -> None:
        accounts.create_user(conn, "carol", None)
        accounts.create_user(conn, "carol", None)

    with pytest.raises(accounts.UsernameTaken):
        db.write_sync(two_users_then_fail)
    assert db.connect().execute("SELECT count(*) FROM users").fetchone()[0] == 0


async def test_reads_and_writes_run_in_worker_threads(db: Database) -> None:
    loop_thread = threading.get_ident()

    def where(conn: sqlite3.Connection) -> int:
        return threading.get_ident()

    with trio.fail_after(10):
        assert await db.read(where) != loop_thread
        assert await db.write(where) != loop_thread


async def test_a_slow_query_does_not_stall_the_event_loop(db: Database) -> None:
    ticks = 0

    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.3)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await db.read(slow)
            await db.write(slow)
            nursery.cancel_scope.cancel()
    assert ticks > 10  # ~60 possible in 0.6 s; a blocked loop would manage none


async def test_a_read_does_not_wait_for_a_slow_write(db: Database) -> None:
    write_started = trio.Event()
    read_done_at: float | None = None
    write_done_at: float | None = None

    def slow_write(conn: sqlite3.Connection) -> None:
        accounts.create_user(conn, "dave", None)
        trio.from_thread.run_sync(write_started.set)
        time.sleep(0.3)

    async def write() -> None:
        nonlocal write_done_at
        await db.write(slow_write)
        write_done_at = trio.current_time()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await write_started.wait()
            count = await db.read(lambda c: c.execute("SELECT count(*) FROM users").fetchone()[0])
            read_done_at = trio.current_time()
    assert count == 0  # the uncommitted write is invisible (WAL readers see the last commit)
    assert write_done_at is not None and read_done_at < write_done_at


async def test_reader_connections_stay_bounded_as_worker_threads_come_and_go(
    tmp_path: Path,
) -> None:
    database = Database(str(tmp_path / "trionet.db"), readers=4)
    database.migrate()

    def query(conn: sqlite3.Connection) -> None:
        time.sleep(0.002)
        conn.execute("SELECT 1").fetchone()

    try:
        with trio.fail_after(20):
            for _ in range(5):
                async with trio.open_nursery() as nursery:  # grow trio's pool of idle threads
                    for _ in range(30):
                        nursery.start_soon(trio.to_thread.run_sync, time.sleep, 0.01)
                async with trio.open_nursery() as nursery:
                    for _ in range(40):
                        nursery.start_soon(database.read, query)
        assert len(database._all) <= 4
    finally:
        database.close()


async def test_the_writer_recovers_after_a_failed_commit(db: Database) -> None:
    def commit_fails(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA defer_foreign_keys = ON")  # the violation surfaces at COMMIT
        accounts.create_session(conn, "h" * 64, 12345, time.time() + 60)

    with trio.fail_after(10):
        with pytest.raises(sqlite3.IntegrityError):
            await db.write(commit_fails)
        user = await db.write(accounts.create_user, "erin", None)
        assert await db.read(accounts.get_user, user["id"]) is not None
        sessions = await db.read(lambda c: c.execute("SELECT count(*) FROM sessions").fetchone())
        assert sessions[0] == 0


@pytest.mark.slow
def test_the_installed_wheel_carries_the_migrations(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    dist = tmp_path / "dist"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(REPO)], check=True,
                   timeout=300, cwd=tmp_path)
    (wheel,) = dist.glob("trionet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for migration in sorted((REPO / "migrations").glob("m[0-9]*.py")):
        assert f"trionet/_migrations/{migration.name}" in names

    # A fresh venv with the wheel itself; its dependencies come from this environment's
    # site-packages, appended after the venv's own (so no network is needed and the
    # editable checkout is not on the path).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    (site,) = venv.glob("lib/python*/site-packages")
    deps = sysconfig.get_paths()["purelib"]
    (site / "trionet-test-deps.pth").write_text(deps + "\n")
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)],
                   check=True, timeout=300, cwd=tmp_path)

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRIONET_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import trionet.store.sqlite.migrate as m; print(m.migrations_dir())"],
        check=True, timeout=60, cwd=tmp_path, env=env, capture_output=True, text=True,
    ).stdout.strip()
    assert Path(where) == site / "trionet" / "_migrations"

    database = tmp_path / "fresh.db"
    trionet = [str(venv / "bin" / "trionet"), "migrate", "--db", str(database)]
    first = subprocess.run(trionet, check=True, timeout=60, cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert "m0001_initial" in first.stdout
    second = subprocess.run(trionet, check=True, timeout=60, cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert "up to date" in second.stdout
    conn = sqlite3.connect(database)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"users", "sessions", "groups", "group_members", "messages", "notifications"} <= tables

    # what integrators get: typing information and the licence, and the testing guide's first
    # example runs against the installed wheel (docs/testing.md, "Setup")
    assert "trionet/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names), names
    from test_guides import GUIDES, blocks, parse_example

    examples = {e.name: e for guide in GUIDES for b in blocks(guide)
                if (e := parse_example(b)) is not None}
    project = tmp_path / "project"
    project.mkdir()
    for name in ("testing-pytest-config", "testing-first-test"):
        example = examples[name]
        (project / example.path).write_text(example.code)
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         timeout=120, cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


@pytest.mark.parametrize("background", [True, False])
async def test_inline_commits_let_the_log_be_checkpointed(tmp_path: Path, background: bool) -> None:
    """With the store's checkpoint task running (as the app's services run it), every 64th
    commit asks it for a checkpoint in a worker thread and stays on the loop (500 commits a
    second here); without it, that commit goes through the worker thread, whose commit
    checkpoints the WAL. Either way the log stays small."""
    import os

    from trionet.core.ids import IdAllocator, id_to_iso
    from trionet.interfaces import MessageRecord
    from trionet.store.sqlite import SqliteStore

    path = str(tmp_path / "w.db")
    persister = SqliteStore(path)
    db = persister.db
    db.migrate()
    ids = IdAllocator()
    threaded = 0
    batches = 800 if background else 1500
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            if background:
                await nursery.start(persister.run_checkpoints)
            for _ in range(batches):
                batch = []
                for _ in range(20):
                    mid = ids.next()
                    batch.append(MessageRecord(id=mid, kind="group", sender_id=1, group_id=1,
                                               content="x" * 200, created_at=id_to_iso(mid)))
                if persister.save_inline(batch, []) is None:
                    threaded += 1
                    await persister.save(batch, [])
                if background:
                    await trio.sleep(0.002)  # the loop serves other tasks between commits
            nursery.cancel_scope.cancel()
    wal_bytes = os.stat(path + "-wal").st_size  # noqa: ASYNC240
    await db.aclose()
    if background:
        # only a commit landing on a checkpoint that holds writes off (one each: the next
        # waits for it); a busy disk makes more of them, never most
        assert threaded <= db.held_checkpoints < db.checkpoints / 2
        assert db.checkpoints >= 10
    else:
        assert threaded >= 5
        assert db.checkpoints == 0
    # ~600-1000 pages, then reused (16 MB for 800 batches, 30 MB for 1500, without checkpoints)
    assert wal_bytes < 8 * 1024 * 1024


async def test_only_short_batches_commit_on_the_event_loop(tmp_path: Path) -> None:
    """A big batch on the loop stalled it for 60-75 ms: past INLINE_MAX_ROWS it goes to the
    worker thread (save_inline answers None and stores nothing)."""
    from trionet.core.ids import IdAllocator, id_to_iso
    from trionet.interfaces import MessageRecord
    from trionet.store.sqlite import SqliteStore
    from trionet.store.sqlite.store import INLINE_MAX_ROWS

    store = SqliteStore(str(tmp_path / "i.db"))
    store.db.migrate()
    ids = IdAllocator()

    def batch(n: int) -> list[MessageRecord]:
        out = []
        for _ in range(n):
            mid = ids.next()
            out.append(MessageRecord(id=mid, kind="group", sender_id=1, group_id=1,
                                     content="x", created_at=id_to_iso(mid)))
        return out

    try:
        assert store.save_inline(batch(INLINE_MAX_ROWS + 1), []) is None
        assert await store.max_id() == 0
        assert store.save_inline(batch(INLINE_MAX_ROWS), []) is not None
        assert await store.max_id() > 0
    finally:
        await store.aclose()


def test_messages_carry_only_the_indexes_their_reads_need(db: Database) -> None:
    """Every index on ``messages`` costs each stored message a page write in its commit (the
    pages of an index by user are scattered, one per user of a batch): by recipient and by
    sender were half the commit of a batch of 50 conversations. Resume reads private messages
    through the conversation list instead; a new index here needs a read that cannot.
    (``messages_changed`` holds only edited and deleted messages: a message stored costs it
    nothing.)"""
    conn = db.connect()
    indexes = {str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
        " AND name NOT LIKE 'sqlite_autoindex%'")}
    assert indexes == {"messages_by_pair", "messages_by_group", "messages_client_id",
                       "messages_changed"}
    (partial,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_changed'")
    assert "WHERE change_id IS NOT NULL" in partial[0]
