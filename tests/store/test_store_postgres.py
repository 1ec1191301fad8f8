"""The PostgreSQL store's own promises: its schema matches the SQLite one, its queries walk
indexes, its connections are bounded in time, and an outage is ``StoreUnavailable`` (never a
hang, never a driver error) from which it recovers by itself.

The outage tests lock a table from a second session and terminate the store's backends with
``pg_terminate_backend``; they never restart the server (see conftest.py for the database).
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from store_helpers import (
    TIMEOUT,
    create_database,
    database_url,
    drop_database,
    empty_tables,
    note,
    private,
)

from trionet.store import StoreUnavailable
from trionet.store.postgres import PostgresStore, accounts, conversations, messages, notifications
from trionet.store.postgres.migrate import migration_files, migrations_dir, pending_migrations
from trionet.store.sqlite import Database as SqliteDatabase

REPO = Path(__file__).resolve().parents[2]


def _with_app_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The run's database, emptied, under an application_name of this test's own."""
    empty_tables(postgres_url)
    return _with_app_name(postgres_url, f"trionet_test_{secrets.token_hex(4)}")


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url, lock_timeout=0.3, statement_timeout=5.0)
    try:
        yield store
    finally:
        with trio.fail_after(TIMEOUT):
            await store.aclose()


def _sync(url: str) -> psycopg.Connection[Any]:
    """A plain connection for the test's own statements, each bounded to 60 s (the sync
    tests' time bound, as trio.fail_after cannot stop a blocking call)."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5,
                           options="-c statement_timeout=60000")


def _app_name(url: str) -> str:
    return url.rsplit("application_name=", 1)[1]


# -- schema ------------------------------------------------------------------------------


def test_the_tables_have_the_sqlite_schemas_columns(postgres_url: str, tmp_path: Path) -> None:
    sqlite_db = SqliteDatabase(str(tmp_path / "schema.db"))
    sqlite_db.migrate()
    lite = sqlite3.connect(tmp_path / "schema.db")
    try:
        tables = [r[0] for r in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%'"
            " ESCAPE '\\' AND name NOT LIKE 'sqlite%'")]
        expected = {t: {r[1] for r in lite.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        lite.close()
        sqlite_db.close()
    assert {"users", "sessions", "groups", "group_members", "messages", "notifications",
            "conversations"} <= set(expected)
    with _sync(postgres_url) as conn:
        for table, columns in expected.items():
            got = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s", (table,))}
            assert got == columns, table
        ids = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND (column_name = 'id'"
            "   OR column_name LIKE '%%\\_id') AND column_name <> 'client_id'").fetchall())
        assert ids and all(t == "bigint" for t in ids.values()), ids
        assert conn.execute("SELECT count(*) FROM trionet_migrations").fetchone()[0] == len(
            migration_files())
        assert pending_migrations(conn) == []


def test_messages_carry_only_the_indexes_their_reads_need(postgres_url: str) -> None:
    """Each index on ``messages`` is one more entry written for every stored message. Resume
    reads private messages through the conversation list now; the indexes by recipient and
    by sender stay for one release, as nodes of the previous release still resume through
    them during a rolling upgrade (a later migration drops them). ``messages_changed`` holds
    only edited and deleted messages (partial): a message stored costs it nothing."""
    with _sync(postgres_url) as conn:
        indexes = {str(r[0]) for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'messages'")}
    assert indexes == {"messages_pkey", "messages_by_pair", "messages_by_group",
                       "messages_client_id", "messages_to_user", "messages_from_user",
                       "messages_changed"}


def test_the_migrations_are_files_of_the_checkout_in_name_order() -> None:
    assert migrations_dir() == REPO / "migrations" / "postgres"
    files = migration_files()
    assert files and files[0].name == "0001_initial.sql"
    assert files == sorted(files)


async def test_a_failing_migration_keeps_none_of_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE kept (id BIGINT PRIMARY KEY);")
    (tmp_path / "0002_bad.sql").write_text(
        "CREATE TABLE half (id BIGINT PRIMARY KEY);\nTHIS IS NOT SQL;")
    monkeypatch.setattr("trionet.store.postgres.migrate.migrations_dir", lambda: tmp_path)
    name = create_database("trionet_test_fresh")
    try:
        url = database_url(name)
        store = PostgresStore(url)
        with trio.fail_after(TIMEOUT):
            with pytest.raises(psycopg.errors.SyntaxError):
                await store.migrate()
            await store.aclose()
        with _sync(url) as conn:
            assert pending_migrations(conn) == ["0001_good", "0002_bad"]
            assert conn.execute("SELECT to_regclass('kept'), to_regclass('half')").fetchone() == (
                None, None)
    finally:
        drop_database(name)


@pytest.mark.slow
def test_the_wheel_carries_the_postgres_migrations(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "wheel",
                    "--no-deps", "-w", str(dist), str(REPO)], check=True, timeout=300,
                   cwd=tmp_path)
    (wheel,) = dist.glob("trionet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in migration_files():
        assert f"trionet/_migrations/postgres/{path.name}" in names
    assert "trionet/store/postgres/store.py" in names


# -- query plans -------------------------------------------------------------------------


class _Explaining:
    """A connection that records the plan (EXPLAIN ANALYZE) of each query before running it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.plans: list[tuple[str, dict[str, Any]]] = []

    def execute(self, query: Any, params: Any = None) -> Any:
        plan = self.conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()
        self.plans.append((query, plan[0][0]["Plan"]))
        return self.conn.execute(query, params)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans(explaining: _Explaining) -> list[dict[str, Any]]:
    return [n for _, plan in explaining.plans for n in _nodes(plan) if "Relation Name" in n]


@pytest.fixture(scope="module")
def big_url(postgres_url: str) -> str:
    """The run's database holding 5,000 users in 100 groups, 150,000 messages, 50,000
    notifications and 20,000 sessions, analysed (the tests of this module that use it only read)."""
    empty_tables(postgres_url)
    with _sync(postgres_url) as conn:
        conn.execute(
            "INSERT INTO users (id, username, created_at)"
            " SELECT u, 'user' || u, '2026-01-01T00:00:00.000Z' FROM generate_series(1, 5000) u")
        conn.execute(
            "INSERT INTO groups (id, name, owner_id, created_at)"
            " SELECT g, 'g' || g, g, '2026-01-01T00:00:00.000Z' FROM generate_series(1, 100) g")
        conn.execute(
            "INSERT INTO group_members (group_id, user_id, status, created_at, accepted_at)"
            " SELECT DISTINCT ON (g, u) g, u, 'accepted', 't', 't' FROM generate_series(1, 5000) u,"
            " LATERAL (VALUES (u % 100 + 1), ((u * 7) % 100 + 1)) AS v(g)")
        conn.execute(
            "INSERT INTO messages (id, kind, sender_id, recipient_id, group_id, peer_lo, peer_hi,"
            " content, client_id, created_at)"
            " SELECT i, CASE WHEN i % 3 = 0 THEN 'group' ELSE 'private' END, s,"
            "  CASE WHEN i % 3 = 0 THEN NULL ELSE r END, CASE WHEN i % 3 = 0 THEN i % 100 + 1 END,"
            "  CASE WHEN i % 3 = 0 THEN NULL ELSE least(s, r) END,"
            "  CASE WHEN i % 3 = 0 THEN NULL ELSE greatest(s, r) END,"
            "  repeat('x', 40), 'c' || i, 't'"
            " FROM generate_series(1, 150000) i,"
            " LATERAL (SELECT i % 5000 + 1 AS s, (i * 13) % 5000 + 1 AS r) AS p")
        conn.execute(
            "INSERT INTO notifications (id, user_id, subtype, message, created_at)"
            " SELECT 200000 + i, i % 5000 + 1, 'x', 'm', 't' FROM generate_series(1, 50000) i")
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
            " SELECT md5(i::text), i % 5000 + 1, 't', 1e10 + i FROM generate_series(1, 20000) i")
        conn.execute("ANALYZE")
    return postgres_url


@pytest.mark.slow
def test_history_replay_and_look_ups_walk_indexes(big_url: str) -> None:
    user = 42
    with _sync(big_url) as conn:
        explaining = _Explaining(conn)
        ex: Any = explaining
        messages.private_page(ex, user, 4242, limit=50, offset=0, before_id=None)
        messages.private_page(ex, 1, 14, limit=50, offset=0, before_id=140000)
        messages.group_page(ex, 7, limit=50, offset=0, before_id=100000)
        messages.find_by_client_id(ex, 13, "c12")
        notifications.notification_page(ex, user, limit=50, offset=0, before_id=None)
        notifications.unread_count(ex, user)
        conversations.conversation_page(ex, user, limit=50, offset=0)
        accounts.get_user_by_name(ex, "USER42")
        accounts.session_user(ex, "missing")
        scans = _scans(explaining)
        seq = [(n["Relation Name"], n["Node Type"]) for n in scans if n["Node Type"] == "Seq Scan"]
        assert seq == [], seq
        used = {n.get("Index Name") for _, plan in explaining.plans for n in _nodes(plan)}
        assert {"messages_by_pair", "messages_by_group", "messages_client_id",
                "notifications_by_user", "conversations_by_recency", "users_username"} <= used


@pytest.mark.slow
def test_the_replay_plan_stops_after_limit_plus_one_rows_per_branch(big_url: str) -> None:
    user, limit = 42, 5
    with _sync(big_url) as conn:
        explaining = _Explaining(conn)
        msgs, notes = messages.replay_sizes(explaining, user, since=0,  # type: ignore[arg-type]
                                            since_notification=0, limit=limit)
        assert len(msgs) == limit + 1 and len(notes) == limit + 1
        assert msgs == sorted(msgs, reverse=True)
        scans = _scans(explaining)
        assert all(n["Node Type"] != "Seq Scan" for n in scans), scans
        message_scans = [n for n in scans if n["Relation Name"] == "messages"]
        assert {"messages_by_pair", "messages_by_group"} <= {
            n.get("Index Name") for n in message_scans}
        assert "conversations_by_recency" in {n.get("Index Name") for n in scans}
        # kept for a rolling upgrade only: this release's plan does not use them
        assert not {"messages_to_user", "messages_from_user"} & {
            n.get("Index Name") for n in scans}
        for node in scans:  # no walk reads more than limit + 1 rows a loop
            assert node["Actual Rows"] <= limit + 1, node
        # and the sizes are of those rows only
        sizes = [n for n in message_scans if n.get("Index Name") == "messages_pkey"]
        assert sum(n["Actual Rows"] * n["Actual Loops"] for n in sizes) <= limit + 1


# -- what PostgreSQL text cannot hold ----------------------------------------------------


async def test_a_nul_character_never_fails_a_batch(pg_store: PostgresStore) -> None:
    with trio.fail_after(TIMEOUT):
        odd = private(1, 1, 2, "a\x00b", client_id="c\x00")
        fine = private(2, 1, 2, "fine")
        assert not await pg_store.save([odd, fine], [note(3, 2, message="n\x00", payload={
            "k": "v\x00"})])
        page = await pg_store.private_page(1, 2, limit=10, offset=0, before_id=None)
        assert [m.content for m in page] == ["fine", "a\ufffdb"]
        found = await pg_store.find_by_client_id(1, "c\x00")
        assert found is not None and found.id == 1
        # a resend under the same client id is still recognised
        assert await pg_store.save([private(4, 1, 2, "a\x00b", client_id="c\x00")], []) == {
            (1, "c\x00"): (1, odd.created_at)}
        (item,) = await pg_store.notification_page(2, limit=10, offset=0)
        assert item["message"] == "n\ufffd" and item["k"] == "v\x00"  # JSON escapes it
        user = await pg_store.create_user("nul\x00name", None)
        assert await pg_store.get_user_by_name("nul\x00name") == user


# -- connections and outages -------------------------------------------------------------


async def test_every_pooled_connection_has_a_lock_and_a_statement_timeout(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        with trio.fail_after(TIMEOUT):
            settings = await store.db.read(lambda c: c.execute(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
                " current_setting('application_name')").fetchone())
            assert settings == ("5s", "30s", _app_name(pg_url))
    finally:
        with trio.fail_after(TIMEOUT):
            await store.aclose()
    # a timeout the URL sets wins over the argument
    tuned = PostgresStore(f"{pg_url}&options=-c%20statement_timeout%3D1234", lock_timeout=2)
    try:
        with trio.fail_after(TIMEOUT):
            settings = await tuned.db.read(lambda c: c.execute(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
            ).fetchone())
            assert settings == ("2s", "1234ms")
    finally:
        with trio.fail_after(TIMEOUT):
            await tuned.aclose()


async def test_a_statement_past_its_timeout_is_unavailable(pg_url: str) -> None:
    store = PostgresStore(pg_url, statement_timeout=0.2)
    try:
        with trio.fail_after(TIMEOUT):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.db.read(lambda c: c.execute("SELECT pg_sleep(5)").fetchall())
            assert time.monotonic() - started < 3
            await store.ping()
    finally:
        with trio.fail_after(TIMEOUT):
            await store.aclose()


async def test_a_table_locked_by_another_session_is_unavailable_then_works_again(
    pg_store: PostgresStore, pg_url: str
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    with trio.fail_after(TIMEOUT):
        await pg_store.create_user("a", None)
        await pg_store.save([private(1, 1, 2)], [])
        locker = await trio.to_thread.run_sync(_sync, pg_url)
        try:
            await trio.to_thread.run_sync(lambda: locker.execute(
                "BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                started = trio.current_time()
                with pytest.raises(StoreUnavailable, match="lock"):
                    await pg_store.private_page(1, 2, limit=10, offset=0, before_id=None)
                with pytest.raises(StoreUnavailable):
                    await pg_store.save([private(2, 1, 2)], [])
                with pytest.raises(StoreUnavailable):
                    await pg_store.max_id()
                elapsed = trio.current_time() - started
                nursery.cancel_scope.cancel()
            assert elapsed < 5  # each call gave up after its 0.3 s lock timeout
            assert ticks > 10  # the event loop ran meanwhile (the calls wait in threads)
            assert (await pg_store.get_user(1)) is not None  # other tables still answer
        finally:
            await trio.to_thread.run_sync(locker.close)  # rolls back: the lock goes
        await pg_store.save([private(2, 1, 2)], [])
        assert [m.id for m in await pg_store.private_page(
            1, 2, limit=10, offset=0, before_id=None)] == [2, 1]


def _terminate(url: str) -> int:
    with _sync(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()", (_app_name(url),)
        ).fetchall()
    return len(rows)


def _backends(url: str) -> set[int]:
    with _sync(url) as conn:
        return {int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND pid <> pg_backend_pid()", (_app_name(url),))}


async def test_the_pool_reconnects_by_itself_after_its_backends_are_terminated(
    pg_store: PostgresStore, pg_url: str
) -> None:
    with trio.fail_after(TIMEOUT * 2):
        await pg_store.create_user("a", None)
        async with trio.open_nursery() as nursery:  # a few connections in the pool
            for i in range(6):
                nursery.start_soon(pg_store.save, [private(10 + i, 1, 2)], [])
        before = await trio.to_thread.run_sync(_backends, pg_url)
        assert before
        assert await trio.to_thread.run_sync(_terminate, pg_url) == len(before)
        # every call after the restart of its backends just works: no error reaches callers
        assert (await pg_store.get_user(1)) is not None
        await pg_store.save([private(20, 1, 2)], [note(21, 2)])
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(pg_store.max_id)
        assert await pg_store.max_id() == 21
        after = await trio.to_thread.run_sync(_backends, pg_url)
        assert after and not after & before
        # and once more, with the pool at rest
        await trio.to_thread.run_sync(_terminate, pg_url)
        await pg_store.ping()
        assert len(await pg_store.private_page(1, 2, limit=50, offset=0, before_id=None)) == 7


async def test_an_unreachable_server_is_unavailable_not_a_hang() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/trionet", connect_timeout=1)
    try:
        with trio.fail_after(TIMEOUT):
            started = trio.current_time()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.save([private(1, 1, 2)], [])
            with pytest.raises(StoreUnavailable):
                await store.migrate()
            assert trio.current_time() - started < 10
    finally:
        with trio.fail_after(TIMEOUT):
            await store.aclose()


def test_a_malformed_url_is_refused_at_once() -> None:
    with pytest.raises(psycopg.ProgrammingError):
        PostgresStore("postgresql://host:notaport/db?nonsense_option=1")
