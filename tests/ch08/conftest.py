"""Chapter 8 fixtures: a fresh ledger database, SQLite and PostgreSQL.

Every ledger test runs on both: SQLite in a temporary directory, and
PostgreSQL in a schema of its own, dropped afterwards. PostgreSQL comes
from `TEST_DATABASE_URL`, Redis from `REDIS_URL` (defaults: the local
servers CI provides); where they are not running, their tests are
skipped, and fail in CI. Each Redis test keys its state under a prefix
of its own and deletes it afterwards, and must finish within
REDIS_TEST_S.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from ch08_metering.ledger import Ledger
from ch08_metering.limits_redis import RedisLimiter
from ch08_metering.pricing import PRICES_DIR, PriceList, load_prices
from tests.ch08.delivery_harness import KEY, FakeClock, Ledgers
from tests.ch08.stripe_server import (
    RunningStripeServer,
    StripeState,
    running_stripe_server,
)
from tests.databases import postgres_url  # noqa: F401 (a fixture)
from tests.environment import unavailable

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_TEST_S = 10.0  # a Redis test takes under a second
# The longest a test's body may run, set by a fixture it uses.
TEST_BOUND_S = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run a coroutine test within the bound its fixtures set.

    A fixture cannot bound the test itself with `asyncio.timeout` around
    its `yield`: the test runs in another task, which that timeout never
    cancels. So the bound wraps the test's own coroutine.
    """
    seconds = item.stash.get(TEST_BOUND_S, None)
    test = getattr(item, "obj", None)
    if seconds is None or not inspect.iscoroutinefunction(test):
        return (yield)

    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> None:
        try:
            async with asyncio.timeout(seconds) as bound:
                await test(*args, **kwargs)
        except TimeoutError:
            if bound.expired():  # not a timeout of the test's own
                pytest.fail(f"the test ran past its {seconds} s bound")
            raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(item, "obj", bounded)
        return (yield)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def ledgers() -> Iterator[Ledgers]:
    """Makes empty ledgers; their connections are closed afterwards."""
    made = Ledgers()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def ledger(database_url: str, ledgers: Ledgers) -> Ledger:
    """An empty ledger; its connections are closed afterwards."""
    return ledgers.at(database_url)


@pytest.fixture
def prices() -> PriceList:
    """The price file in effect in November 2026."""
    return load_prices(PRICES_DIR / "2026-11.toml")


@dataclass
class SharedRedis:
    """One Redis, a key prefix of the test's own, replicas using both."""

    admin: Redis
    prefix: str
    made: AsyncExitStack

    def replica(self, redis: Redis | None = None,
                **settings: Any) -> RedisLimiter:
        """A limiter on a connection of its own, as a replica has."""
        limiter = RedisLimiter(redis or Redis.from_url(REDIS_URL),
                               prefix=self.prefix, **settings)
        self.made.push_async_callback(limiter.aclose)
        return limiter


@pytest.fixture
async def shared(
    request: pytest.FixtureRequest,
) -> AsyncIterator[SharedRedis]:
    admin = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        async with asyncio.timeout(REDIS_TEST_S):
            await admin.ping()
    except (RedisConnectionError, OSError, TimeoutError) as error:
        await admin.aclose()
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    prefix = f"speechlimits-test-{uuid.uuid4().hex[:12]}"
    request.node.stash[TEST_BOUND_S] = REDIS_TEST_S
    made = AsyncExitStack()
    try:
        yield SharedRedis(admin, prefix, made)
    finally:
        # Teardown runs in a task of its own, bounded here.
        async with asyncio.timeout(REDIS_TEST_S):
            try:
                await made.aclose()
            finally:
                keys = [k async for k in
                        admin.scan_iter(match=f"{prefix}:*")]
                if keys:
                    await admin.delete(*keys)
                await admin.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[RunningStripeServer]:
    """A Stripe-compatible server on the delivery worker's clock."""
    state = StripeState(api_key=KEY, clock=clock,
                        customers={"cus_acme", "cus_beta"})
    with running_stripe_server(state) as running:
        yield running
