"""A non-editable install works: wheel, fresh venv, another folder.

Builds a wheel of the project, installs it into a fresh virtual
environment that sees the dependencies but not this checkout, and runs
every chapter's entry point from a folder outside the repository. The
chapter 4 service must find its sample audio as installed package data
and transcribe a fixture from there to the manifest's reference text.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import site
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch08_metering.database import open_engine
from ch08_metering.ledger import Ledger
from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready
from tests.environment import unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
KEY = "install-test-key"
CHAPTERS = ("ch04_streaming", "ch08_metering", "ch11_slo", "examples")
# What a build of the checkout must not copy: caches, environments and
# earlier builds, which are large or change while the suite runs.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
    ".*_cache", ".coverage*", "node_modules",
)
RUN_TIMEOUT_S = 60


@dataclass(frozen=True)
class Installed:
    python: Path  # the fresh venv's interpreter
    site: Path  # its site-packages, where the wheel went
    workdir: Path  # a folder outside the repository to run in

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -I: neither the working folder nor PYTHONPATH reach sys.path,
        # so only the installed copy can be imported.
        return subprocess.run(
            [str(self.python), "-I", *args], cwd=self.workdir,
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )


def checked(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}: {done.stderr}"
    return done.stdout


def has_setuptools() -> bool:
    """True when setuptools can build the wheel without a download."""
    try:
        major = int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return False
    return major >= 77  # as pyproject.toml's build-system requires


def build_wheel(source: Path, out: Path) -> Path:
    command: Sequence[str] = (
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
        "-w", str(out), str(source))
    if has_setuptools():
        done = subprocess.run([*command, "--no-build-isolation"],
                              capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
    else:
        # pip fetches setuptools for an isolated build; offline, it
        # cannot, which is a missing tool, not a broken build.
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            unavailable("setuptools could not be fetched from PyPI in"
                        f" {RUN_TIMEOUT_S} s to build a wheel")
        if done.returncode != 0:
            unavailable("cannot build a wheel without setuptools from "
                        f"PyPI: {done.stderr.strip()[-300:]}")
    (wheel,) = out.glob("*.whl")
    return wheel


def fresh_venv(root: Path) -> tuple[Path, Path]:
    """A venv without pip; returns its interpreter and site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                    str(root)], check=True, timeout=RUN_TIMEOUT_S)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-I", "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=RUN_TIMEOUT_S,
    ).stdout.strip()
    return python, Path(purelib)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    # Build from a copy: a build writes build/ and *.egg-info into its
    # source folder, and the checkout's build/ holds other things.
    source = tmp / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCE)
    wheel = build_wheel(source, tmp / "dist")
    python, site_packages = fresh_venv(tmp / "venv")
    # The dependencies, from this environment's site-packages. A .pth
    # line only appends a folder to sys.path: the .pth files in that
    # folder, the checkout's editable install among them, are not run.
    deps = site.getsitepackages()
    (site_packages / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
         "-q", "--target", str(site_packages), str(wheel)],
        check=True, capture_output=True, timeout=RUN_TIMEOUT_S,
    )
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    assert not workdir.is_relative_to(REPO_ROOT)
    return Installed(python, site_packages, workdir)


def test_chapters_and_their_data_come_from_the_install(
    installed: Installed,
) -> None:
    shown = checked(installed.run("-c", (
        "import json, importlib\n"
        "from ch04_streaming.settings import DEFAULT_MANIFEST\n"
        f"names = {list(CHAPTERS)!r}\n"
        "files = [importlib.import_module(n).__file__ for n in names]\n"
        "print(json.dumps(files + [str(DEFAULT_MANIFEST)]))\n"
    )))
    paths = [Path(p) for p in json.loads(shown)]
    outside = [p for p in paths if not p.is_relative_to(installed.site)]
    assert outside == []
    assert paths[-1].is_file()  # the sample-audio manifest


@pytest.mark.parametrize("module", [
    "ch04_streaming", "ch04_streaming.vad_savings",
    "ch04_streaming.chunk_experiment", "ch08_metering", "ch11_slo",
])
def test_entry_point_answers_help(installed: Installed, module: str) -> None:
    assert "usage:" in checked(installed.run("-m", module, "--help"))


async def test_installed_service_transcribes_packaged_audio(
    installed: Installed,
) -> None:
    audio_dir = installed.site / "examples" / "audio"
    fixture = load_manifest(audio_dir / "manifest.json").get(
        "quick_brown_fox")
    args = ("-I", "-m", "ch04_streaming", "--port", "0", "--load-s", "0",
            "--warmup-s", "0")
    async with running_service(
        args, {"SPEECH_API_KEYS": KEY}, start_timeout_s=30,
        python=installed.python, cwd=installed.workdir,
    ) as service:
        await wait_until_ready(service.port)
        async with asyncio.timeout(30):
            report = await stream(
                f"ws://127.0.0.1:{service.port}", DIALECTS["deepgram"], KEY,
                load_audio(audio_dir / "quick_brown_fox.wav"))
    assert report.close_code == 1000
    assert report.transcript == fixture.text


def test_codec_bandwidth_measures_the_packaged_variants(
    installed: Installed,
) -> None:
    table = checked(installed.run("-m", "ch04_streaming.codec_bandwidth"))
    lines = table.splitlines()
    assert lines[0].split()[0] == "codec"
    assert len(lines) == 1 + 6  # the utterance and its five variants
    assert any(line.startswith("ogg opus") for line in lines)


def test_vad_savings_reads_the_packaged_conversation(
    installed: Installed,
) -> None:
    out = checked(installed.run("-m", "ch04_streaming.vad_savings"))
    assert out.startswith("support_call.wav: 44.1 s of audio")


def test_invoice_of_an_empty_ledger(installed: Installed) -> None:
    url = f"sqlite:///{installed.workdir / 'ledger.sqlite3'}"
    engine = open_engine(url)
    Ledger(engine).create()
    engine.dispose()
    out = checked(installed.run(
        "-m", "ch08_metering", "invoice", "--customer", "demo",
        "--period", "2026-11", "--database-url", url))
    assert "Invoice preview: demo, 2026-11" in out
    assert "(no usage in this period)" in out


def test_burn_rates_table(installed: Installed) -> None:
    out = checked(installed.run(
        "-m", "ch11_slo", "burn-rates", "--objective", "99.9"))
    assert out.startswith("SLO 99.9% over 30d")
    assert "page      1h    5m     14.4    0.0144" in out
