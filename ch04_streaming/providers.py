"""The providers compared: five streaming speech-to-text APIs, fact by fact.

Chapter 4, "Reference architectures from production providers". Deepgram,
AssemblyAI, Google Cloud Speech, Amazon Transcribe and OpenAI Realtime
solve one problem (audio up, text back, in time) with their own
transport, framing, chunk size, audio formats, limits and billing.
`providers.toml` holds those facts, each with its sources and the day
they were checked, and names the code of this repository that speaks
each provider's dialect. The loader refuses a missing field or an
unknown key by name; `python -m ch04_streaming.providers` prints the
comparison (`--markdown` as a table, `--provider NAME` for one).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import ErrorDetails

PROVIDERS_FILE = Path(__file__).with_name("providers.toml")
WIDTH = 79  # the printed page
LABEL_WIDTH = 19
NONE_YET = "none yet"
URL = re.compile(r"https://\S+")
# `DOCUMENT: SECTION`, e.g. "protocols.md: Deepgram live streaming"
CITATION = re.compile(r"[^\s:][^:]*: \S.*")


class ProvidersError(ValueError):
    """A comparison that cannot be used, and why."""


def checked_source(source: str) -> str:
    if URL.fullmatch(source) or CITATION.fullmatch(source):
        return source
    raise ValueError(
        f"{source!r} is neither a URL (https://...) nor a citation"
        " (DOCUMENT: SECTION)")


Source = Annotated[str, AfterValidator(checked_source)]
Text = Annotated[str, Field(min_length=1)]
Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
ModuleName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.]*[a-z0-9_]$")]
Command = Annotated[str, Field(pattern=r"^python -m [a-z_][a-z0-9_.]*")]


class Strict(BaseModel):
    """No coercion, no unknown keys: a typo is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Demonstration(Strict):
    """Where this repository speaks a provider's dialect."""

    module: ModuleName
    serves: Text  # a WebSocket path, or a gRPC Service/Method
    command: Command


# --8<-- [start:provider_comparison]
class Fact(Strict):
    """One comparable fact, where it was read, and when."""

    value: Text  # "not published" when no source gives it
    sources: list[Source] = Field(min_length=1)
    checked: date


class Limits(Strict):
    message_size: Fact
    stream_duration: Fact
    timeouts: Fact
    concurrency: Fact


class Provider(Strict):
    """One provider's streaming speech-to-text API."""

    key: Key
    name: Text
    demonstrated_by: list[Demonstration]  # [] when no code does yet
    transport: Fact  # WebSocket, gRPC, HTTP/2, WebRTC
    framing: Fact  # how audio rides it: frames, JSON, protobuf
    chunking: Fact
    sample_rates: Fact
    encodings: Fact
    limits: Limits
    billing: Fact
# --8<-- [end:provider_comparison]


class Comparison(Strict):
    providers: list[Provider] = Field(min_length=1)

    def provider(self, name: str) -> Provider:
        """The provider with this key or name, in any case."""
        for provider in self.providers:
            if name.casefold() in (provider.key, provider.name.casefold()):
                return provider
        known = ", ".join(p.key for p in self.providers)
        raise ProvidersError(f"no provider {name!r}; known: {known}")


FACT_ROWS: tuple[tuple[str, Callable[[Provider], Fact]], ...] = (
    ("transport", lambda p: p.transport),
    ("framing", lambda p: p.framing),
    ("chunking", lambda p: p.chunking),
    ("sample rates", lambda p: p.sample_rates),
    ("encodings", lambda p: p.encodings),
    ("message size", lambda p: p.limits.message_size),
    ("stream duration", lambda p: p.limits.stream_duration),
    ("timeouts", lambda p: p.limits.timeouts),
    ("concurrency", lambda p: p.limits.concurrency),
    ("billing", lambda p: p.billing),
)


def facts(provider: Provider) -> list[tuple[str, Fact]]:
    return [(label, fact_of(provider)) for label, fact_of in FACT_ROWS]


def load_comparison(path: Path = PROVIDERS_FILE) -> Comparison:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ProvidersError(f"{path}: {error}") from None
    return parse_comparison(raw, origin=str(path))


def parse_comparison(raw: dict[str, Any], origin: str) -> Comparison:
    """Validate a parsed file; `origin` names it in every error."""
    try:
        comparison = Comparison.model_validate(raw)
    except ValidationError as error:
        problems = [describe(item, raw) for item in error.errors()]
        raise ProvidersError(
            "\n  ".join([f"{origin}:", *problems])) from None
    for what in ("key", "name"):
        used = [getattr(provider, what) for provider in comparison.providers]
        twice = sorted({value for value in used if used.count(value) > 1})
        if twice:
            raise ProvidersError(
                f"{origin}: provider {what} used twice: {', '.join(twice)}")
    return comparison


def describe(item: ErrorDetails, raw: dict[str, Any]) -> str:
    """One validation problem, naming the provider and the field."""
    loc = item["loc"]
    if item["type"] == "missing":
        return f"{place(loc[:-1], raw)}: missing field {loc[-1]!r}"
    if item["type"] == "extra_forbidden":
        return f"{place(loc[:-1], raw)}: unknown key {loc[-1]!r}"
    message = item["msg"].removeprefix("Value error, ")
    return f"{place(loc, raw)}: {message}"


def place(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """`providers[1] (AssemblyAI).limits`, from pydantic's location."""
    parts: list[str] = []
    node: Any = raw
    for step in loc:
        if isinstance(step, int):
            node = node[step] if isinstance(node, list) else None
            name = node.get("name") if isinstance(node, dict) else None
            parts[-1] += f"[{step}]" + (f" ({name})" if name else "")
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(step)
    return ".".join(parts) or "top level"


@dataclass
class Notes:
    """Numbered sources, grouped by the day they were checked."""

    numbers: dict[tuple[str, date], int] = field(default_factory=dict)

    def cite(self, fact: Fact) -> str:
        cited = sorted({self.number(source, fact.checked)
                        for source in fact.sources})
        return f"{fact.value} [{','.join(map(str, cited))}]"

    def number(self, source: str, checked: date) -> int:
        return self.numbers.setdefault((source, checked),
                                       len(self.numbers) + 1)

    def by_day(self) -> dict[date, list[tuple[int, str]]]:
        days: dict[date, list[tuple[int, str]]] = {}
        for (source, checked), number in self.numbers.items():
            days.setdefault(checked, []).append((number, source))
        return dict(sorted(days.items()))


def demonstrations(provider: Provider) -> str:
    shown = [f"{demo.serves}: {demo.module} ({demo.command})"
             for demo in provider.demonstrated_by]
    return "; ".join(shown) or NONE_YET


def plain_text(providers: Sequence[Provider]) -> str:
    """One block per provider, then the sources, in 79 columns."""
    notes = Notes()
    blocks = [provider_block(provider, notes) for provider in providers]
    for day, cited in notes.by_day().items():
        blocks.append("\n".join([f"Sources, checked {day.isoformat()}:"] + [
            source_lines(number, source) for number, source in cited]))
    return "\n\n".join(blocks) + "\n"


def source_lines(number: int, source: str) -> str:
    """`[1] source` in 79 columns; a long URL breaks after a slash."""
    label = f"[{number}] "
    if len(label + source) <= WIDTH or not URL.fullmatch(source):
        return textwrap.fill(label + source, WIDTH, subsequent_indent="    ",
                             break_long_words=False, break_on_hyphens=False)
    lines: list[str] = []
    for piece in re.findall(r"[^/]*/|[^/]+$", source):
        if lines and len(lines[-1] + piece) <= WIDTH - len(label):
            lines[-1] += piece
        else:
            lines.append(piece)
    return label + f"\n{' ' * len(label)}".join(lines)


def provider_block(provider: Provider, notes: Notes) -> str:
    rows = [("demonstrated by", demonstrations(provider))]
    rows += [(label, notes.cite(fact)) for label, fact in facts(provider)]
    lines = [f"{provider.name} ({provider.key})"]
    for label, text in rows:
        lines += textwrap.wrap(
            text, WIDTH, initial_indent=f"  {label:<{LABEL_WIDTH - 2}}",
            subsequent_indent=" " * LABEL_WIDTH, break_long_words=False,
            break_on_hyphens=False)
    return "\n".join(lines)


def markdown(providers: Sequence[Provider]) -> str:
    """Facts as rows, providers as columns, then the sources."""
    notes = Notes()
    rows = [["", *(provider.name for provider in providers)],
            ["---"] * (len(providers) + 1),
            ["demonstrated by", *map(demonstrations, providers)]]
    rows += [[label, *(notes.cite(fact_of(p)) for p in providers)]
             for label, fact_of in FACT_ROWS]
    lines = [table_row(cells) for cells in rows]
    for day, cited in notes.by_day().items():
        lines += ["", f"Sources, checked {day.isoformat()}:", ""]
        lines += [f"- [{number}] {source}" for number, source in cited]
    return "\n".join(lines) + "\n"


def table_row(cells: Sequence[str]) -> str:
    escaped = (cell.replace("|", "\\|") for cell in cells)
    return "| " + " | ".join(escaped) + " |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch04_streaming.providers",
        description="Five providers' streaming speech-to-text APIs"
                    " compared, with sources.")
    parser.add_argument("--markdown", action="store_true",
                        help="a Markdown table instead of plain text")
    parser.add_argument("--provider", metavar="NAME",
                        help="only this provider (its key or name)")
    parser.add_argument("--file", type=Path, default=PROVIDERS_FILE,
                        help="the comparison to print (default: the"
                             " chapter's providers.toml)")
    args = parser.parse_args(argv)
    try:
        comparison = load_comparison(args.file)
    except ProvidersError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    providers = comparison.providers
    if args.provider is not None:
        try:
            providers = [comparison.provider(args.provider)]
        except ProvidersError as error:
            parser.error(str(error))
    print((markdown if args.markdown else plain_text)(providers), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
