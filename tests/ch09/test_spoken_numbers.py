"""Spoken numbers to digits, each digit traced to the word that said it."""

from __future__ import annotations

import pytest

from ch09_security.spoken_numbers import Token, normalise


def text(words: str) -> str:
    return " ".join(t.text for t in normalise(words.split()))


@pytest.mark.parametrize(("spoken", "written"), [
    ("four one one one", "4111"),
    ("call me back at five five five zero one nine nine",
     "call me back at 5550199"),
    ("five five five oh one nine nine", "5550199"),
    ("oh five five", "055"),
    ("double five", "55"),
    ("triple oh seven", "0007"),
    ("twenty one", "21"),
    ("twenty", "20"),
    ("thirteen", "13"),
    ("one twenty three four", "1234"),  # adjacent numbers: one run
    ("my pin is 4111", "my pin is 4111"),  # numerals stay digits
    ("Four, one.", "41"),  # case and punctuation
])
def test_spoken_digits_become_one_run(spoken: str, written: str) -> None:
    assert text(spoken) == written


@pytest.mark.parametrize(("words", "digits"), [
    ("oh i see", []), ("a double check", []), ("oh", []),
    ("someone at home", []),
    ("one hundred", ["1"]),  # "hundred" and larger stay words
])
def test_words_that_say_digits_only_beside_digits(
    words: str, digits: list[str],
) -> None:
    assert [t.text for t in normalise(words.split())
            if t.is_digits] == digits


def test_a_run_remembers_its_words_and_their_digits() -> None:
    said = "call double five oh twenty one now"
    (call, run, now) = normalise(said.split())
    assert call == Token("call", range(0, 1))
    # double five: a 5 each; oh: 0; twenty one: 2 and 1
    assert run == Token("55021", range(1, 6), (1, 2, 3, 4, 5))
    assert now == Token("now", range(6, 7))


def test_no_words_no_tokens() -> None:
    assert normalise([]) == []
