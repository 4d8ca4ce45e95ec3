"""The error of chapter 11's tools: a field with a bad value.

Chapter 11, "Setting SLO targets". An SLO spec, a burn-rate tier or a
command-line flag that cannot work is refused before any rule is
written, with the name of the field at fault and what would fix it, so
a bad alert never reaches Prometheus. Sloth's plugins are refused as
their own kind of it, for a tool that compares with Sloth to tell a
spec that needs Go code from one that is wrong.
"""

from __future__ import annotations


# Named for what is wrong, without ruff's Error suffix: callers read
# `except InvalidField:` as the rule it enforces.
class InvalidField(ValueError):  # noqa: N818
    """A value that cannot make a working SLO; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PluginsRefused(InvalidField):
    """Sloth's SLI or SLO plugins: Go code, which is not run here."""
