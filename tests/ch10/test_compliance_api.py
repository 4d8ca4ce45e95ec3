"""The compliance routes in process: consents per subject and purpose,
only a customer's own; the latest signed checkpoint for anyone; an
inclusion proof for an entry about the caller only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ch04_streaming.auth import ApiKeys
from ch07_api import database
from ch09_security.key_store import KeyHasher, KeyStore
from ch09_security.security_layer import security_layer
from ch10_compliance.audit import AuditLog
from ch10_compliance.audit_event import Action, AuditEvent
from ch10_compliance.compliance_api import compliance_routes
from ch10_compliance.consent import ConsentLedger
from ch10_compliance.proof_check import check_proof
from ch10_compliance.signer import new_seed, signer_from_seed
from tests.ch09.conftest import SECRET, ManualClock

GRANT = {"type": "consent", "granted": True}


class Api:
    def __init__(self, tmp_path: Path) -> None:
        clock = ManualClock()
        engine = database.open_engine(f"sqlite:///{tmp_path}/c.sqlite3")
        self.store = KeyStore(engine, KeyHasher(SECRET), clock)
        self.store.create_schema()
        layer = security_layer(self.store, ApiKeys.of())
        self.audit = AuditLog(engine, clock)
        self.audit.create_schema()
        consent = ConsentLedger(engine, clock, self.audit)
        consent.create_schema()
        self.signer = signer_from_seed(new_seed(), "test")
        app = FastAPI()
        app.include_router(compliance_routes(
            layer.credentials, consent, self.audit, self.signer))
        self.client = TestClient(app)

    def key(self, owner: str) -> dict[str, str]:
        return {"Authorization": f"Token {self.store.create(owner).key}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    opened = Api(tmp_path)
    yield opened
    opened.store.engine.dispose()


def test_consents_are_granted_withdrawn_and_read_per_customer(
        api: Api) -> None:
    acme, globex = api.key("acme"), api.key("globex")
    reply = api.client.put("/v1/subjects/alice/consents/retention",
                           json=GRANT, headers=acme)
    assert reply.status_code == 200
    assert reply.json() == {"type": "consents", "subject": "alice",
                            "consents": {"transcription": False,
                                         "retention": True,
                                         "model_improvement": False}}
    theirs = api.client.get("/v1/subjects/alice/consents", headers=globex)
    assert theirs.json()["consents"]["retention"] is False  # not acme's
    api.client.put("/v1/subjects/alice/consents/retention",
                   json={"type": "consent", "granted": False},
                   headers=acme)
    ours = api.client.get("/v1/subjects/alice/consents", headers=acme)
    assert ours.json()["consents"]["retention"] is False
    actions = [text for _, text in api.audit.entries()]
    assert len(actions) == 2 and "consent.withdrawn" in actions[1]


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/v1/subjects/alice/consents/telepathy", GRANT, 422),
    ("/v1/subjects/alice/consents/retention", {"granted": True}, 422),
    ("/v1/subjects/alice/consents/retention",
     {"type": "consent", "granted": "yes"}, 422),
    ("/v1/subjects/alice/consents/retention",
     {**GRANT, "extra": 1}, 422),
    ("/v1/subjects/al%20ice/consents/retention", GRANT, 400),
])
def test_bad_requests_are_refused(api: Api, path: str,
                                  body: dict[str, object],
                                  status: int) -> None:
    reply = api.client.put(path, json=body, headers=api.key("acme"))
    assert reply.status_code == status, reply.text


def test_without_a_valid_key_nothing_is_read_or_changed(api: Api) -> None:
    for headers in ({}, {"Authorization": "Token spk_nope"}):
        reply = api.client.put("/v1/subjects/alice/consents/retention",
                               json=GRANT, headers=headers)
        assert reply.status_code == 401
        assert api.client.get("/v1/subjects/alice/consents",
                              headers=headers).status_code == 401
    assert api.audit.size() == 0


def test_the_checkpoint_is_public_and_proofs_are_the_owners(
        api: Api) -> None:
    assert api.client.get("/v1/audit/checkpoint").status_code == 404
    api.audit.append([AuditEvent(Action.KEY_CREATED, "operator:ann",
                                 owner="acme", target="key_1"),
                      AuditEvent(Action.KEY_CREATED, "operator:ann",
                                 owner="globex", target="key_2")])
    acme = api.key("acme")
    assert api.client.get("/v1/audit/proofs/0",
                          headers=acme).status_code == 404  # unsigned yet
    api.audit.checkpoint(api.signer, "test.localhost/audit")
    published = api.client.get("/v1/audit/checkpoint").json()
    assert published["type"] == "audit.checkpoint"
    assert published["public_key"] == api.signer.public_key_text
    proof = api.client.get("/v1/audit/proofs/0", headers=acme)
    assert proof.status_code == 200
    assert check_proof(proof.json(), api.signer.public_key).ok
    other = api.client.get("/v1/audit/proofs/1", headers=acme)
    assert other.status_code == 404 and "of yours" in other.text
    assert api.client.get("/v1/audit/proofs/1").status_code == 401
