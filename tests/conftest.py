"""Shared fixtures, and the store the suite runs on.

``pytest --store=postgresql`` runs every test's server (``running_server()`` without an
explicit database) on a fresh PostgreSQL database of its own, made on the server that
``TRIONET_TEST_POSTGRES`` names (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and
dropped afterwards. ``scripts/test`` runs the suite once per store. Tests marked
``sqlite_only`` read or break SQLite's own files or connections; they run on SQLite in both
runs (tests/store/ covers the same promises on both stores).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from trionet.testing import TestServer, running_server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the store running_server() uses by default (see tests/conftest.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: reads or breaks SQLite's own files; runs on SQLite always")


@pytest.fixture(autouse=True)
def _default_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    store = str(request.config.getoption("--store"))
    if request.node.get_closest_marker("sqlite_only") is not None:
        store = "sqlite"
    monkeypatch.setenv("TRIONET_TEST_STORE", store)
    return store


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with running_server() as srv:
        yield srv
