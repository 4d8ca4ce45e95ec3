"""The providers' redaction parameters: read once, refused when wrong."""

from __future__ import annotations

import pytest

from ch04_streaming.dialects.dialect import RequestError
from ch09_security.pii import EntityKind
from ch09_security.redaction import DEEPGRAM_LABELS, NO_REDACTION, Operator
from ch09_security.redaction_params import (
    assemblyai_partials,
    assemblyai_policy,
    deepgram_policy,
)

CARD, PHONE = EntityKind.CREDIT_CARD, EntityKind.PHONE
EMAIL, SSN, NUMBER = (EntityKind.EMAIL, EntityKind.US_SSN,
                      EntityKind.NUMBER)


@pytest.mark.parametrize(("redact", "kinds"), [
    ("pci", {CARD}),
    ("pii", {PHONE, EMAIL, SSN}),
    ("numbers", {NUMBER}),
    ("true", {NUMBER}),
    ("false", set()),
    ("pci,numbers", {CARD, NUMBER}),
    (" PCI , pii ", {CARD, PHONE, EMAIL, SSN}),
])
def test_deepgram_classes(redact: str, kinds: set[EntityKind]) -> None:
    policy = deepgram_policy({"redact": redact})
    assert policy.kinds == kinds
    assert policy.operator is Operator.LABEL and policy.numbered
    assert policy.labels == DEEPGRAM_LABELS


def test_deepgram_without_redact_redacts_nothing() -> None:
    assert not deepgram_policy({}).active


@pytest.mark.parametrize("redact", ["phi", "ssn,names", "", "pci,",
                                    "x" * 5000])
def test_deepgram_classes_this_server_cannot_redact_are_refused(
    redact: str,
) -> None:
    with pytest.raises(RequestError, match="use pci, pii or numbers") as e:
        deepgram_policy({"redact": redact})
    assert len(str(e.value)) < 120  # the value is echoed, cut short


def test_assemblyai_redacts_every_policy_it_knows_by_default() -> None:
    policy = assemblyai_policy({"redact_pii": "true"})
    assert policy.kinds == {CARD, PHONE, EMAIL, SSN}
    assert policy.operator is Operator.MASK  # redact_pii_sub=hash
    assert not policy.numbered
    assert policy.labels[PHONE] == "PHONE_NUMBER"


@pytest.mark.parametrize("policies", [
    '["phone_number", "credit_card_number"]',
    "phone_number,credit_card_number",
    " phone_number , credit_card_number",
])
def test_assemblyai_policies_as_json_or_commas(policies: str) -> None:
    policy = assemblyai_policy({"redact_pii": "true",
                                "redact_pii_policies": policies})
    assert policy.kinds == {PHONE, CARD}


def test_assemblyai_entity_names() -> None:
    policy = assemblyai_policy({"redact_pii": "true",
                                "redact_pii_sub": "entity_name"})
    assert policy.operator is Operator.LABEL


@pytest.mark.parametrize(("query", "reason"), [
    ({"redact_pii": "true", "redact_pii_policies": '["person_name"]'},
     "supported are"),
    ({"redact_pii": "true", "redact_pii_policies": "[]"}, "supported are"),
    ({"redact_pii": "true", "redact_pii_policies": '["phone_number"'},
     "JSON array"),
    ({"redact_pii": "true", "redact_pii_policies": "[" * 10_000},
     "JSON array"),
    ({"redact_pii": "true", "redact_pii_policies": "[1, 2]"},
     "JSON array"),
    ({"redact_pii": "true", "redact_pii_sub": "stars"}, "hash or"),
    ({"redact_pii": "maybe"}, "true or false"),
    ({"redact_pii_policies": "phone_number"}, "need redact_pii=true"),
    ({"redact_pii": "false", "redact_pii_sub": "hash"},
     "need redact_pii=true"),
])
def test_assemblyai_bad_parameters_are_refused(
    query: dict[str, str], reason: str,
) -> None:
    with pytest.raises(RequestError, match=reason):
        assemblyai_policy(query)


def test_assemblyai_sends_no_partials_while_redacting_unless_asked() -> None:
    on = assemblyai_policy({"redact_pii": "true"})
    assert not assemblyai_partials({}, on)
    assert assemblyai_partials({"include_partial_turns": "true"}, on)
    assert assemblyai_partials({}, NO_REDACTION)
    assert not assemblyai_partials({"include_partial_turns": "false"},
                                   NO_REDACTION)
