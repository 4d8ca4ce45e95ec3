"""The HTTP side of compliance: consents in, checkpoints and proofs out.

Chapter 10, "GDPR for voice data: voice = personal data requiring
explicit consent" and "Audit logging". A customer records each of its
speakers' consents per purpose as it collects them (`PUT
/v1/subjects/{subject}/consents/{purpose}`, with the customer's own
key: a customer sees and changes only its own subjects), and reads
them back. Anyone may fetch the log's latest signed checkpoint and its
public key, to keep a copy to hold the log to later; a customer may
fetch the inclusion proof of an entry about itself. Bodies are parsed
once into types; every response carries a `type`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from ch04_streaming.auth import authorization_key
from ch09_security.credentials import Credentials
from ch10_compliance.audit import AuditLog, NotCheckpointedError
from ch10_compliance.audit import UnknownEntryError as UnknownAuditEntry
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.governance_hooks import SUBJECT_ID, SUBJECT_RULE
from ch10_compliance.signer import Signer


class ConsentChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["consent"]
    granted: bool


class ConsentState(BaseModel):
    type: Literal["consents"] = "consents"
    subject: str
    consents: dict[str, bool]  # purpose -> granted now


class CheckpointBody(BaseModel):
    type: Literal["audit.checkpoint"] = "audit.checkpoint"
    checkpoint: str  # the signed note
    public_key: str  # Ed25519, base64


def compliance_routes(credentials: Credentials, consent: ConsentLedger,
                      audit: AuditLog, signer: Signer) -> APIRouter:
    router = APIRouter()

    def owner_of(request: Request) -> str:
        verdict = credentials.check(authorization_key(
            request.headers.get("authorization", "")))
        if verdict.record is None:
            raise HTTPException(401, verdict.reason)
        return verdict.record.owner

    def subject_of(subject: str) -> str:
        if not SUBJECT_ID.match(subject):
            raise HTTPException(400, SUBJECT_RULE)
        return subject

    def state(owner: str, subject: str) -> ConsentState:
        return ConsentState(subject=subject, consents={
            p.value: consent.allowed(owner, subject, p) for p in Purpose})

    @router.get("/v1/subjects/{subject}/consents")
    def consents(subject: str, request: Request) -> ConsentState:
        return state(owner_of(request), subject_of(subject))

    @router.put("/v1/subjects/{subject}/consents/{purpose}")
    def change(subject: str, purpose: Purpose, body: ConsentChange,
               request: Request) -> ConsentState:
        owner, subject = owner_of(request), subject_of(subject)
        record = consent.grant if body.granted else consent.withdraw
        record(owner, subject, purpose, source="api")
        return state(owner, subject)

    @router.get("/v1/audit/checkpoint")
    def checkpoint() -> CheckpointBody:
        published = audit.checkpoints()
        if not published:
            raise HTTPException(404, "no checkpoint published yet")
        return CheckpointBody(checkpoint=published[-1][1],
                              public_key=signer.public_key_text)

    @router.get("/v1/audit/proofs/{seq}")
    def proof(seq: int, request: Request) -> dict[str, object]:
        owner = owner_of(request)
        try:
            found = audit.prove(seq)
        except (UnknownAuditEntry, NotCheckpointedError) as error:
            raise HTTPException(404, str(error)) from None
        document = found.as_json(signer.public_key_text)
        entry = document["entry"]
        if not isinstance(entry, dict) or entry.get("owner") != owner:
            raise HTTPException(404, f"no audit entry {seq} of yours")
        return document

    return router
