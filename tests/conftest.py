from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from trionet.testing import TestServer, running_server


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with running_server() as srv:
        yield srv
