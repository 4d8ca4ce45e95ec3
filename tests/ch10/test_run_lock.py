"""One run at a time: a second is refused while the first lives, and
a first killed with SIGKILL leaves no lock behind (SQLite and
PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine

from ch07_api import database
from ch10_compliance.run_lock import RunLockedError, only_run

HOLDER = """
import sys
from ch07_api import database
from ch10_compliance.run_lock import only_run
with only_run(database.open_engine(sys.argv[1]), "retention"):
    print("holding", flush=True)
    sys.stdin.read()  # until killed
"""


@pytest.fixture
def engine(database_url: str) -> Engine:
    opened = database.open_engine(database_url)
    with opened.begin():  # the SQLite file exists, as a store's would
        pass
    return opened


def test_a_second_holder_is_refused_until_the_first_lets_go(
        engine: Engine, database_url: str) -> None:
    other = database.open_engine(database_url)
    with only_run(engine, "retention"):
        with (pytest.raises(RunLockedError, match="another retention"),
              only_run(other, "retention")):
            pass  # never reached
        with only_run(other, "export"):  # another name: its own lock
            pass
    with only_run(other, "retention"):
        pass
    other.dispose()
    engine.dispose()


def test_a_holder_killed_with_sigkill_leaves_no_lock(
        engine: Engine, database_url: str) -> None:
    with subprocess.Popen(
            [sys.executable, "-c", HOLDER, database_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "holding"
            with (pytest.raises(RunLockedError),
                  only_run(engine, "retention")):
                pass  # never reached
        finally:
            holder.kill()
            holder.wait(30)
    with only_run(engine, "retention"):
        pass
    engine.dispose()


def test_a_database_in_memory_needs_no_lock() -> None:
    engine = database.open_engine("sqlite://")
    with only_run(engine, "retention"), only_run(engine, "retention"):
        pass
