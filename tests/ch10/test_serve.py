"""`python -m ch10_compliance serve`, as an operator runs it: its own
process, a key made by chapter 9's command, consents recorded over
HTTP, streams that name their speaker, and afterwards the audit log,
the regional stores and `audit verify` read as an auditor would."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.client import DIALECTS, ClientAudio, load_audio, stream
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch10_compliance.checkpoints import parse_checkpoint
from ch10_compliance.signer import (
    new_seed,
    parse_public_key,
    signer_from_seed,
)
from examples.service import Service, running_service, wait_until_ready
from examples.stream_file import WithQuery
from tests.ch04.harness import audio_of, reference
from tests.ch09.conftest import SECRET
from tests.ch09.test_serve import KEY_LINE

API_LINE = re.compile(r"API on http://127\.0\.0\.1:(\d+)")


@dataclass
class Governed:
    service: Service
    env: dict[str, str]
    tmp: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.service.port}"

    @property
    def api(self) -> str:
        found = API_LINE.search("".join(self.service.banner))
        assert found is not None, self.service.banner
        return f"http://127.0.0.1:{found.group(1)}"


async def command(env: dict[str, str], *args: str,
                  expect: int = 0) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == expect, output
    return output.decode()


def environment(tmp: Path, eu_capacity: int | None = None
                ) -> dict[str, str]:
    capacity = f"eu={eu_capacity}" if eu_capacity else ""
    return {"DATABASE_URL": f"sqlite:///{tmp}/control.sqlite3",
            "KEY_HASH_SECRET": SECRET.decode(),
            MASTER_KEY_VARIABLE: base64.b64encode(os.urandom(32)).decode(),
            "AUDIT_SIGNING_KEY": new_seed(),
            "REGION_STORES": f"eu=sqlite:///{tmp}/eu.sqlite3 "
                             f"us=sqlite:///{tmp}/us.sqlite3",
            "REGION_CAPACITY_BYTES": capacity,
            "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}


@asynccontextmanager
async def governed(tmp: Path, eu_capacity: int | None = None,
                   checkpoint_s: float = 3600) -> AsyncIterator[Governed]:
    env = environment(tmp, eu_capacity)
    async with running_service(
            ("-m", "ch10_compliance", "serve", "--port", "0",
             "--api-port", "0", "--checkpoint-s", str(checkpoint_s)),
            env) as service:
        await wait_until_ready(service.port)
        yield Governed(service, env, tmp)
    assert service.process.returncode == 0


async def new_key(env: dict[str, str], owner: str) -> str:
    printed = await command(env, "ch09_security", "keys", "create",
                            "--owner", owner)
    [key] = KEY_LINE.findall(printed.encode())
    return str(key.decode())


async def consent(api: str, key: str, subject: str, purpose: str,
                  granted: bool) -> dict[str, object]:
    def put() -> dict[str, object]:
        request = urllib.request.Request(
            f"{api}/v1/subjects/{subject}/consents/{purpose}",
            method="PUT", headers={"Authorization": f"Token {key}",
                                   "Content-Type": "application/json"},
            data=json.dumps({"type": "consent",
                             "granted": granted}).encode())
        with urllib.request.urlopen(request, timeout=10) as reply:
            body: dict[str, object] = json.load(reply)
            return body
    return await asyncio.to_thread(put)


async def refused(url: str, key: str, audio: ClientAudio,
                  **query: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        await stream(url, WithQuery(DIALECTS["deepgram"], query), key,
                     audio)
    response = caught.value.response
    return response.status_code, response.body.decode(errors="replace")


def objects(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT region, data_class, subject FROM "
                          "governed_objects ORDER BY data_class").fetchall()


def audit_entries(tmp: Path) -> list[dict[str, object]]:
    with sqlite3.connect(tmp / "control.sqlite3") as db:
        rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq")
        return [json.loads(entry) for (entry,) in rows]


async def test_a_governed_stream_is_audited_kept_in_region_and_verified(
    tmp_path: Path,
) -> None:
    sent = load_audio(audio_of("living_room"))
    env = environment(tmp_path)
    key = await new_key(env, "acme-eu")  # residency.toml: EU only
    async with governed(tmp_path) as running:
        env = running.env
        await consent(running.api, key, "alice", "transcription", True)
        state = await consent(running.api, key, "alice", "retention", True)
        assert state == {"type": "consents", "subject": "alice",
                         "consents": {"transcription": True,
                                      "retention": True,
                                      "model_improvement": False}}
        kept = WithQuery(DIALECTS["deepgram"],
                         {"subject": "alice", "retain": "true"})
        report = await stream(running.url, kept, key, sent)
        assert report.transcript == reference("living_room")
        status, body = await refused(running.url, key, sent,
                                     subject="alice", region="us")
        assert status == 403 and "may not keep data in region us" in body
        status, body = await refused(running.url, key, sent,
                                     subject="bob")
        assert status == 403 and "has not consented to transcription" in body
        status, body = await refused(running.url, key, sent,
                                     retain="true")
        assert status == 400 and "retain=true needs subject=" in body
        status, body = await refused(running.url, key, sent,
                                     subject="alice smith")
        assert status == 400 and "subject must be 1 to 128" in body
        status, body = await refused(running.url, key, sent,
                                     encoding="opus-ish")
        assert status == 400
        status, _ = await refused(running.url, "spk_wrong", sent)
        assert status == 401
    # The audio and the transcript are in the EU store, and only there.
    assert objects(tmp_path / "eu.sqlite3") == [
        ("eu", "audio", "alice"), ("eu", "transcript", "alice")]
    assert objects(tmp_path / "us.sqlite3") == []
    entries = audit_entries(tmp_path)
    actions = [e["action"] for e in entries]
    for expected in ("auth.succeeded", "auth.failed", "authz.denied",
                     "input.rejected", "consent.granted",
                     "inference.stream_started", "inference.stream_ended",
                     "data.stored"):
        assert expected in actions, expected
    ended = next(e for e in entries
                 if e["action"] == "inference.stream_ended")
    details = ended["details"]
    assert isinstance(details, dict) and details["audio_ms"] > 1000
    text = json.dumps(entries)
    assert key not in text and "spk_wrong" not in text
    assert '"alice"' not in text  # subjects only as keyed hashes
    printed = await command(env, "ch10_compliance", "audit", "verify")
    assert printed.strip().endswith("checkpoints: OK")


async def test_consent_withdrawn_mid_stream_keeps_nothing(
    tmp_path: Path,
) -> None:
    audio = load_audio(audio_of("living_room"))
    env = environment(tmp_path)
    key = await new_key(env, "acme-eu")
    async with governed(tmp_path) as running:
        for purpose in ("transcription", "retention"):
            await consent(running.api, key, "carol", purpose, True)
        target = (f"{running.url}/v1/listen?encoding=linear16&sample_rate="
                  f"{audio.sample_rate}&subject=carol&retain=true")
        async with connect(target, additional_headers={
                "Authorization": f"Token {key}"}) as socket:
            half = len(audio.payload) // 2
            await socket.send(audio.payload[:half])
            await consent(running.api, key, "carol", "retention", False)
            await socket.send(audio.payload[half:])
            await socket.send(json.dumps({"type": "CloseStream"}))
            async with asyncio.timeout(30):
                async for _ in socket:
                    pass
    assert objects(tmp_path / "eu.sqlite3") == []
    stored = [e for e in audit_entries(tmp_path)
              if e["action"] == "data.stored"]
    assert [(e["outcome"], e["reason"]) for e in stored] == [
        ("failure", "consent to retention was withdrawn during the "
         "stream")]


async def test_a_full_eu_store_refuses_and_nothing_lands_in_the_us(
    tmp_path: Path,
) -> None:
    sent = load_audio(audio_of("living_room"))
    env = environment(tmp_path)
    key = await new_key(env, "acme-eu")
    # Room for exactly one recording of this fixture: audio, transcript.
    room = len(sent.payload) + len(reference("living_room").encode())
    async with governed(tmp_path, eu_capacity=room) as running:
        for purpose in ("transcription", "retention"):
            await consent(running.api, key, "dave", purpose, True)
        kept = WithQuery(DIALECTS["deepgram"],
                         {"subject": "dave", "retain": "true"})
        await stream(running.url, kept, key, sent)
        async with asyncio.timeout(30):  # kept after the stream closed
            while len(objects(tmp_path / "eu.sqlite3")) < 2:
                await asyncio.sleep(0.05)
        status, body = await refused(running.url, key, sent,
                                     subject="dave", retain="true")
        assert status == 507 and "the eu store is full" in body
        report = await stream(running.url, WithQuery(
            DIALECTS["deepgram"], {"subject": "dave"}), key, sent)
        assert report.transcript == reference("living_room")  # not kept
    assert objects(tmp_path / "eu.sqlite3") == [
        ("eu", "audio", "dave"), ("eu", "transcript", "dave")]
    assert objects(tmp_path / "us.sqlite3") == []


async def test_checkpoints_are_published_while_the_log_grows(
    tmp_path: Path,
) -> None:
    sent = load_audio(audio_of("silence"))
    async with governed(tmp_path, checkpoint_s=0.2) as running:
        status, _ = await refused(running.url, "spk_wrong", sent)
        assert status == 401  # an entry: auth.failed

        def latest() -> dict[str, str] | None:
            try:
                with urllib.request.urlopen(
                        f"{running.api}/v1/audit/checkpoint",
                        timeout=5) as reply:
                    body: dict[str, str] = json.load(reply)
                    return body
            except urllib.error.HTTPError:
                return None  # 404: none published yet

        async with asyncio.timeout(30):
            while (published := await asyncio.to_thread(latest)) is None:
                await asyncio.sleep(0.1)
        key = parse_public_key(published["public_key"])
        assert parse_checkpoint(published["checkpoint"], key).size >= 1
        seed = running.env["AUDIT_SIGNING_KEY"]
        assert published["public_key"] == signer_from_seed(
            seed, "test").public_key_text
