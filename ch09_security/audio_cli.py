"""`python -m ch09_security audio ...`: list, show, export, rotate, shred.

Chapter 9, "Securing audio data: encryption at rest". The operator's
view of what streams asked to have kept. `list` and `show` describe
objects without decrypting anything; `export` decrypts one, audio to a
WAV file in the format it was sent, a transcript to a text file.
`rotate` gives an owner a new key-encryption key and re-wraps the data
keys of all their objects (no audio is re-encrypted); `shred` destroys
all of an owner's keys, so that nothing of theirs can ever be read
again, backups of the object table included (it needs `--yes`). Every
command takes `--database-url` (env `DATABASE_URL`; default SQLite
`build/security.sqlite3`, the key store's) and the master key in
`AUDIO_MASTER_KEY` (default: one generated once into
`build/audio-master.key`), which the server must share.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import soundfile as sf
from sqlalchemy import Engine

from ch04_streaming.audio import BYTES_PER_SAMPLE, Encoding
from ch07_api import database
from ch09_security.envelope import TamperedError
from ch09_security.key_ring import KeyRing, NoKeysError, ShreddedError
from ch09_security.keys_cli import (
    DEFAULT_DATABASE,
    add_store_argument,
    now_ms,
    when,
)
from ch09_security.master_key import load_master_key
from ch09_security.server_secret import SecretError
from ch09_security.vault import (
    AudioVault,
    ObjectInfo,
    ObjectKind,
    UnknownObjectError,
)

# The stream's encoding -> libsndfile's subtype: a WAV holds each as is.
WAV_SUBTYPES = {Encoding.LINEAR16: "PCM_16", Encoding.MULAW: "ULAW",
                Encoding.FLOAT32: "FLOAT"}


def open_vault(engine: Engine, env: Mapping[str, str]) -> AudioVault:
    """The vault on `engine`, under the master key `env` gives."""
    vault = AudioVault(engine, KeyRing(load_master_key(env), now_ms))
    vault.create_schema()
    return vault


def write_wav(path: Path, audio: bytes, encoding: Encoding,
              sample_rate: int) -> None:
    subtype = WAV_SUBTYPES[encoding]
    samples, _ = sf.read(io.BytesIO(audio), format="RAW", subtype=subtype,
                         samplerate=sample_rate, channels=1,
                         dtype="float32" if subtype == "FLOAT" else "int16")
    sf.write(str(path), samples, sample_rate, subtype=subtype, format="WAV")


def duration_s(info: ObjectInfo) -> float:
    width = BYTES_PER_SAMPLE[Encoding(info.encoding)]
    return info.size_bytes / width / info.sample_rate


def state(info: ObjectInfo) -> str:
    return "shredded" if info.shredded else f"sealed (key v{info.kek_version})"


def describe(info: ObjectInfo) -> str:
    lines = [
        f"{info.object_id}  {info.kind}  {state(info)}",
        f"  owner      {info.owner}",
        f"  stream     {info.stream_id}",
        f"  created    {when(info.created_at_ms)}",
        f"  size       {info.size_bytes} bytes"
        + (" (truncated at the cap)" if info.truncated else ""),
    ]
    if info.kind is ObjectKind.AUDIO:
        lines.append(f"  audio      {info.encoding}, {info.sample_rate} Hz,"
                     f" {duration_s(info):.1f} s")
    return "\n".join(lines)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="kept audio: list, show, export, rotate, shred",
        description="Audio and transcripts kept at a stream's request "
        "(retain=true), sealed under per-owner keys.")
    add_store_argument(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="objects, never decrypted")
    listing.add_argument("--owner")
    actions.add_parser("show", help="one object, described").add_argument(
        "object_id")
    export = actions.add_parser(
        "export", help="decrypt one: audio to WAV, a transcript to text")
    export.add_argument("object_id")
    export.add_argument("--out", type=Path, required=True)
    actions.add_parser(
        "rotate", help="a new key for the owner; data keys re-wrapped"
    ).add_argument("owner")
    shred = actions.add_parser(
        "shred", help="destroy the owner's keys: their objects unreadable")
    shred.add_argument("owner")
    shred.add_argument("--yes", action="store_true",
                       help="it cannot be undone")


def run(args: argparse.Namespace) -> int:
    engine = database.open_engine(args.database_url or DEFAULT_DATABASE)
    try:
        return act(open_vault(engine, os.environ), args)
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (UnknownObjectError, ShreddedError, NoKeysError,
            TamperedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def act(vault: AudioVault, args: argparse.Namespace) -> int:
    if args.action == "list":
        for info in vault.listing(args.owner):
            print(f"{info.object_id}  {info.kind:<10}  {info.owner}  "
                  f"{info.size_bytes} bytes  {when(info.created_at_ms)}  "
                  f"{state(info)}")
    elif args.action == "show":
        print(describe(vault.info(args.object_id)))
    elif args.action == "export":
        export(vault, args.object_id, args.out)
    elif args.action == "rotate":
        done = vault.rotate(args.owner)
        print(f"{done.owner}: key version {done.version}; {done.rewrapped}"
              " data keys re-wrapped, no audio re-encrypted; destroyed "
              f"version(s) {', '.join(map(str, done.destroyed))}")
    else:
        return shred(vault, args.owner, args.yes)
    return 0


def export(vault: AudioVault, object_id: str, out: Path) -> None:
    info, plaintext = vault.info(object_id), vault.read(object_id)
    if info.kind is ObjectKind.AUDIO:
        write_wav(out, plaintext, Encoding(info.encoding), info.sample_rate)
    else:
        out.write_bytes(plaintext + b"\n")
    print(f"{object_id} ({info.kind}, {info.size_bytes} bytes) -> {out}")


def shred(vault: AudioVault, owner: str, confirmed: bool) -> int:
    objects = len(vault.listing(owner))
    if not confirmed:
        print(f"error: shredding {owner} makes {objects} objects unreadable"
              " for ever; pass --yes", file=sys.stderr)
        return 1
    destroyed = vault.shred(owner)
    if not destroyed:
        raise NoKeysError(f"{owner} has no keys to destroy")
    print(f"{owner}: {destroyed} key version(s) destroyed; {objects} "
          "objects can never be read again")
    return 0
