"""Spoken numbers to digits, remembering which word said each digit.

Chapter 9, "PII in transcripts: detection". A recogniser writes what
was said, "four one one one", not "4111", so digit patterns and
checksums find nothing in its words until they are normalised. And a
redaction found in the digits must land back on the words and their
times, so every output token keeps the input words it came from, and a
run of digits the word of each digit. Read: digits, "oh" as zero next
to other digits, "double" and "triple" before a digit, teens, and tens
with an optional unit ("twenty one" is 21); adjacent numbers form one
run, as a card or phone number is spoken. "hundred" and larger stay
words. text2num's `alpha2digit` was the library to use, but it writes a
digit-by-digit run as separate numbers ("4 1 1 1"), reads "zero one" as
"01", knows neither "oh" nor "double", and keeps no map to the words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
          "five": "5", "six": "6", "seven": "7", "eight": "8",
          "nine": "9"}
TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
         "fourteen": "14", "fifteen": "15", "sixteen": "16",
         "seventeen": "17", "eighteen": "18", "nineteen": "19"}
TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
        "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9"}
REPEATS = {"double": 2, "triple": 3}
ZERO = "oh"  # a zero only beside other digits: "oh I see" is no number
PUNCTUATION = ".,!?;:"

# One number read from the words: each digit with the word it came from.
Digits = list[tuple[str, int]]


@dataclass(frozen=True)
class Token:
    """An output token and the input words it stands for."""

    text: str
    words: range  # indices of the input words
    digit_words: tuple[int, ...] = ()  # a run: the word of each digit

    @property
    def is_digits(self) -> bool:
        return bool(self.digit_words)


def key(word: str) -> str:
    """A word as the tables spell it: lower case, no punctuation."""
    return word.lower().strip(PUNCTUATION)


def is_number_word(word: str) -> bool:
    """A word that says digits by itself (not "oh" nor "double")."""
    k = key(word)
    return k.isdigit() or k in DIGITS or k in TEENS or k in TENS


def may_say_digits(word: str) -> bool:
    """A word that says digits, or may once the next word is heard."""
    return is_number_word(word) or key(word) in REPEATS or key(word) == ZERO


def read_number(keys: Sequence[str], i: int, in_run: bool
                ) -> tuple[Digits, int]:
    """The digits said from word `i` on, and the word after them; no
    digits when word `i` starts no number."""
    k = keys[i]
    after = keys[i + 1] if i + 1 < len(keys) else ""
    if k.isdigit():
        return [(d, i) for d in k], i + 1
    if k in DIGITS or (k == ZERO and (in_run or starts_number(keys, i + 1))):
        return [(DIGITS.get(k, "0"), i)], i + 1
    if k in TEENS:
        return [(d, i) for d in TEENS[k]], i + 1
    if k in TENS and after in DIGITS and after != "zero":
        return [(TENS[k], i), (DIGITS[after], i + 1)], i + 2
    if k in TENS:
        return [(TENS[k], i), ("0", i)], i + 1
    if k in REPEATS and (after in DIGITS or after == ZERO):
        digit = DIGITS.get(after, "0")
        copies = [(digit, i)] * (REPEATS[k] - 1)
        return [*copies, (digit, i + 1)], i + 2
    return [], i


def starts_number(keys: Sequence[str], i: int) -> bool:
    """Whether a number begins at word `i` ("oh"s before a digit do)."""
    while i < len(keys) and keys[i] == ZERO:
        i += 1
    return i < len(keys) and bool(read_number(keys, i, in_run=False)[0])


def normalise(words: Sequence[str]) -> list[Token]:
    """Words to tokens: each run of spoken digits becomes one token of
    digits; every other word stays itself."""
    keys = [key(w) for w in words]
    tokens: list[Token] = []
    run: Digits = []
    i = 0
    while i < len(words):
        digits, after = read_number(keys, i, in_run=bool(run))
        if digits:
            run += digits
            i = after
            continue
        if run:
            tokens.append(run_token(run))
            run = []
        tokens.append(Token(words[i], range(i, i + 1)))
        i += 1
    if run:
        tokens.append(run_token(run))
    return tokens


def run_token(run: Digits) -> Token:
    sources = tuple(word for _, word in run)
    return Token("".join(d for d, _ in run),
                 range(sources[0], sources[-1] + 1), sources)
