"""Model names, dated versions, aliases, and which API serves which.

Chapter 7, "API versioning strategies". Clients name a model by alias
(`mock-asr`) or by dated version (`mock-asr-2026-01`); the alias moves
when a new version ships, the dated name never changes meaning. A
deprecated version still answers, with `Deprecation` and `Sunset`
headers, until its sunset; each API major version lists the model
versions it serves, so a breaking change in the response shape and a
change of model are decided separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime

from ch06_pipeline.pipeline_scheduler import CHEAPER, FULL


class UnknownModelError(LookupError):
    """No model of that name in this API version."""


# --8<-- [start:model_versions]
@dataclass(frozen=True)
class ModelVersion:
    name: str  # dated, immutable: mock-asr-2026-01
    engine: str  # which of the pipeline's models decodes it
    api_versions: tuple[str, ...]  # the URL majors that serve it
    deprecated: date | None = None
    sunset: date | None = None  # after this, 404 model_not_found


MODEL_VERSIONS = (
    ModelVersion("mock-asr-2026-01", FULL, ("v1", "v2")),
    ModelVersion("mock-asr-mini-2026-01", CHEAPER, ("v1", "v2")),
    ModelVersion("mock-asr-2025-06", FULL, ("v1",),
                 deprecated=date(2026, 1, 15), sunset=date(2027, 6, 30)),
)
# A release moves an alias; a dated name pins results. OpenAI's names
# work too, so clients written for OpenAI need no change.
ALIASES = {"mock-asr": "mock-asr-2026-01",
           "mock-asr-mini": "mock-asr-mini-2026-01",
           "whisper-1": "mock-asr-2026-01",
           "gpt-4o-transcribe": "mock-asr-2026-01",
           "gpt-4o-mini-transcribe": "mock-asr-mini-2026-01"}


def resolve_model(requested: str, api_version: str,
                  today: date) -> ModelVersion:
    """The dated version a request's model name means in this API."""
    name = ALIASES.get(requested, requested)
    version = next((v for v in MODEL_VERSIONS if v.name == name), None)
    if version is None:
        raise UnknownModelError(f"the model '{requested}' does not exist")
    if api_version not in version.api_versions:
        raise UnknownModelError(
            f"model '{requested}' is not served by /{api_version};"
            f" it is served by /{', /'.join(version.api_versions)}")
    if version.sunset is not None and today > version.sunset:
        raise UnknownModelError(
            f"model '{requested}' was retired on {version.sunset}")
    return version
# --8<-- [end:model_versions]


def deprecation_headers(deprecated: date, sunset: date,
                        successor: str) -> dict[str, str]:
    """RFC 9745's `Deprecation` (a structured date), RFC 8594's
    `Sunset` (an HTTP date) and a link to what replaces it."""
    since = datetime(deprecated.year, deprecated.month, deprecated.day,
                     tzinfo=UTC)
    until = datetime(sunset.year, sunset.month, sunset.day, tzinfo=UTC)
    return {"Deprecation": f"@{int(since.timestamp())}",
            "Sunset": format_datetime(until, usegmt=True),
            "Link": f'<{successor}>; rel="successor-version"'}


def model_headers(version: ModelVersion) -> dict[str, str]:
    """Headers every answer from `version` carries."""
    headers = {"OpenAI-Model": version.name}
    if version.deprecated and version.sunset:
        successor = ALIASES["mock-asr"]
        headers |= deprecation_headers(version.deprecated, version.sunset,
                                       f"/v1/models/{successor}")
    return headers


def version_table() -> list[dict[str, str]]:
    """Rows of the model-to-API version table (README, /v1/models)."""
    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    return [{"model": v.name,
             "aliases": ", ".join(aliases.get(v.name, [])) or "-",
             "apis": ", ".join(f"/{a}" for a in v.api_versions),
             "deprecated": str(v.deprecated or "-"),
             "sunset": str(v.sunset or "-")}
            for v in MODEL_VERSIONS]
