"""`python -m ch10_compliance serve`: chapter 9's service, governed.

Chapter 10, "Building compliance into the architecture vs bolting it
on". The composition root: chapter 9's secured streaming service (port
8010) and HTTP API (port 8110), with this chapter's parts wired in
where the requests pass, not beside them. Every credential check and
every malformed request is audited (`audited_access.py`); the
`GovernanceHooks` around chapter 9's guard enforce residency and
consent and audit each stream's start and end, as metadata; a kept
stream goes to the `GovernedKeeper`, into its region's store with its
retention deadline. The audit log shares the key database (chapter 9's
`--database-url`), is written by a batched `AuditWriter`, and gets a
signed checkpoint every `--checkpoint-s` and at shutdown. The HTTP API
adds consents and the audit checkpoint (`compliance_api.py`). Regions'
stores come from `REGION_STORES` (default two SQLite files, `eu` and
`us`) and `REGION_CAPACITY_BYTES`; each customer's regions from
`--residency`; deadlines from `--retention-policy`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from ch04_streaming.app import (
    build_server,
    event_loop_factory,
    run_until_signalled,
)
from ch04_streaming.auth import ApiKeys, split_keys
from ch04_streaming.engine import Recognizer
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import parse_settings
from ch04_streaming.stream_hooks import StreamHooks
from ch08_metering.serve import EmbeddedServer
from ch09_security import tls
from ch09_security.abuse_settings import (
    abuse_limits,
    server_caps,
)
from ch09_security.http_api import create_http_app
from ch09_security.key_store import KeyStore
from ch09_security.key_watch import KeyWatch
from ch09_security.keys_cli import open_store
from ch09_security.master_key import MasterKeyError
from ch09_security.origins import own_origins
from ch09_security.security_layer import security_layer
from ch09_security.serve import (
    add_service_arguments,
    api_config,
    guarded_dialects,
    transcription_api,
)
from ch09_security.server_secret import SecretError, load_secret
from ch09_security.tls import ServerTls, TlsConfigError
from ch10_compliance.audit import AuditLog, open_audit_log
from ch10_compliance.audit_cli import origin
from ch10_compliance.audit_writer import AuditWriter
from ch10_compliance.audited_access import (
    AuditedCredentials,
    audited_dialects,
)
from ch10_compliance.compliance_api import compliance_routes
from ch10_compliance.consent import ConsentLedger
from ch10_compliance.data_classes import DataClass
from ch10_compliance.governance_hooks import GovernanceHooks
from ch10_compliance.governed_keeper import GovernedKeeper
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.regional_store import configured_stores
from ch10_compliance.residency import (
    DEFAULT_RESIDENCY,
    ResidencyError,
    ResidencyGuard,
    load_residency,
)
from ch10_compliance.retention_policy import (
    DEFAULT_POLICY,
    RetentionPolicyError,
    load_policy,
)
from ch10_compliance.signer import Signer, SigningKeyError, load_signer
from ch10_compliance.subject_ref import SubjectRefs

log = logging.getLogger("ch10_compliance")
DEFAULT_PORT = 8010
DEFAULT_API_PORT = 8110


@dataclass
class GovernedService:
    speech: SpeechServer
    listener: socket.socket
    recognizer: Recognizer
    watch: KeyWatch
    keeper: GovernedKeeper
    writer: AuditWriter
    audit: AuditLog
    signer: Signer
    api: EmbeddedServer
    api_listener: socket.socket
    tls: ServerTls | None = None

    @property
    def api_port(self) -> int:
        port: int = self.api_listener.getsockname()[1]
        return port


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="chapter 9's service, audited and governed",
        description="Chapter 9's streaming endpoints and HTTP API, with "
        "every authentication, refusal and stream audited, residency "
        "and consent enforced, and kept streams stored in their region "
        "until their retention deadline. Other streaming settings come "
        "from CH04_* variables.")
    add_service_arguments(parser, DEFAULT_PORT, DEFAULT_API_PORT)
    parser.add_argument("--checkpoint-s", type=float, default=60.0,
                        help="publish a signed checkpoint this often, "
                        "if the log grew (default %(default)s)")
    parser.add_argument("--residency", type=Path,
                        default=DEFAULT_RESIDENCY,
                        help="customers' allowed regions (TOML)")
    parser.add_argument("--retention-policy", type=Path,
                        default=DEFAULT_POLICY,
                        help="the retention schedule (TOML)")


def governed_api(service_api: FastAPI, routes: APIRouter) -> FastAPI:
    """This chapter's routes first, chapter 9's API behind them."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_api.router.lifespan_context(service_api):
            yield

    app = FastAPI(title="Speech API: compliance", docs_url=None,
                  redoc_url=None, lifespan=lifespan)
    app.include_router(routes)
    app.mount("/", service_api)
    return app


@dataclass
class Governance:
    """This chapter's parts, for one control database."""

    writer: AuditWriter
    refs: SubjectRefs
    residency: ResidencyGuard
    consent: ConsentLedger
    processing: ProcessingRecords
    keeper: GovernedKeeper

    def hooks(self, guard: StreamHooks, clock: Callable[[], int]
              ) -> GovernanceHooks:
        return GovernanceHooks(guard, self.residency, self.consent,
                               self.processing, self.writer, self.refs,
                               clock)


def governance(args: argparse.Namespace, env: Mapping[str, str],
               store: KeyStore, writer: AuditWriter) -> Governance:
    """Regions' stores, residency, consent, processing records and the
    keeper, from the flags and the environment."""
    clock, refs = store.clock_ms, SubjectRefs(load_secret(env))
    regions = configured_stores(env, clock)
    residency = ResidencyGuard(load_residency(args.residency), regions,
                               writer)
    consent = ConsentLedger(store.engine, clock, writer, refs)
    processing = ProcessingRecords(store.engine, clock)
    for table in (consent, processing):
        table.create_schema()
    policy = load_policy(args.retention_policy)
    keep_ms = {c: policy.of(c).keep_ms
               for c in (DataClass.AUDIO, DataClass.TRANSCRIPT)}
    return Governance(writer, refs, residency, consent, processing,
                      GovernedKeeper(residency, consent, writer, refs,
                                     keep_ms, clock))


# --8<-- [start:governed_root]
def build_service(args: argparse.Namespace,
                  env: Mapping[str, str]) -> GovernedService:
    """Chapter 9's composition, with the audit log, residency, consent
    and retention wired in where requests pass."""
    files = tls.tls_files(args)
    server_tls = tls.load_server_tls(files) if files else None
    store = open_store(args.database_url)
    audit = open_audit_log(args.database_url)
    parts = governance(args, env, store, AuditWriter(audit))
    listener = socket.create_server((args.host, args.port))
    own = own_origins(args.host, listener.getsockname()[1])
    layer = security_layer(
        store, ApiKeys.of(*split_keys(env.get("SPEECH_API_KEYS", ""))),
        args.poll_s, args.page_tokens_for, abuse_limits(args, own))
    settings = replace(parse_settings([], env), host=args.host,
                       port=args.port, **server_caps(args))
    built = build_server(
        settings, keys=AuditedCredentials(layer.credentials, parts.writer),
        hooks=parts.hooks(layer.guard, store.clock_ms), routes=layer.routes,
        more_dialects=audited_dialects(guarded_dialects(
            settings, parts.keeper), parts.writer))
    signer = load_signer(env)
    api = governed_api(create_http_app(layer, transcription_api(env, layer)),
                       compliance_routes(layer.credentials, parts.consent,
                                         audit, signer))
    return GovernedService(
        built.server, listener, built.recognizer, layer.watch,
        parts.keeper, parts.writer, audit,
        signer, EmbeddedServer(api_config(api, server_tls)),
        socket.create_server((args.host, args.api_port)), server_tls)
# --8<-- [end:governed_root]


async def publish_checkpoints(service: GovernedService,
                              every_s: float) -> None:
    """A signed checkpoint whenever the log grew, every `every_s`."""
    while True:
        await asyncio.sleep(every_s)  # a period, not synchronisation
        await asyncio.to_thread(service.audit.checkpoint, service.signer,
                                origin())


async def serve(args: argparse.Namespace) -> int:
    service = build_service(args, os.environ)
    tasks = [asyncio.create_task(service.writer.run()),
             asyncio.create_task(service.watch.run()),
             asyncio.create_task(service.api.serve(
                 sockets=[service.api_listener])),
             asyncio.create_task(publish_checkpoints(
                 service, args.checkpoint_s))]
    context = service.tls.context if service.tls else None
    await service.speech.start(args.host, args.port,
                               sock=service.listener, ssl=context)
    http = "https" if service.tls else "http"
    print(f"API on {http}://{args.host}:{service.api_port} (PUT "
          "/v1/subjects/ID/consents/PURPOSE, GET /v1/audit/checkpoint)",
          flush=True)
    print(f"listening on {http}://{args.host}:{service.speech.port} "
          "(Deepgram /v1/listen, AssemblyAI /v3/ws), audited; name the "
          "speaker with subject=ID, keep with retain=true", flush=True)
    try:
        await run_until_signalled(service.recognizer, service.speech,
                                  service.speech.shutdown)
    finally:
        service.api.should_exit = True
        service.watch.stop()
        await asyncio.gather(*tasks[1:3], return_exceptions=True)
        tasks[3].cancel()
        await service.watch.flush_uses()
        await service.keeper.settled()  # streams kept at their close
        service.writer.stop()  # then every audit entry queued
        await tasks[0]
        await asyncio.to_thread(service.audit.checkpoint, service.signer,
                                origin())
        service.watch.verifier.store.engine.dispose()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve(args))
    except (SecretError, TlsConfigError, MasterKeyError, SigningKeyError,
            ResidencyError, RetentionPolicyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
