"""Finding PII in a transcript's words: cards, phones, SSNs, e-mails.

Chapter 9, "PII in transcripts: detection". Numbers are found in the
normalised words (`spoken_numbers.py`), one spoken run at a time, and
classified by what they are, most specific first: a card number has 13
to 19 digits and a valid Luhn check digit (python-stdnum), a US Social
Security number 9 digits outside the ranges the SSA never issues
(python-stdnum again), a phone number 7 (local) or 10 digits (NANP, with
an optional leading 1), or 8 to 15 after a spoken "plus" (E.164); any
other run of three or more digits is a plain number, which is what
Deepgram's `numbers` class redacts. E-mail addresses are found written
("jo@example.com") or spoken ("jo dot smith at example dot com"). Names,
addresses and dates need a named-entity model and are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from stdnum import luhn
from stdnum.us import ssn

from ch09_security.spoken_numbers import Token, key, normalise


class EntityKind(StrEnum):
    """What was found; the values are AssemblyAI's policy names."""

    CREDIT_CARD = "credit_card_number"
    US_SSN = "us_social_security_number"
    PHONE = "phone_number"
    EMAIL = "email_address"
    NUMBER = "number"  # any other run of 3+ digits: Deepgram's `numbers`


NUMBER_KINDS = frozenset({EntityKind.CREDIT_CARD, EntityKind.US_SSN,
                          EntityKind.PHONE, EntityKind.NUMBER})
PLUS = "plus"  # "plus four four ...": an E.164 number
LOCAL_JOINS = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
DOMAIN_JOINS = {"dot": ".", "dash": "-", "hyphen": "-"}
AT = "at"
EMAIL_WORDS = frozenset({AT, *LOCAL_JOINS})  # the words that join one
WRITTEN_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


@dataclass(frozen=True)
class Entity:
    kind: EntityKind
    words: range  # indices of the words that say it


def is_us_ssn(digits: str, plus: bool) -> bool:
    return len(digits) == 9 and ssn.is_valid(digits)


def is_phone(digits: str, plus: bool) -> bool:
    """E.164 after "plus"; else NANP: 7 digits, or 10 with an area
    code, either leading digit 2 to 9, and an optional trunk 1."""
    if plus:
        return 8 <= len(digits) <= 15 and digits[0] != "0"
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) == 10:
        return digits[0] in "23456789" and digits[3] in "23456789"
    return len(digits) == 7 and digits[0] in "23456789"


def is_number(digits: str, plus: bool) -> bool:
    return len(digits) >= 3


# --8<-- [start:number_normaliser_luhn]
def is_card(digits: str, plus: bool) -> bool:
    """13 to 19 digits, the last the Luhn check digit of the others."""
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


# Most specific first: a card's digits are a number too.
CHECKS: tuple[tuple[EntityKind, Callable[[str, bool], bool]], ...] = (
    (EntityKind.CREDIT_CARD, is_card), (EntityKind.US_SSN, is_us_ssn),
    (EntityKind.PHONE, is_phone), (EntityKind.NUMBER, is_number))


def number_entities(tokens: Sequence[Token],
                    kinds: Collection[EntityKind]) -> list[Entity]:
    """Each run of digits in normalised words, as the first wanted
    kind it is: "four one one one" was normalised to one token, "4111",
    that remembers its four words."""
    found = []
    for n, token in enumerate(tokens):
        if not token.is_digits:
            continue
        plus = n > 0 and key(tokens[n - 1].text) == PLUS
        start = tokens[n - 1].words.start if plus else token.words.start
        for kind, check in CHECKS:
            if kind in kinds and check(token.text, plus):
                found.append(Entity(kind, range(start, token.words.stop)))
                break
    return found
# --8<-- [end:number_normaliser_luhn]


def email_entities(tokens: Sequence[Token]) -> list[Entity]:
    """Written addresses, and spoken ones: a part, then "dot" (or
    "underscore", "dash") and a part any number of times, "at", and a
    domain of parts joined by "dot" or "dash", one "dot" at least."""
    keys = [key(t.text) for t in tokens]
    found = [Entity(EntityKind.EMAIL, t.words) for t in tokens
             if WRITTEN_EMAIL.fullmatch(t.text)]
    for at, k in enumerate(keys):
        if k != AT or not 0 < at < len(keys) - 1:
            continue
        first = at - 1
        while first >= 2 and keys[first - 1] in LOCAL_JOINS:
            first -= 2
        last, dots = at + 1, 0
        while last + 2 < len(keys) and keys[last + 1] in DOMAIN_JOINS:
            dots += keys[last + 1] == "dot"
            last += 2
        parts = keys[first:last + 1:2]
        if dots and not EMAIL_WORDS.intersection(parts):
            words = range(tokens[first].words.start, tokens[last].words.stop)
            found.append(Entity(EntityKind.EMAIL, words))
    return found


def detect(words: Sequence[str],
           kinds: Collection[EntityKind]) -> list[Entity]:
    """The wanted entities in `words`, in order, none overlapping: an
    e-mail address keeps the digits it holds."""
    tokens = normalise(words)
    emails = email_entities(tokens) if EntityKind.EMAIL in kinds else []
    taken = {i for e in emails for i in e.words}
    numbers = [e for e in number_entities(tokens, kinds)
               if taken.isdisjoint(e.words)]
    return sorted(emails + numbers, key=lambda e: e.words.start)
