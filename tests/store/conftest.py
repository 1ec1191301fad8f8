"""Fixtures of the Store conformance suite: every test of ``tests/store/`` that takes
``store`` runs once against each store.

``store`` is parametrised over ``sqlite`` (a file in the test's temporary folder) and
``postgresql``. The PostgreSQL server is the one the environment variable
``TRIONET_TEST_POSTGRES`` names, as the admin URL the test database is created from (default
``postgresql://postgres@127.0.0.1:5432/postgres``; the role needs ``CREATEDB``). The run
creates one database ``trionet_test_<random>`` there, migrates it once, empties its tables
(``TRUNCATE ... RESTART IDENTITY CASCADE``) before each test, and drops it at the end, also
when tests fail. Tests that need an unmigrated database (``fresh_url``) get one of their own,
dropped after them.

When the server cannot be reached, every PostgreSQL test FAILS, naming the URL: they are
never skipped, so a run without PostgreSQL cannot pass unnoticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from store_helpers import create_database, database_url, drop_database, empty_tables

from trionet.store import Store, open_store
from trionet.store.postgres import Database

KINDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The run's test database, migrated (dropped at the end of the run)."""
    name = create_database()
    try:
        url = database_url(name)
        Database(url).migrate_sync()
        yield url
    finally:
        drop_database(name)




@pytest.fixture(params=KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind, as a ``TRIONET_DATABASE`` value."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url: str = request.getfixturevalue("postgres_url")
    empty_tables(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on an empty, migrated database (closed after the test)."""
    opened = open_store(store_url)
    with trio.fail_after(30):
        await opened.migrate()
    try:
        yield opened
    finally:
        with trio.fail_after(30):
            await opened.aclose()


@pytest.fixture(params=KINDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, not migrated yet (its own, dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "fresh.db")
        return
    name = create_database("trionet_test_fresh")
    try:
        yield database_url(name)
    finally:
        drop_database(name)
