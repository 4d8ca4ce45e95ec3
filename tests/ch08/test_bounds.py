"""The bound a fixture sets ends a test that runs past it."""

from __future__ import annotations

import asyncio

import pytest

from tests.ch08.conftest import TEST_BOUND_S


@pytest.fixture
def short_bound(request: pytest.FixtureRequest) -> None:
    request.node.stash[TEST_BOUND_S] = 0.05


@pytest.mark.xfail(raises=pytest.fail.Exception, strict=True,
                   reason="stopped at its bound, as it should be")
@pytest.mark.usefixtures("short_bound")
async def test_a_test_running_past_its_bound_is_stopped() -> None:
    await asyncio.sleep(1.0)  # twenty times the bound
