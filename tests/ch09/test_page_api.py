"""Chapter 9's service tells the browser page the dialects it serves.

`build_service`, the chapter's composition root, wraps every one of
chapter 4's dialects twice (redaction around retention) and mounts the
wrappers at the same paths: `/v1/dialects` still lists each by its own
name and label, in chapter 4's order, and asks for no credential.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from ch09_security import serve
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch09_security.server_secret import SECRET_VARIABLE
from ch09_security.wrapped_dialect import WrappedDialect
from tests.ch04.harness import fetch
from tests.ch09.conftest import SECRET


async def test_the_secured_service_lists_chapter_4s_dialects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, SECRET.decode())  # the key store's
    env = {MASTER_KEY_VARIABLE: base64.b64encode(bytes(32)).decode()}
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(), "serve")
    args = parser.parse_args([
        "serve", "--port", "0", "--api-port", "0",
        "--database-url", f"sqlite:///{tmp_path}/security.sqlite3"])
    service = serve.build_service(args, env)
    try:
        await service.start(args.host, args.port, None)
        reply = await fetch(service.speech, "/v1/dialects")
        wrapped = service.speech.dialects.values()
        await service.shutdown()
    finally:
        service.api_listener.close()
        service.watch.verifier.store.engine.dispose()
    assert reply.status == 200
    assert all(isinstance(d, WrappedDialect) for d in wrapped)
    # By hand: chapter 4's README's three, wrapped but named as before.
    assert [(d["name"], d["label"], d["path"])
            for d in reply.json()["dialects"]] == [
        ("deepgram", "Deepgram", "/v1/listen"),
        ("assemblyai", "AssemblyAI", "/v3/ws"),
        ("openai", "OpenAI Realtime", "/v1/realtime")]
