"""Zero retention by default, proven on disk; when asked, ciphertext only.

A real server in this process, composed as `serve` composes it (managed
keys, the `StreamGuard`, every dialect wrapped by `RetainingDialect`),
with the working directory and `TMPDIR` pointed at empty directories
and the database a fresh file. After each stream every file under the
test's directories is read whole, the database and its write-ahead log
included, and searched for slices of the audio sent and for the words
spoken; the server's log is searched for the words too.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.app import dialects
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import (
    DIALECTS,
    AssemblyAIClient,
    ClientAudio,
    ClientDialect,
    DeepgramClient,
    load_audio,
    stream,
)
from ch07_api import database
from ch09_security.audio_cli import open_vault
from ch09_security.key_store import KeyHasher, KeyStore
from ch09_security.keys_cli import now_ms
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch09_security.recording_keeper import RecordingKeeper
from ch09_security.retaining_dialect import retaining_dialects
from ch09_security.security_layer import security_layer
from ch09_security.vault import ObjectKind, sealed_objects
from tests.ch04.harness import Running, Start, audio_of, reference
from tests.ch09.conftest import SECRET

FIXTURE = "weather_forecast"  # "please read me the weather forecast ..."
MASTER = {MASTER_KEY_VARIABLE: base64.b64encode(bytes(range(32))).decode()}


class AssemblyAIRetaining(AssemblyAIClient):
    def query(self, audio: ClientAudio) -> dict[str, str]:
        return {**super().query(audio), "retain": "true"}


ASKING: dict[str, ClientDialect] = {
    "deepgram": DeepgramClient(retain="true"),
    "assemblyai": AssemblyAIRetaining(),
}


@dataclass
class Disk:
    root: Path  # everything the test may write lies under it
    url: str  # the database: a fresh SQLite file


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Disk:
    work, temp, data = (tmp_path / name for name in ("cwd", "tmp", "db"))
    for folder in (work, temp, data):
        folder.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR afresh
    return Disk(tmp_path, f"sqlite:///{data}/security.sqlite3")


@dataclass
class Service:
    running: Running
    store: KeyStore
    keeper: RecordingKeeper


@asynccontextmanager
async def retaining_service(start_server: Start,
                            url: str) -> AsyncIterator[Service]:
    store = KeyStore(database.open_engine(url), KeyHasher(SECRET), now_ms)
    store.create_schema()
    layer = security_layer(store, ApiKeys(()))
    keeper = RecordingKeeper(open_vault(store.engine, MASTER))
    try:
        async with start_server(
                key_check=layer.credentials, hooks=layer.guard,
                dialects_by_path=retaining_dialects(dialects(), keeper)
        ) as running:
            yield Service(running, store, keeper)
        await keeper.settled()
    finally:
        store.engine.dispose()


def needles(audio: bytes, words: str) -> dict[str, bytes]:
    """Slices of the audio from its speech, the transcript, its words."""
    found = {f"audio at {share}": audio[at:at + 64]
             for share in (0.3, 0.5, 0.7)
             for at in [int(len(audio) * share) & ~1]}
    assert all(len(set(s)) > 16 for s in found.values())  # not silence
    found["transcript"] = words.encode()
    for word in words.split():
        if len(word) >= 5:
            found[word] = word.encode()
    return found


def traces(root: Path, audio: bytes, words: str) -> dict[str, list[str]]:
    """Which needles are in which files under `root`."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files  # the database at least
    contents = {p.relative_to(root).as_posix(): p.read_bytes()
                for p in files}
    return {name: sorted(path for path, data in contents.items()
                         if needle in data)
            for name, needle in needles(audio, words).items()
            if any(needle in data for data in contents.values())}


@pytest.mark.parametrize("dialect", ["deepgram", "assemblyai"])
async def test_a_stream_that_does_not_ask_leaves_no_trace_on_disk(
    start_server: Start, disk: Disk, caplog: pytest.LogCaptureFixture,
    dialect: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    audio, words = load_audio(audio_of(FIXTURE)), reference(FIXTURE)
    async with retaining_service(start_server, disk.url) as service:
        made = service.store.create("acme")
        report = await stream(service.running.url, DIALECTS[dialect],
                              made.key, audio)
        await service.keeper.settled()
        assert report.transcript == words
        assert service.keeper.vault.listing() == []
    assert traces(disk.root, audio.payload, words) == {}
    assert all(w not in caplog.text for w in words.split() if len(w) > 4)
    # The search can find what is there.
    (disk.root / "tmp" / "control").write_bytes(audio.payload)
    assert traces(disk.root, audio.payload, words)["audio at 0.5"] == [
        "tmp/control"]


@pytest.mark.parametrize("dialect", ["deepgram", "assemblyai"])
async def test_a_stream_that_asks_is_kept_only_as_ciphertext(
    start_server: Start, disk: Disk, caplog: pytest.LogCaptureFixture,
    dialect: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    audio, words = load_audio(audio_of(FIXTURE)), reference(FIXTURE)
    async with retaining_service(start_server, disk.url) as service:
        made = service.store.create("acme")
        report = await stream(service.running.url, ASKING[dialect],
                              made.key, audio)
        await service.keeper.settled()
        assert report.transcript == words
        vault = service.keeper.vault
        kept, transcript = vault.listing("acme")
        assert (kept.kind, transcript.kind) == (ObjectKind.AUDIO,
                                                ObjectKind.TRANSCRIPT)
        assert vault.read(kept.object_id) == audio.payload
        assert (kept.encoding, kept.sample_rate) == ("linear16", 16_000)
        finals = vault.read(transcript.object_id).decode().splitlines()
        assert " ".join(finals) == words
        with vault.engine.connect() as connection:
            ciphertext = connection.scalar(
                select(sealed_objects.c.ciphertext)
                .where(sealed_objects.c.object_id == kept.object_id))
    assert isinstance(ciphertext, bytes)
    assert traces(disk.root, audio.payload, words) == {}
    # What is on disk is the ciphertext.
    assert traces(disk.root, ciphertext, "")["audio at 0.5"]
    assert f"event=retained stream_id={kept.stream_id} owner=acme" in (
        caplog.text)
    assert all(w not in caplog.text for w in words.split() if len(w) > 4)


async def test_a_retain_value_that_is_not_a_boolean_is_a_400(
    start_server: Start, disk: Disk,
) -> None:
    async with retaining_service(start_server, disk.url) as service:
        made = service.store.create("acme")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                    f"{service.running.url}/v1/listen?retain=please",
                    additional_headers={"Authorization":
                                        f"Token {made.key}"}):
                pass
    assert refused.value.response.status_code == 400
    assert b"retain must be true or false" in refused.value.response.body
