"""Chapter 9 fixtures: a key store on SQLite and PostgreSQL, a clock.

Every key-store test runs on both databases: SQLite in a temporary
directory, PostgreSQL in a schema of its own (`tests.databases`; without
a server it is skipped, and fails in CI). Time is a `ManualClock` the
test moves, so expiry and overlap windows are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch07_api import database
from ch09_security.__main__ import main
from ch09_security.key_store import KeyHasher, KeyStore
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import Start, running_server
from tests.databases import postgres_url  # noqa: F401 (a fixture)

SECRET = b"s" * 32


@dataclass
class ManualClock:
    now_ms: int = 1_780_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/security.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def open_store(url: str, clock: ManualClock,
               secret: bytes = SECRET) -> KeyStore:
    store = KeyStore(database.open_engine(url), KeyHasher(secret), clock)
    store.create_schema()
    return store


@pytest.fixture
def store(database_url: str, clock: ManualClock) -> Iterator[KeyStore]:
    opened = open_store(database_url, clock)
    yield opened
    opened.engine.dispose()


# A command of `python -m ch09_security`, run in this process on a
# store of the test's own: its arguments in; exit code, stdout, stderr
# out.
Command = Callable[..., tuple[int, str, str]]


@pytest.fixture
def command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Callable[[str], Command]:
    monkeypatch.setenv("KEY_HASH_SECRET", SECRET.decode())
    url = f"sqlite:///{tmp_path}/keys.sqlite3"

    def of(name: str) -> Command:
        def run(*args: str) -> tuple[int, str, str]:
            code = main([name, "--database-url", url, *args])
            captured = capsys.readouterr()
            return code, captured.out, captured.err
        return run

    return of


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@pytest.fixture
def start_server(lexicon: Lexicon) -> Start:
    return partial(running_server, lexicon)
