"""Evidence that the controls work today, not that they were written once.

Chapter 10, "SOC 2 for ML APIs". A Type II report covers a period, and
the auditor samples it: what they want is evidence, dated, that each
control operated. Each check here is a small function that looks at the
running system and returns a `CheckResult`: the audit log's Merkle tree
verifies; the retention job finished recently; encryption is on (a
master key is configured, and every object in every regional store is
a wrapped data key and a ciphertext one GCM tag longer than its data,
never the data itself); zero retention is the default (streams opened
through the service's own dialects keep nothing unless they ask); and
the logs hold no PII (chapter 9's detectors, reporting where, never
what). `run_checks` runs them, a crash counting as a failed check, and
the `EvidenceReport` ties each result to the requirements of the
compliance matrix it evidences, written as JSON and Markdown into a
directory named for the day.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, column, func, select, table

from ch04_streaming.dialects.dialect import Dialect, StreamDefaults
from ch04_streaming.session import SessionStats, TranscriptEvent
from ch04_streaming.settings import Settings
from ch04_streaming.transcript import Hypothesis, Word
from ch07_api import database
from ch09_security.envelope import KEY_BITS, NONCE_BYTES, TAG_BYTES
from ch09_security.key_ring import KeyRing
from ch09_security.key_store import reading
from ch09_security.master_key import (
    DEFAULT_MASTER_KEY_FILE,
    MASTER_KEY_VARIABLE,
    MasterKeyError,
    decode_master_key,
)
from ch09_security.pii import EntityKind, detect
from ch09_security.recording_keeper import RecordingKeeper
from ch09_security.serve import guarded_dialects
from ch09_security.stream_owner import StreamOwner, admitted
from ch09_security.vault import AudioVault
from ch10_compliance.matrix import Matrix, Requirement, cell

DAY_MS = 86_400_000
WRAPPED_KEY_BYTES = KEY_BITS // 8 + 8  # AES key wrap adds 8 bytes
SHOWN = 10  # findings listed in a detail; the rest are counted
LOG_KINDS = frozenset({EntityKind.CREDIT_CARD, EntityKind.US_SSN,
                       EntityKind.PHONE, EntityKind.EMAIL})
# A number as the value of a field (bytes=3200000, "at_ms": 17...) was
# formatted by the code: a size, a count, a time, never speech.
NUMERIC_FIELD = re.compile(r'(\b[\w.-]+=|"[\w.-]+"\s*:\s*)-?\d+(\.\d+)?\b')
WRAPPING = "\"'`()[]{}<>,;:"
GOVERNED = table("governed_objects", column("object_id"),
                 column("wrapped_key"), column("nonce"),
                 column("ciphertext"))


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str  # what was looked at and found: never content


Check = Callable[[], CheckResult]


class AuditFinding(Protocol):
    @property
    def message(self) -> str: ...  # says where: "entry 7 was edited"


class AuditVerification(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def size(self) -> int: ...  # entries

    @property
    def checkpoints(self) -> int: ...  # signed checkpoints checked

    @property
    def findings(self) -> Sequence[AuditFinding]: ...


class RetentionRun(Protocol):
    @property
    def finished_at_ms(self) -> int | None: ...


class DescribedObject(Protocol):
    @property
    def object_id(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def shredded(self) -> bool: ...


class SealedStore(Protocol):
    region: str
    engine: Engine

    def listing(self) -> Sequence[DescribedObject]: ...


def check_name(check: Check) -> str:
    target = check.func if isinstance(check, partial) else check
    return str(getattr(target, "__name__", type(target).__name__))


def run_checks(checks: Sequence[Check]) -> list[CheckResult]:
    """Every check, in order; one that raises has failed, and says how
    (the first line only: a driver's later lines quote parameters)."""
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as error:
            reason = (str(error).splitlines() or [""])[0][:200]
            results.append(CheckResult(
                check_name(check), False,
                f"could not run: {type(error).__name__}: {reason}"))
    return results


def when(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def counted(number: int, thing: str) -> str:
    plural = thing[:-1] + "ies" if thing.endswith("y") else thing + "s"
    return f"{number} {thing if number == 1 else plural}"


def listed(items: Sequence[str]) -> str:
    more = len(items) - SHOWN
    return "; ".join(items[:SHOWN]) + (f"; and {more} more" if more > 0
                                       else "")


# The checks -------------------------------------------------------------


def audit_chain_verifies(
        verify: Callable[[], AuditVerification]) -> CheckResult:
    report = verify()
    checked = (f"{counted(report.size, 'entry')} and "
               f"{counted(report.checkpoints, 'signed checkpoint')}")
    if report.ok and not report.findings:
        return CheckResult("audit_chain_verifies", True,
                           f"the audit log verifies: {checked}")
    found = [finding.message for finding in report.findings]
    return CheckResult("audit_chain_verifies", False,
                       f"the audit log does not verify ({checked}): "
                       f"{counted(len(found), 'finding')}: "
                       f"{listed(found) or 'none given'}")


def retention_ran(last_run: Callable[[], RetentionRun | None],
                  clock_ms: Callable[[], int],
                  max_age_days: int) -> CheckResult:
    run, now = last_run(), clock_ms()
    finished = None if run is None else run.finished_at_ms
    if run is None or finished is None:
        said = ("no retention run is recorded" if run is None else
                "the last retention run started and never finished")
        return CheckResult("retention_ran", False, said)
    age_days = (now - finished) / DAY_MS
    passed = 0 <= age_days <= max_age_days
    why = ("in the future: a clock is wrong" if age_days < 0 else
           f"{age_days:.1f} days ago, limit {max_age_days}")
    return CheckResult("retention_ran", passed,
                       f"the last retention run finished {when(finished)}"
                       f", {why}")


def master_key_in_use(env: Mapping[str, str],
                      key_file: Path = DEFAULT_MASTER_KEY_FILE
                      ) -> tuple[bytes, str]:
    """The master key and where it came from, as chapter 9 loads it,
    except that none is generated: a check must not make a key."""
    if MASTER_KEY_VARIABLE in env:
        return (decode_master_key(env[MASTER_KEY_VARIABLE],
                                  MASTER_KEY_VARIABLE), MASTER_KEY_VARIABLE)
    if key_file.is_file():
        return (decode_master_key(key_file.read_text(), str(key_file)),
                f"{key_file} (a development key file)")
    raise MasterKeyError(f"no master key: {MASTER_KEY_VARIABLE} is not "
                         f"set and {key_file} does not exist")


def sealed_lengths(engine: Engine) -> dict[str, tuple[int, int, int]]:
    """Each object's wrapped key, nonce and ciphertext, by length."""
    g = GOVERNED.c
    query = select(g.object_id, func.length(g.wrapped_key),
                   func.length(g.nonce), func.length(g.ciphertext))
    with reading(engine) as connection:
        rows = connection.execute(query.select_from(GOVERNED)).all()
    return {row[0]: (row[1] or 0, row[2] or 0, row[3] or 0) for row in rows}


def unsealed(store: SealedStore) -> tuple[int, list[str]]:
    """How many objects the store lists, and each that is not a data
    key wrapped by AES key wrap and an AES-GCM ciphertext of its size."""
    objects = store.listing()
    lengths = sealed_lengths(store.engine)
    problems = []
    for item in objects:
        if item.object_id not in lengths:
            continue  # deleted since it was listed
        wrapped, nonce, ciphertext = lengths[item.object_id]
        if (wrapped, nonce) != (WRAPPED_KEY_BYTES, NONCE_BYTES):
            problems.append(f"{store.region} {item.object_id}: no wrapped "
                            "data key and nonce")
        elif ciphertext != item.size_bytes + TAG_BYTES:
            problems.append(f"{store.region} {item.object_id}: "
                            f"{ciphertext} bytes stored for "
                            f"{item.size_bytes} bytes of data: not sealed")
    return len(objects), problems


def encryption_on(env: Mapping[str, str],
                  open_stores: Callable[[bytes], Mapping[str, SealedStore]],
                  key_file: Path = DEFAULT_MASTER_KEY_FILE) -> CheckResult:
    master_key, source = master_key_in_use(env, key_file)
    stores = open_stores(master_key)
    if not stores:
        return CheckResult("encryption_on", False,
                           "no regional stores are configured")
    try:
        found = {region: unsealed(store) for region, store in stores.items()}
    finally:
        for store in stores.values():
            store.engine.dispose()
    problems = [p for _, region_problems in found.values()
                for p in region_problems]
    per_region = ", ".join(f"{region} {n}"
                           for region, (n, _) in found.items())
    if problems:
        return CheckResult("encryption_on", False,
                           f"{counted(len(problems), 'object')} not "
                           f"sealed: {listed(problems)}")
    return CheckResult("encryption_on", True,
                       f"master key from {source}; every object sealed "
                       f"(objects per region: {per_region})")


def zero_retention_by_default() -> CheckResult:
    """Streams through every dialect the service serves, wrapped as
    chapter 9 wraps them and admitted for an owner as its guard would:
    those that do not ask keep nothing; those that ask for `retain=true`
    keep their audio and transcript, which shows the check can see a
    kept stream at all."""
    quiet, asked, paths = asyncio.run(kept_by_streams())
    expected = 2 * len(paths)
    passed = quiet == 0 and asked == expected
    return CheckResult(
        "zero_retention_by_default", passed,
        f"{len(paths)} dialects ({', '.join(paths)}): streams that did "
        f"not ask kept {quiet} objects; streams with retain=true kept "
        f"{asked} (expected {expected})")


async def kept_by_streams() -> tuple[int, int, list[str]]:
    # Each dialect reads what it knows: OpenAI's needs its intent.
    default = {"sample_rate": "16000", "intent": "transcription"}
    with tempfile.TemporaryDirectory() as scratch:
        quiet, paths = await objects_kept(Path(scratch, "a"), default)
        asked, _ = await objects_kept(Path(scratch, "b"),
                                      {**default, "retain": "true"})
    return quiet, asked, paths


async def objects_kept(folder: Path,
                       query: Mapping[str, str]) -> tuple[int, list[str]]:
    engine = database.open_engine(f"sqlite:///{folder}/kept.sqlite3")
    try:
        vault = AudioVault(engine, KeyRing(os.urandom(32), lambda: 0))
        vault.create_schema()
        keeper = RecordingKeeper(vault)
        dialects = guarded_dialects(Settings(), keeper)
        for dialect in dialects.values():
            # A context per stream, as the server runs each connection.
            contextvars.Context().run(one_stream, dialect, query)
        await keeper.settled()
        return len(vault.listing()), list(dialects)
    finally:
        engine.dispose()


def one_stream(dialect: Dialect, query: Mapping[str, str]) -> None:
    request = dialect.parse(query, StreamDefaults())
    admitted(StreamOwner("evidence-stream", "evidence", "key_evidence"))
    stream = dialect.open_stream(request)
    stream.opening()
    stream.on_audio(bytes(3200))  # 100 ms of 16 kHz silence
    words = (Word("checked", 0.0, 0.4),)
    stream.encode(TranscriptEvent(Hypothesis(words, True), 0.0, 0.4,
                                  speech_final=True, from_finalize=False))
    stream.closing(SessionStats())


def log_words(line: str) -> list[str]:
    """A log line's words, as a transcript's would be: structured
    numbers dropped, quotes and brackets stripped, `name=value` read as
    its value (a transcript logged as text="..." is still found)."""
    line = NUMERIC_FIELD.sub(r"\1", line)
    words = (word.rpartition("=")[2].strip(WRAPPING)
             for word in line.split())
    return [word for word in words if word]


def log_files(paths: Sequence[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file())
        else:
            found.append(path)
    return found


def no_pii_in_logs(paths: Sequence[Path]) -> CheckResult:
    """Chapter 9's detectors over every line: each finding is reported
    by file, line and kind, never by what was found."""
    if not paths:
        return CheckResult("no_pii_in_logs", False,
                           "no log files given: nothing was scanned")
    findings: list[str] = []
    lines = 0
    files = log_files(paths)
    for path in files:
        if not path.is_file():
            findings.append(f"{path}: no such file")
            continue
        with path.open(encoding="utf-8", errors="replace") as log:
            for number, line in enumerate(log, start=1):
                lines += 1
                findings += [f"{path}:{number} {entity.kind}" for entity
                             in detect(log_words(line), LOG_KINDS)]
    scanned = f"{counted(len(files), 'file')}, {counted(lines, 'line')}"
    if findings:
        return CheckResult("no_pii_in_logs", False,
                           f"{scanned} scanned: "
                           f"{counted(len(findings), 'finding')}: "
                           f"{listed(findings)}")
    return CheckResult("no_pii_in_logs", True,
                       f"{scanned} scanned: no PII found")


# The report ---------------------------------------------------------------


# --8<-- [start:matrix_row_evidence]
def evidence_row(requirement: Requirement,
                 results: Mapping[str, CheckResult]) -> str:
    """A requirement's row in the evidence report: the control that
    meets it, and what today's checks of that control found. A check
    that did not run is no evidence, so it reads as failed."""
    verdicts = []
    for name in requirement.evidence:
        result = results.get(name)
        verdict = "passed" if result and result.passed else "FAILED"
        verdicts.append(f"`{name}` {verdict}")
    return (f"| {cell(requirement.where)} | {cell(requirement.control)} "
            f"| {requirement.status.label} | {', '.join(verdicts)} |")
# --8<-- [end:matrix_row_evidence]


@dataclass(frozen=True)
class EvidenceReport:
    generated_at_ms: int
    results: tuple[CheckResult, ...]
    matrix: Matrix

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def evidenced(self) -> list[Requirement]:
        return [r for r in self.matrix.requirements if r.evidence]

    def by_name(self) -> dict[str, CheckResult]:
        return {result.name: result for result in self.results}

    def markdown(self) -> str:
        failed = [r for r in self.results if not r.passed]
        verdict = (f"All {len(self.results)} checks passed."
                   if not failed else
                   f"{len(failed)} of {len(self.results)} checks failed.")
        lines = [f"# Evidence report, {when(self.generated_at_ms)}", "",
                 verdict, "", "| Check | Result | Detail |",
                 "|---|---|---|"]
        lines += [f"| `{r.name}` | {'passed' if r.passed else 'FAILED'} "
                  f"| {cell(r.detail)} |" for r in self.results]
        lines += ["", "## Requirements and their evidence", "",
                  "| Requirement | Control | Status | Evidence |",
                  "|---|---|---|---|"]
        lines += [evidence_row(r, self.by_name()) for r in self.evidenced]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        results = self.by_name()
        return {
            "generated_at": when(self.generated_at_ms),
            "generated_at_ms": self.generated_at_ms,
            "passed": self.passed,
            "checks": [{"name": r.name, "passed": r.passed,
                        "detail": r.detail} for r in self.results],
            "requirements": [
                {"framework": r.framework, "citation": r.citation,
                 "status": r.status.value,
                 "evidence": {name: bool(results.get(name)
                                         and results[name].passed)
                              for name in r.evidence}}
                for r in self.evidenced],
        }


def write_report(report: EvidenceReport, out: Path) -> tuple[Path, Path]:
    """JSON and Markdown in `out/<UTC date>/`, named for the time; a
    report once written is never overwritten."""
    stamp = when(report.generated_at_ms)  # 2026-12-06T22:28:57Z
    folder = out / stamp[:10]
    folder.mkdir(parents=True, exist_ok=True)
    name = "evidence-" + stamp[11:].replace(":", "")
    json_path, markdown_path = (folder / f"{name}.json",
                                folder / f"{name}.md")
    with json_path.open("x", encoding="utf-8") as written:
        json.dump(report.as_json(), written, indent=2)
        written.write("\n")
    with markdown_path.open("x", encoding="utf-8") as written:
        written.write(report.markdown())
    return json_path, markdown_path
