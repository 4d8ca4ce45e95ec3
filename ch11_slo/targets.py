"""SLO targets by use-case tier, read from `targets.toml`.

Chapter 11, "Setting SLO targets". The book's numbers differ by what the
listener is doing: an interactive agent needs its first result within
100 ms, voice AI within 300 ms; both want the final within 800 ms of the
last word of a 3 s utterance. The targets live in a TOML file, not in
code, so a team changes a number without changing a line of Python, and
a value that cannot be a target is refused with the field that holds it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ch11_slo.invalid import InvalidField

DEFAULT_TARGETS = Path(__file__).with_name("targets.toml")
Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


# --8<-- [start:tier_targets]
class TierTargets(BaseModel):
    """What "good" means for one use-case tier."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    description: str
    first_result_seconds: Positive
    final_latency_seconds: Positive
    max_wer: Share
    min_goodput: Share
    rtf_below: Positive
    max_drop_rate: Share
    min_reconnection: Share
# --8<-- [end:tier_targets]


def load_targets(path: Path = DEFAULT_TARGETS) -> dict[str, TierTargets]:
    """Every tier in `path`; InvalidField naming the bad field."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InvalidField(str(path), f"not TOML: {error}") from None
    tiers = document.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise InvalidField("tiers", f"{path} defines no [tiers.NAME] table")
    loaded = {}
    for name, table in tiers.items():
        if not isinstance(table, dict):
            raise InvalidField(f"tiers.{name}", "must be a table")
        try:
            loaded[name] = TierTargets.model_validate({**table, "name": name})
        except ValidationError as error:
            errors = error.errors()
            # A misspelt key is also a missing one: name the misspelling.
            detail = next((e for e in errors
                           if e["type"] == "extra_forbidden"), errors[0])
            where = ".".join(str(part) for part in detail["loc"])
            raise InvalidField(f"tiers.{name}.{where}",
                               detail["msg"]) from None
    return loaded


def tier_targets(name: str, path: Path = DEFAULT_TARGETS) -> TierTargets:
    """The targets of tier `name`; InvalidField listing the known ones."""
    tiers = load_targets(path)
    if name not in tiers:
        known = ", ".join(sorted(tiers))
        raise InvalidField("tier", f"unknown tier {name!r} (known: {known})")
    return tiers[name]
