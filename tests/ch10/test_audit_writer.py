"""The service's audit writer: batches, its bound, a database that
fails for a while, and events from worker threads."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from ch07_api import database
from ch10_compliance.audit import AuditLog
from ch10_compliance.audit_event import Action, AuditEvent
from ch10_compliance.audit_writer import DROPPED, AuditWriter


def event(n: int) -> AuditEvent:
    return AuditEvent(Action.STREAM_ENDED, "key_1", target=f"st_{n}")


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    opened = AuditLog(database.open_engine(
        f"sqlite:///{tmp_path}/audit.sqlite3"))
    opened.create_schema()
    return opened


def batches_of(log: AuditLog, monkeypatch: pytest.MonkeyPatch
               ) -> list[int]:
    sizes: list[int] = []
    append = log.append

    def counted(events: Sequence[AuditEvent]) -> list[int]:
        sizes.append(len(events))
        return append(events)

    monkeypatch.setattr(log, "append", counted)
    return sizes


async def test_events_are_written_in_batches(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = batches_of(log, monkeypatch)
    writer = AuditWriter(log, max_batch=1_000)
    for n in range(2_500):
        writer.record(event(n))
    writer.stop()
    await asyncio.wait_for(writer.run(), 30)
    assert sizes == [1_000, 1_000, 500]
    assert log.size() == 2_500


async def test_past_its_bound_it_refuses_and_counts_what_it_drops(
        log: AuditLog) -> None:
    writer = AuditWriter(log, max_pending=4)
    accepting = [writer.accepting]
    for n in range(2):
        writer.record(event(n))
    accepting.append(writer.accepting)
    assert accepting == [True, False]  # half full: no new streams
    for n in range(2, 7):
        writer.record(event(n))  # 4 kept, 3 dropped
    writer.stop()
    await asyncio.wait_for(writer.run(), 30)
    entries = [text for _, text in log.entries()]
    assert len(entries) == 5
    assert DROPPED in entries[-1] and '"count":3' in entries[-1]


async def test_a_failing_database_keeps_the_events_until_it_is_back(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    append, failures = log.append, [2]

    def flaky(events: Sequence[AuditEvent]) -> list[int]:
        if failures[0]:
            failures[0] -= 1
            raise OSError("database unreachable")
        return append(events)

    monkeypatch.setattr(log, "append", flaky)
    writer = AuditWriter(log, max_pending=3, retry_s=0.0)
    for n in range(4):
        writer.record(event(n))  # the fourth is dropped, and counted
    writer.stop()
    with caplog.at_level(logging.ERROR, "ch10_compliance"):
        await asyncio.wait_for(writer.run(), 30)
    targets = [text.split('"target":"')[1].split('"')[0]
               for _, text in log.entries()]
    assert targets == ["st_0", "st_1", "st_2", ""]
    assert '"count":1' in log.entries()[-1][1]
    assert caplog.text.count("event=audit_write_failed") == 2


async def test_at_stop_a_database_that_stays_down_is_given_up(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def down(events: Sequence[AuditEvent]) -> list[int]:
        raise OSError("database unreachable")

    monkeypatch.setattr(log, "append", down)
    writer = AuditWriter(log, max_pending=2, retry_s=0.0)
    for n in range(3):
        writer.record(event(n))
    writer.stop()
    with caplog.at_level(logging.ERROR, "ch10_compliance"):
        await asyncio.wait_for(writer.run(), 30)
    assert "event=audit_entries_lost entries=3" in caplog.text


async def test_an_event_from_a_worker_thread_wakes_the_writer(
        log: AuditLog) -> None:
    writer = AuditWriter(log)
    running = asyncio.create_task(writer.run())
    await asyncio.sleep(0)  # the writer is waiting for work
    thread = threading.Thread(target=writer.record, args=(event(1),))
    thread.start()
    thread.join(10)
    async with asyncio.timeout(10):
        while log.size() < 1:
            await asyncio.sleep(0.01)
    writer.stop()
    await asyncio.wait_for(running, 10)
    assert log.size() == 1
