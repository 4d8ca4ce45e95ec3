"""The providers compared: the committed facts, the code they name, the
command's two forms, and the files it must refuse."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ch04_streaming import app
from ch04_streaming.providers import (
    NONE_YET,
    PROVIDERS_FILE,
    WIDTH,
    Demonstration,
    ProvidersError,
    facts,
    load_comparison,
    main,
    markdown,
    parse_comparison,
    source_lines,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "ch04_streaming" / "README.md"
COMPARISON = load_comparison()
FIVE = {"deepgram": "Deepgram", "assemblyai": "AssemblyAI",
        "google": "Google Cloud Speech", "amazon": "Amazon Transcribe",
        "openai": "OpenAI Realtime"}


def raw_file() -> dict[str, Any]:
    return tomllib.loads(PROVIDERS_FILE.read_text(encoding="utf-8"))


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(ProvidersError) as refused:
        parse_comparison(raw, origin="providers.toml")
    return str(refused.value)


def markdown_cells(line: str) -> list[str]:
    """A table row's cells; an escaped pipe stays inside its cell."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_the_committed_file_compares_the_five_providers() -> None:
    assert {p.key: p.name for p in COMPARISON.providers} == FIVE


def test_every_fact_has_a_source_and_the_day_it_was_checked() -> None:
    for provider in COMPARISON.providers:
        for label, fact in facts(provider):
            assert fact.value and fact.sources, (provider.key, label)
            # a TOML date, printed in ISO form, not in the future
            assert type(fact.checked) is date, (provider.key, label)
            assert date.fromisoformat(fact.checked.isoformat())
            assert fact.checked <= date.today(), (provider.key, label)


# The facts that cite only the book's notes: no page of the provider's
# own (documentation or official SDK) was found that states them.
NOTES_ONLY = {
    ("deepgram", "message size"),  # not published
    ("deepgram", "stream duration"),  # not published
    ("deepgram", "billing"),  # per-second pro-rating: no docs page
    ("google", "chunking"),  # 100 ms frames: not found on a page
    ("amazon", "billing"),  # the 15 s minimum: no docs page
    ("openai", "concurrency"),  # not published
}


def test_every_fact_cites_the_provider_or_is_listed_as_notes_only() -> None:
    """A provider's page beside the notes; the list stays exact, so a
    fact that gains a URL leaves it and one that loses its URL fails."""
    notes_only = {(provider.key, label)
                  for provider in COMPARISON.providers
                  for label, fact in facts(provider)
                  if not any(source.startswith("https://")
                             for source in fact.sources)}
    assert notes_only == NOTES_ONLY


def test_demonstrated_and_not_yet() -> None:
    shown = {p.key: bool(p.demonstrated_by) for p in COMPARISON.providers}
    assert shown == {"deepgram": True, "assemblyai": True, "google": True,
                     "amazon": False, "openai": True}


def assert_code_serves(demo: Demonstration) -> None:
    module = importlib.import_module(demo.module)
    if demo.serves.startswith("/"):
        # a WebSocket path: chapter 4's service routes it to this module
        dialect = app.dialects()[demo.serves]
        assert type(dialect).__module__ == demo.module
    else:
        # a gRPC method: the module registers it under that service
        service, method = demo.serves.rsplit("/", 1)
        assert service == module.SERVICE
        assert f'"{method}"' in inspect.getsource(module)


def assert_command_runs(command: str) -> None:
    package, *subcommand = command.removeprefix("python -m ").split()
    assert importlib.util.find_spec(f"{package}.__main__") is not None
    if subcommand:
        entry = importlib.import_module(f"{package}.__main__")
        assert subcommand[0] in entry.COMMANDS


def test_every_demonstration_names_code_that_serves_it() -> None:
    demos = [demo for provider in COMPARISON.providers
             for demo in provider.demonstrated_by]
    assert {demo.serves for demo in demos} == {
        "/v1/listen", "/v3/ws", "/v1/realtime",
        "google.cloud.speech.v1.Speech/StreamingRecognize"}
    for demo in demos:
        assert_code_serves(demo)
        assert_command_runs(demo.command)


def test_a_path_no_dialect_serves_is_caught() -> None:
    wrong = Demonstration(module="ch04_streaming.dialects.deepgram",
                          serves="/v2/listen",
                          command="python -m ch04_streaming")
    with pytest.raises(KeyError):
        assert_code_serves(wrong)
    with pytest.raises(AssertionError):
        assert_command_runs("python -m ch05_protocols websocket")


def test_the_plain_table_shows_every_provider_in_79_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for key, name in FIVE.items():
        assert f"{name} ({key})" in out
    assert out.count(NONE_YET) == 1  # Amazon Transcribe only
    assert max(map(len, out.splitlines())) <= WIDTH
    assert "Sources, checked 2026-12-06:" in out


def test_a_long_url_breaks_after_a_slash_and_reads_back_whole() -> None:
    url = "https://example.com/" + "/".join(["segment"] * 20) + ".html"
    lines = source_lines(12, url).splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= WIDTH
    assert all(line.endswith("/") for line in lines[:-1])
    assert "".join(line.strip() for line in lines) == f"[12] {url}"
    assert source_lines(3, "protocols.md: OpenAI Realtime") == (
        "[3] protocols.md: OpenAI Realtime")


def test_the_markdown_table_has_as_many_cells_in_every_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--markdown"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert [len(markdown_cells(row)) for row in rows] == [6] * len(rows)
    assert markdown_cells(rows[0])[1:] == [f" {n} " for n in FIVE.values()]
    assert set(markdown_cells(rows[1])) == {" --- "}
    assert len(rows) == 2 + 1 + 10  # header, rule, demonstrations, facts
    cited = {int(n) for refs in re.findall(r"\[([\d,]+)\] \|", out)
             for n in refs.split(",")}
    listed = {int(n) for n in re.findall(r"^- \[(\d+)\] ", out, re.M)}
    assert cited == listed == set(range(1, len(listed) + 1))


def test_a_pipe_in_a_fact_stays_inside_its_cell() -> None:
    raw = raw_file()
    raw["providers"][0]["encodings"]["value"] = "linear16 | mulaw"
    table = markdown(parse_comparison(raw, "test").providers)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert {len(markdown_cells(row)) for row in rows} == {6}


def test_the_readme_holds_the_table_the_command_prints() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- providers: python -m ch04_streaming.providers"
                      r" --markdown -->\n(.*?)<!-- end providers -->",
                      text, re.S)
    assert block is not None
    assert block.group(1) == markdown(COMPARISON.providers)


def test_one_provider_by_key_or_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--provider", "google"]) == 0
    by_key = capsys.readouterr().out
    assert main(["--provider", "google cloud speech"]) == 0
    assert capsys.readouterr().out == by_key
    assert "StreamingRecognize" in by_key and "Deepgram" not in by_key


def test_an_unknown_provider_exits_2_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--provider", "azure"])
    assert stopped.value.code == 2
    assert "no provider 'azure'; known: deepgram," in capsys.readouterr().err


def test_the_module_runs_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch04_streaming.providers", "--provider",
         "azure"], capture_output=True, text=True, cwd=REPO_ROOT,
        timeout=60, check=False)
    assert done.returncode == 2 and "no provider 'azure'" in done.stderr


def without(raw: dict[str, Any], *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    node: Any = changed
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return changed


def with_value(raw: dict[str, Any], value: Any,
               *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    node: Any = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize(("path", "named"), [
    (("providers", 1, "limits", "timeouts"),
     "providers[1] (AssemblyAI).limits: missing field 'timeouts'"),
    (("providers", 0, "transport", "checked"),
     "providers[0] (Deepgram).transport: missing field 'checked'"),
    (("providers", 3, "demonstrated_by"),
     "providers[3] (Amazon Transcribe): missing field 'demonstrated_by'"),
    (("providers", 2, "demonstrated_by", 0, "command"),
     "providers[2] (Google Cloud Speech).demonstrated_by[0]:"
     " missing field 'command'"),
    (("providers",), "top level: missing field 'providers'"),
])
def test_a_missing_field_is_refused_by_name(
    path: tuple[str | int, ...], named: str,
) -> None:
    assert named in refusal(without(raw_file(), *path))


@pytest.mark.parametrize(("path", "named"), [
    (("providers", 4, "billing", "url"),
     "providers[4] (OpenAI Realtime).billing: unknown key 'url'"),
    (("providers", 0, "price"), "providers[0] (Deepgram): unknown key"
     " 'price'"),
    (("providers", 2, "limits", "bandwidth"),
     "providers[2] (Google Cloud Speech).limits: unknown key 'bandwidth'"),
    (("version",), "top level: unknown key 'version'"),
])
def test_an_unknown_key_is_refused_by_name(
    path: tuple[str | int, ...], named: str,
) -> None:
    assert named in refusal(with_value(raw_file(), "x", *path))


@pytest.mark.parametrize(("path", "value", "named"), [
    (("providers", 0, "billing", "checked"), "2026-12-06",
     "providers[0] (Deepgram).billing.checked: Input should be a valid"
     " date"),
    (("providers", 1, "framing", "sources"), [],
     "providers[1] (AssemblyAI).framing.sources: List should have at"
     " least 1 item"),
    (("providers", 1, "framing", "sources", 0), "the internet",
     "providers[1] (AssemblyAI).framing.sources[0]: 'the internet' is"
     " neither a URL"),
    (("providers", 1, "framing", "sources", 0), "http://example.com",
     "is neither a URL (https://...) nor a citation"),
    (("providers", 2, "chunking", "value"), "",
     "providers[2] (Google Cloud Speech).chunking.value: String should"
     " have at least 1 character"),
    (("providers", 3, "billing", "value"), 15,
     "billing.value: Input should be a valid string"),
    (("providers", 0, "key"), "Deep Gram", "providers[0] (Deepgram).key:"),
    (("providers", 0, "demonstrated_by", 0, "command"),
     "uvicorn app:app", ".demonstrated_by[0].command: String should match"),
])
def test_a_wrong_value_is_refused_by_name(
    path: tuple[str | int, ...], value: Any, named: str,
) -> None:
    assert named in refusal(with_value(raw_file(), value, *path))


def test_every_problem_of_a_file_is_named_at_once() -> None:
    raw = without(raw_file(), "providers", 0, "billing")
    raw["providers"][4]["transport"]["via"] = "carrier pigeon"
    message = refusal(raw)
    assert "providers[0] (Deepgram): missing field 'billing'" in message
    assert "providers[4] (OpenAI Realtime).transport: unknown key 'via'" in (
        message)


def test_a_provider_twice_is_refused() -> None:
    raw = raw_file()
    raw["providers"].append(copy.deepcopy(raw["providers"][0]))
    assert "provider key used twice: deepgram" in refusal(raw)
    raw["providers"][-1]["key"] = "deepgram-eu"
    assert "provider name used twice: Deepgram" in refusal(raw)


def test_the_command_refuses_a_bad_file_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    text = PROVIDERS_FILE.read_text(encoding="utf-8")
    quoted = re.sub(r"checked = (\d{4}-\d\d-\d\d)", r'checked = "\1"',
                    text, count=1)
    bad = tmp_path / "providers.toml"
    bad.write_text(quoted, encoding="utf-8")
    assert main(["--file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "providers[0] (Deepgram).transport.checked" in err
    bad.write_text("[[providers]\n", encoding="utf-8")
    assert main(["--file", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
    assert main(["--file", str(tmp_path / "absent.toml")]) == 1
    assert "absent.toml" in capsys.readouterr().err
