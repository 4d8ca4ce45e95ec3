"""A data subject's rights, carried out: export, erasure, status.

Chapter 10, "GDPR for voice data: explicit consent, erasure, access,
portability" and "CCPA implications for stored audio and transcripts".
An export (Art. 15 access, Art. 20 portability) is a zip archive of
what the service holds about one person: recordings as stored (a WAV
beside linear16), transcripts, consents, the streams recorded about
them, their usage events and their requests, with a manifest naming
each file's SHA-256 and what is left out and why. An erasure (Art. 17)
withdraws every consent first, so nothing new is kept while it runs,
destroys the subject's keys and rows in every region, forgets which
streams were theirs, deletes cached exports, and ends with a receipt
signed by the audit key, which anyone holding the public key can check
without trusting our database. Each step can be done again, so an
erasure killed half-way is finished by a rerun under the same request,
and there is only ever one receipt. Usage events stay: invoices need
them (GDPR Art. 17(3)(b)), and with the stream records gone they no
longer lead to anyone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import wave
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)
from sqlalchemy import Engine, func, select

from ch04_streaming.audio import Encoding
from ch08_metering.schema import usage_events
from ch09_security.key_store import reading
from ch09_security.keys_cli import when
from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    AuditSink,
    Detail,
    Outcome,
)
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.data_classes import DataClass
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.regional_store import RegionalStore, StoredObject
from ch10_compliance.signer import (
    Signer,
    SigningKeyError,
    parse_public_key,
    verify,
)
from ch10_compliance.subject_requests import (
    Law,
    RequestKind,
    SubjectRequest,
    SubjectRequests,
)

SCHEMA_VERSION = 1
NOT_CONFIGURED = "not configured: no usage ledger was given (LEDGER_URL)"
USAGE_KEPT_BASIS = {
    Law.GDPR: "GDPR Art. 17(3)(b): kept for invoices, a legal obligation",
    Law.CCPA: "Cal. Civ. Code 1798.105(d)(8): kept for invoices, a "
              "legal obligation",
}
UNLINKED = ("their stream ids were the only link to the subject, and the "
            "records of those streams are erased")
EXCLUDED = [
    {"what": "inferred data",
     "why": "portability (GDPR Art. 20) covers data the subject provided "
            "and data observed about them; the service keeps no "
            "inferences about a person (no voiceprints, no speaker or "
            "emotion labels)"},
    {"what": "audit log entries",
     "why": "kept as evidence that requests were handled (GDPR Art. "
            "5(2)); they hold metadata only, never audio or text"},
    {"what": "other people's voices",
     "why": "recordings are included as stored; where someone else "
            "speaks in one, review before disclosing it (GDPR Art. "
            "15(4))"},
]


class UnknownSubjectError(LookupError):
    """Nothing about this subject anywhere: no request can be met."""


@dataclass(frozen=True)
class ExportResult:
    request_id: str
    path: Path
    counts: Mapping[str, int]


@dataclass(frozen=True)
class ErasureReceipt:
    request_id: str
    document: str  # {"receipt": {...}, "signature": base64}, as JSON

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.document)["receipt"]
        return parsed


@dataclass(frozen=True)
class RequestStatus:
    request: SubjectRequest
    days_left: int | None  # None once completed
    overdue: bool


def subject_folder(exports_dir: Path, owner: str, subject: str) -> Path:
    """Where a subject's exports are cached: named by a hash, since
    an id the customer chose may hold any character, `/` and `..`
    included."""
    digest = hashlib.sha256(f"{owner}\0{subject}".encode()).hexdigest()
    return exports_dir / digest[:32]


def signed(body: Mapping[str, Any], signer: Signer) -> str:
    signature = signer.sign(rfc8785.dumps(body))
    return json.dumps({"receipt": body,
                       "signature": base64.b64encode(signature).decode()},
                      indent=2, sort_keys=True)


def verify_receipt(document: str,
                   public_key: Ed25519PublicKey | str) -> bool:
    """True if the receipt is exactly what the holder of the signing
    key signed; anything malformed or altered is False."""
    try:
        parsed = json.loads(document)
        message = rfc8785.dumps(parsed["receipt"])
        signature = base64.b64decode(parsed["signature"], validate=True)
        key = (parse_public_key(public_key)
               if isinstance(public_key, str) else public_key)
    except (ValueError, KeyError, TypeError, SigningKeyError):
        return False
    return verify(key, message, signature)


@dataclass
class Archive:
    """A zip being written, and the SHA-256 of each file put in it."""

    zip: zipfile.ZipFile
    at_ms: int  # each file's date, from the injected clock
    files: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, data: bytes) -> None:
        self.write(name, data)
        self.files.append({"path": name, "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()})

    def add_json(self, name: str, value: object) -> None:
        self.add(name, json.dumps(value, indent=2).encode() + b"\n")

    def write(self, name: str, data: bytes) -> None:
        moment = datetime.fromtimestamp(self.at_ms // 1000, UTC)
        entry = zipfile.ZipInfo(name, moment.timetuple()[:6])
        self.zip.writestr(entry, data, zipfile.ZIP_DEFLATED)


def wav_of_linear16(pcm: bytes, sample_rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return out.getvalue()


def described(info: StoredObject) -> dict[str, Any]:
    return {"object_id": info.object_id, "region": info.region,
            "data_class": str(info.data_class),
            "stream_id": info.stream_id, "encoding": info.encoding,
            "sample_rate": info.sample_rate,
            "size_bytes": info.size_bytes, "truncated": info.truncated,
            "created_at": when(info.created_at_ms),
            "expires_at": when(info.expires_at_ms),
            "readable": not info.shredded}


def request_listed(request: SubjectRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "kind": str(request.kind),
            "law": str(request.law),
            "received_at": when(request.received_at_ms),
            "due_at": when(request.due_at_ms),
            "extended_due_at": when(request.extended_due_at_ms),
            "extension_reason": request.extension_reason,
            "completed_at": when(request.completed_at_ms),
            "receipt": request.receipt}


@dataclass
class SubjectService:
    stores: Mapping[str, RegionalStore]
    consent: ConsentLedger
    processing: ProcessingRecords
    requests: SubjectRequests
    sink: AuditSink
    signer: Signer
    clock_ms: Callable[[], int]
    exports_dir: Path
    ledger_engine: Engine | None = None
    # How the audit log names a subject: a keyed hash, never the id,
    # since the log outlives the erasure it records.
    refs: Callable[[str, str], str] = field(kw_only=True)

    # ----- access and portability -----

    def export(self, owner: str, subject: str, law: Law,
               actor: str = "system:subjects",
               kind: RequestKind = RequestKind.ACCESS) -> ExportResult:
        self._refuse_unknown(owner, subject, law,
                             Action.SUBJECT_EXPORTED, actor)
        request = self._open(owner, subject, kind, law, actor)
        folder = subject_folder(self.exports_dir, owner, subject)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.request_id}.zip"
        # Written aside and renamed: a crash never leaves a partial
        # archive under the name of a finished one.
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as zf:
            archive = Archive(zf, self.clock_ms())
            counts = self._write_contents(archive, request, actor)
            usage = self._write_usage(archive, owner, subject, counts)
            archive.write("manifest.json", json.dumps({
                "schema_version": SCHEMA_VERSION,
                "generated_at": when(self.clock_ms()),
                "request_id": request.request_id, "kind": str(kind),
                "law": str(law), "owner": owner, "subject": subject,
                "counts": counts, "usage": usage,
                "files": archive.files, "excluded": EXCLUDED,
            }, indent=2).encode() + b"\n")
        os.replace(partial, path)
        self.requests.complete(request.request_id)
        self.sink.record(AuditEvent(
            action=Action.SUBJECT_EXPORTED, actor=actor, owner=owner,
            target=self.refs(owner, subject),
            details={"request_id": request.request_id, "law": str(law),
                     "kind": str(kind), **counts}))
        return ExportResult(request.request_id, path, counts)

    def _write_contents(self, archive: Archive, request: SubjectRequest,
                        actor: str) -> dict[str, int]:
        owner, subject = request.owner, request.subject
        counts = {"recordings": 0, "transcripts": 0, "unreadable": 0}
        for region, store in self.stores.items():
            objects = store.listing(owner, subject)
            for info in objects:
                counts[self._write_object(archive, store, info)] += 1
            if objects:
                self.sink.record(AuditEvent(
                    action=Action.DATA_READ, actor=actor, owner=owner,
                    target=self.refs(owner, subject),
                    reason="subject export",
                    details={"region": region, "objects": len(objects),
                             "request_id": request.request_id}))
        streams = self.processing.streams(owner, subject)
        archive.add_json("streams.json", [
            {"stream_id": s.stream_id, "region": s.region,
             "started_at": when(s.started_at_ms)} for s in streams])
        consents = self.consent.history(owner, subject)
        archive.add_json("consents.json", [
            {"purpose": str(c.purpose), "granted": c.granted,
             "at": when(c.at_ms), "source": c.source} for c in consents])
        requests = self.requests.for_subject(owner, subject)
        archive.add_json("requests.json",
                         [request_listed(r) for r in requests])
        counts.update(streams=len(streams), consents=len(consents),
                      requests=len(requests))
        return counts

    def _write_object(self, archive: Archive, store: RegionalStore,
                      info: StoredObject) -> str:
        """One object's description and content: which count it adds
        to."""
        audio = info.data_class is DataClass.AUDIO
        folder = "recordings" if audio else "transcripts"
        stem = f"{folder}/{info.object_id}"
        archive.add_json(f"{stem}.json", described(info))
        if info.shredded:  # its key was destroyed: nothing to read
            return "unreadable"
        content = store.read(info.object_id)
        if not audio:
            archive.add(f"{stem}.txt", content)
            return "transcripts"
        archive.add(f"{stem}.{info.encoding}", content)  # as stored
        if info.encoding == Encoding.LINEAR16:
            archive.add(f"{stem}.wav",
                        wav_of_linear16(content, info.sample_rate))
        return "recordings"

    def _write_usage(self, archive: Archive, owner: str, subject: str,
                     counts: dict[str, int]) -> str:
        events = self._usage_events(owner, subject)
        if events is None:
            return NOT_CONFIGURED
        archive.add_json("usage.json", events)
        counts["usage_events"] = len(events)
        return f"{len(events)} usage events of the subject's streams"

    def _usage_events(self, owner: str,
                      subject: str) -> list[dict[str, Any]] | None:
        if self.ledger_engine is None:
            return None
        u = usage_events.c
        query = (select(u.source, u.id, u.meter, u.value, u.features,
                        u.stream_id, u.event_time_ms)
                 .where(u.customer == owner,
                        u.stream_id.in_(self._stream_ids(owner, subject)))
                 .order_by(u.event_time_ms, u.source, u.id))
        with reading(self.ledger_engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [{**{k: v for k, v in row.items() if k != "event_time_ms"},
                 "event_time": when(row["event_time_ms"])} for row in rows]

    def _usage_count(self, owner: str, subject: str) -> int | None:
        if self.ledger_engine is None:
            return None
        u = usage_events.c
        query = select(func.count()).where(
            u.customer == owner,
            u.stream_id.in_(self._stream_ids(owner, subject)))
        with reading(self.ledger_engine) as connection:
            return int(connection.scalar(query) or 0)

    def _stream_ids(self, owner: str, subject: str) -> list[str]:
        ids = {s.stream_id for s in self.processing.streams(owner, subject)}
        for store in self.stores.values():
            ids.update(o.stream_id for o in store.listing(owner, subject))
        return sorted(ids)

    # ----- erasure -----

    def erase(self, owner: str, subject: str, law: Law,
              actor: str = "system:subjects") -> ErasureReceipt:
        """Erase the subject everywhere: idempotent, and resumable
        under the same request after a crash."""
        finished = self._finished_erasure(owner, subject)
        if finished is not None:
            return finished
        request = self._pending_erasure(owner, subject)
        if request is None:
            self._refuse_unknown(owner, subject, law,
                                 Action.SUBJECT_ERASED, actor)
            request = self._open(owner, subject, RequestKind.ERASURE,
                                 law, actor)
        return self._carry_out(request, actor)

    # --8<-- [start:erasure_across_stores]
    def _carry_out(self, request: SubjectRequest,
                   actor: str) -> ErasureReceipt:
        """Every step can be done again: a rerun finishes the work and
        adds to what the earlier runs recorded."""
        owner, subject = request.owner, request.subject
        done = Tally(self.requests, request.request_id,
                     dict(request.progress))
        if "usage_events_kept" not in done.counts:  # while still linked
            done.set("usage_events_kept",
                     self._usage_count(owner, subject))
        # First, so that nothing new of theirs is kept meanwhile.
        done.add("consents_withdrawn", self.consent.withdraw_all(
            owner, subject, source=f"erasure:{request.request_id}"))
        for region, store in self.stores.items():
            deletion = store.erase_subject(owner, subject)
            # Rows are counted from the journal, so those a killed run
            # deleted are counted (and audited) now; keys it destroyed
            # are not: the rerun finds them gone.
            erased = self._audit_erased(store, request, actor)
            done.add(f"{region}.objects_deleted", erased)
            done.add(f"{region}.keys_destroyed", deletion.keys_destroyed)
        done.add("processing_records_forgotten",
                 self.processing.forget(owner, subject))
        done.add("cached_exports_deleted",
                 self._delete_exports(owner, subject))
        return self._complete(request, done.counts, actor)
    # --8<-- [end:erasure_across_stores]

    def _audit_erased(self, store: RegionalStore, request: SubjectRequest,
                      actor: str) -> int:
        entries = [e for e in store.unaudited()
                   if e.reason == "erasure" and e.owner == request.owner
                   and e.subject == request.subject]
        if entries:
            self.sink.record(AuditEvent(
                action=Action.DATA_DELETED, actor=actor,
                owner=request.owner,
                target=self.refs(request.owner, request.subject),
                reason="erasure", details={
                    "region": store.region, "objects": len(entries),
                    "request_id": request.request_id}))
            store.mark_audited(e.object_id for e in entries)
        return len(entries)

    def _delete_exports(self, owner: str, subject: str) -> int:
        folder = subject_folder(self.exports_dir, owner, subject)
        if not folder.exists():
            return 0
        count = sum(1 for _ in folder.iterdir())
        shutil.rmtree(folder)
        return count

    def _complete(self, request: SubjectRequest, counts: Mapping[str, Any],
                  actor: str) -> ErasureReceipt:
        completed_at = self.clock_ms()
        regions = {region: {
            "objects_deleted": counts.get(f"{region}.objects_deleted", 0),
            "keys_destroyed": counts.get(f"{region}.keys_destroyed", 0),
        } for region in self.stores}
        kept = counts["usage_events_kept"]
        usage: dict[str, Any] = {"store": NOT_CONFIGURED} if kept is None \
            else {"kept": kept, "linkable": False, "why_kept":
                  USAGE_KEPT_BASIS[request.law], "why_unlinkable": UNLINKED}
        body = {
            "receipt": "erasure", "version": SCHEMA_VERSION,
            "request_id": request.request_id, "owner": request.owner,
            "subject": request.subject, "law": str(request.law),
            "received_at_ms": request.received_at_ms,
            "completed_at_ms": completed_at,
            "consents_withdrawn": counts.get("consents_withdrawn", 0),
            "regions": regions,
            "processing_records_forgotten":
                counts.get("processing_records_forgotten", 0),
            "cached_exports_deleted":
                counts.get("cached_exports_deleted", 0),
            "usage_events": usage,
            "signing_key": self.signer.public_key_text,
        }
        document = signed(body, self.signer)
        self.requests.complete(request.request_id, document)
        details: dict[str, Detail] = {
            "request_id": request.request_id, "law": str(request.law),
            "regions": len(regions),
            "objects": sum(r["objects_deleted"] for r in regions.values()),
            "keys_destroyed": sum(r["keys_destroyed"]
                                  for r in regions.values())}
        self.sink.record(AuditEvent(
            action=Action.SUBJECT_ERASED, actor=actor, owner=request.owner,
            target=self.refs(request.owner, request.subject),
            details=details))
        return ErasureReceipt(request.request_id, document)

    def _finished_erasure(self, owner: str,
                          subject: str) -> ErasureReceipt | None:
        """The receipt of a finished erasure, if nothing of the subject
        has appeared since: asking again changes nothing."""
        done = [r for r in self.requests.for_subject(owner, subject)
                if r.kind is RequestKind.ERASURE and r.receipt is not None]
        if not done or self._holds_anything(owner, subject):
            return None
        latest = max(done, key=lambda r: r.completed_at_ms or 0)
        return ErasureReceipt(latest.request_id, str(latest.receipt))

    def _pending_erasure(self, owner: str,
                         subject: str) -> SubjectRequest | None:
        pending = [r for r in self.requests.for_subject(owner, subject)
                   if r.kind is RequestKind.ERASURE
                   and r.completed_at_ms is None]
        return pending[0] if pending else None

    def _holds_anything(self, owner: str, subject: str) -> bool:
        return (any(s.listing(owner, subject) for s in self.stores.values())
                or self.processing.known(owner, subject)
                or any(self.consent.allowed(owner, subject, p)
                       for p in Purpose)
                or subject_folder(self.exports_dir, owner, subject).exists())

    # ----- status -----

    def status(self, owner: str, subject: str) -> list[RequestStatus]:
        now = self.clock_ms()
        return [RequestStatus(
            request=r,
            days_left=(None if r.completed_at_ms is not None
                       else r.days_left(now)),
            overdue=r.is_overdue(now))
            for r in self.requests.for_subject(owner, subject)]

    # ----- shared -----

    def _open(self, owner: str, subject: str, kind: RequestKind, law: Law,
              actor: str) -> SubjectRequest:
        request = self.requests.open(owner, subject, kind, law)
        self.sink.record(AuditEvent(
            action=Action.SUBJECT_REQUESTED, actor=actor, owner=owner,
            target=self.refs(owner, subject), details={
                "request_id": request.request_id, "kind": str(kind),
                "law": str(law), "due_at_ms": request.due_at_ms}))
        return request

    def _refuse_unknown(self, owner: str, subject: str, law: Law,
                        action: Action, actor: str) -> None:
        if (self.consent.history(owner, subject)
                or self._holds_anything(owner, subject)):
            return
        self.sink.record(AuditEvent(
            action=action, actor=actor, outcome=Outcome.FAILURE,
            owner=owner, target=self.refs(owner, subject),
            reason="unknown subject",
            details={"law": str(law)}))
        raise UnknownSubjectError(
            f"{owner} holds nothing about subject {subject!r}: no object "
            f"in any region ({', '.join(self.stores)}), no consent given "
            "or withdrawn, no stream recorded; check the id is the one "
            f"{owner} uses for this person")


@dataclass
class Tally:
    """An erasure's counts so far, saved on its request after each
    step, so a rerun adds to them instead of starting from nothing."""

    requests: SubjectRequests
    request_id: str
    counts: dict[str, Any]

    def add(self, name: str, count: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + count
        self.requests.save_progress(self.request_id, self.counts)

    def set(self, name: str, value: int | None) -> None:
        self.counts[name] = value
        self.requests.save_progress(self.request_id, self.counts)
