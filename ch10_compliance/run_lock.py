"""One retention run at a time, and a killed run's lock gone with it.

Chapter 10, "Data retention and deletion policies for audio data". Two
deletion jobs at once (a cron entry on two replicas, an operator's run
beside the scheduled one) would each audit what the other deleted.
Each run therefore holds a lock that the operating system or the
database releases when its holder dies, so a run killed with SIGKILL
never blocks the next one: on PostgreSQL a session advisory lock, on
SQLite an exclusive `flock` on a file beside the database. A lock held
by a live run refuses the second at once, with a clear error, rather
than queueing it behind a job of unknown length.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text


class RunLockedError(RuntimeError):
    """Another run holds the lock."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    digest = hashlib.sha256(f"ch10:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def only_run(engine: Engine, name: str) -> Iterator[None]:
    """Hold `name`'s lock on this database while the block runs."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            key = {"key": advisory_key(name)}
            if not connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), key):
                raise RunLockedError(f"another {name} run is under way "
                                     "on this database")
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), key)
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a database of this process alone: no one else to meet
        return
    path = Path(f"{database}.{name}.lock")
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another {name} run is under way on "
                                 f"{database}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
