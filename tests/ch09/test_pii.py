"""Detectors: cards by Luhn, SSNs, phone numbers, e-mail addresses."""

from __future__ import annotations

import pytest

from ch09_security.pii import NUMBER_KINDS, Entity, EntityKind, detect
from ch09_security.spoken_numbers import DIGITS

ALL = frozenset(EntityKind)
SPOKEN = {digit: word for word, digit in DIGITS.items()}


def spoken(digits: str) -> str:
    return " ".join(SPOKEN[d] for d in digits)


def found(words: str, kinds: frozenset[EntityKind] = ALL
          ) -> list[tuple[EntityKind, str]]:
    split = words.split()
    return [(e.kind, " ".join(split[e.words.start:e.words.stop]))
            for e in detect(split, kinds)]


VISA = "4111111111111111"  # the test card numbers payment providers list
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


@pytest.mark.parametrize("card", [VISA, MASTERCARD, AMEX])
def test_a_spoken_luhn_valid_card_is_a_card(card: str) -> None:
    words = f"my card is {spoken(card)} thanks"
    assert found(words) == [(EntityKind.CREDIT_CARD, spoken(card))]


def test_a_card_spoken_in_groups_of_compounds_is_a_card() -> None:
    # 4111 1111 1111 1111, said in pairs
    words = "forty one eleven eleven eleven eleven eleven eleven eleven"
    assert found(words, frozenset({EntityKind.CREDIT_CARD})) == [
        (EntityKind.CREDIT_CARD, words)]


def test_a_failed_luhn_check_is_no_card_but_still_a_number() -> None:
    wrong = VISA[:-1] + "2"  # the check digit off by one
    words = f"my card is {spoken(wrong)}"
    assert found(words, frozenset({EntityKind.CREDIT_CARD})) == []
    assert found(words, frozenset({EntityKind.CREDIT_CARD,
                                   EntityKind.NUMBER})) == [
        (EntityKind.NUMBER, spoken(wrong))]


def test_the_fixture_card_number_fails_luhn_and_is_too_short() -> None:
    words = "my card number is four one one one two two two two"
    assert found(words, frozenset({EntityKind.CREDIT_CARD})) == []
    assert found(words, NUMBER_KINDS) == [
        (EntityKind.NUMBER, "four one one one two two two two")]


@pytest.mark.parametrize(("digits", "is_ssn"), [
    ("123456789", True),
    ("000121234", False),  # area 000 is never issued
    ("666121234", False),  # nor 666
    ("912121234", False),  # nor 900 to 999
    ("123001234", False),  # group 00
    ("123450000", False),  # serial 0000
    ("078051120", False),  # the wallet card of 1938, voided
])
def test_ssns_exclude_the_ranges_never_issued(digits: str,
                                              is_ssn: bool) -> None:
    kinds = frozenset({EntityKind.US_SSN})
    assert bool(found(f"it is {spoken(digits)}", kinds)) == is_ssn


LOCAL = "five five five zero one nine nine"
NANP = "two one two five five five zero one nine nine"
E164 = "plus four four two zero seven nine four six zero nine five eight"


@pytest.mark.parametrize(("words", "phone"), [
    (f"call me back at {LOCAL}", LOCAL),
    (f"call {NANP}", NANP),
    (f"call one {NANP}", f"one {NANP}"),  # the trunk prefix
    (f"call {E164}", E164),  # the plus is part of it
    ("call one five five zero one nine nine", None),  # 7, leading 1
    ("call one two five five five zero one nine nine", None),  # area 1xx
    ("call two one two one five five zero one nine nine", None),  # 1xx
    ("call five five five zero one nine", None),  # six digits
    (f"call {E164.removeprefix('plus ')}", None),  # 12 digits, no plus
])
def test_phone_numbers(words: str, phone: str | None) -> None:
    phones = found(words, frozenset({EntityKind.PHONE}))
    assert phones == ([(EntityKind.PHONE, phone)] if phone else [])


def test_a_phone_number_starts_at_its_plus() -> None:
    words = f"dial {E164}".split(" ")
    (entity,) = detect(words, frozenset({EntityKind.PHONE}))
    assert entity == Entity(EntityKind.PHONE, range(1, len(words)))


@pytest.mark.parametrize(("words", "address"), [
    ("mail john dot smith at example dot com please",
     "john dot smith at example dot com"),
    ("it is jo underscore b at mail dot example dot org",
     "jo underscore b at mail dot example dot org"),
    ("write to jo@example.com today", "jo@example.com"),
    ("it is agent double oh seven at example dot com",
     "double oh seven at example dot com"),  # a run is one part
])
def test_email_addresses_written_and_spoken(words: str,
                                            address: str) -> None:
    kinds = frozenset({EntityKind.EMAIL})
    assert found(words, kinds) == [(EntityKind.EMAIL, address)]


@pytest.mark.parametrize("words", [
    "meet me at home", "call me back at five five five",
    "go to example dot com", "at dot com", "i am at", "jo@example",
])
def test_no_address_without_at_and_a_dotted_domain(words: str) -> None:
    assert found(words, frozenset({EntityKind.EMAIL})) == []


def test_digits_inside_an_address_are_the_address() -> None:
    words = "jo one two three at example dot com"
    assert found(words) == [
        (EntityKind.EMAIL, "one two three at example dot com")]


def test_numbers_are_three_digits_or_more() -> None:
    kinds = frozenset({EntityKind.NUMBER})
    assert found("one two please", kinds) == []
    assert found("one two three please", kinds) == [
        (EntityKind.NUMBER, "one two three")]


def test_kinds_not_asked_for_are_not_found() -> None:
    words = f"card {spoken(VISA)} mail jo at example dot com"
    assert found(words, frozenset()) == []
    assert [k for k, _ in found(words)] == [EntityKind.CREDIT_CARD,
                                            EntityKind.EMAIL]
