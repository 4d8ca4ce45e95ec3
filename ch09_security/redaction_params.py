"""The providers' redaction parameters, parsed once at the edge.

Chapter 9, "PII in transcripts: provider approaches". Deepgram takes
`redact=pci|pii|numbers` (`true` is `numbers`), repeatable; chapter 4's
server hands a dialect one value per name, so several are given comma
separated here: `redact=pci,numbers`. Deepgram replaces an entity with
its numbered label ("[CREDIT_CARD_1]"), in interim and final results.
AssemblyAI's v3 streaming takes `redact_pii=true`, `redact_pii_policies`
(a JSON array or comma-separated names; all when omitted),
`redact_pii_sub` (`hash`, the default, or `entity_name`), and sends no
partial turns while redacting unless `include_partial_turns=true`. Of
either provider's classes this server knows cards, SSNs, phone numbers,
e-mail addresses and numbers; names, places, dates and health terms
need a model it does not have, and asking for them is refused with 400
rather than silently not redacted.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from ch04_streaming.dialects.dialect import RequestError, parse_bool
from ch09_security.pii import EntityKind
from ch09_security.redaction import (
    DEEPGRAM_LABELS,
    NO_REDACTION,
    Operator,
    RedactionPolicy,
)

DEEPGRAM_CLASSES = {
    "pci": {EntityKind.CREDIT_CARD},
    "pii": {EntityKind.PHONE, EntityKind.EMAIL, EntityKind.US_SSN},
    "numbers": {EntityKind.NUMBER},
    "true": {EntityKind.NUMBER},
    "false": set(),
}
ASSEMBLYAI_POLICIES = frozenset({
    EntityKind.CREDIT_CARD, EntityKind.PHONE, EntityKind.EMAIL,
    EntityKind.US_SSN})
ASSEMBLYAI_SUBS = {"hash": Operator.MASK, "entity_name": Operator.LABEL}
NAMES = TypeAdapter(list[str])


def deepgram_policy(query: Mapping[str, str]) -> RedactionPolicy:
    """`redact`, comma separated: numbered labels, as Deepgram's."""
    kinds: set[EntityKind] = set()
    for name in query.get("redact", "false").split(","):
        value = name.strip().lower()
        if value not in DEEPGRAM_CLASSES:
            raise RequestError(
                f"redact={value[:40]!r} is not supported; use pci, pii"
                " or numbers")
        kinds |= DEEPGRAM_CLASSES[value]
    return RedactionPolicy(frozenset(kinds), Operator.LABEL,
                           DEEPGRAM_LABELS, numbered=True)


def policy_names(raw: str) -> list[str]:
    """A JSON array of names, or names separated by commas."""
    if not raw.lstrip().startswith("["):
        return [name.strip() for name in raw.split(",")]
    try:
        return NAMES.validate_json(raw)
    except (ValidationError, ValueError, RecursionError):
        raise RequestError(
            "redact_pii_policies must be a JSON array of names") from None


def assemblyai_policy(query: Mapping[str, str]) -> RedactionPolicy:
    """`redact_pii`, `redact_pii_policies` and `redact_pii_sub`."""
    if not parse_bool(query, "redact_pii", False):
        if "redact_pii_policies" in query or "redact_pii_sub" in query:
            raise RequestError("redact_pii_policies and redact_pii_sub"
                               " need redact_pii=true")
        return NO_REDACTION
    kinds = set(ASSEMBLYAI_POLICIES)
    if "redact_pii_policies" in query:
        names = policy_names(query["redact_pii_policies"])
        known = {kind.value: kind for kind in ASSEMBLYAI_POLICIES}
        if not names or not set(names) <= set(known):
            raise RequestError(
                "redact_pii_policies: supported are"
                f" {', '.join(sorted(known))}")
        kinds = {known[name] for name in names}
    sub = query.get("redact_pii_sub", "hash")
    if sub not in ASSEMBLYAI_SUBS:
        raise RequestError("redact_pii_sub must be hash or entity_name")
    return RedactionPolicy(frozenset(kinds), ASSEMBLYAI_SUBS[sub])


def assemblyai_partials(query: Mapping[str, str],
                        policy: RedactionPolicy) -> bool:
    """Partial turns: by default, none while redacting."""
    return parse_bool(query, "include_partial_turns", not policy.active)
