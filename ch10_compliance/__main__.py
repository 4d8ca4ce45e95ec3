"""`python -m ch10_compliance COMMAND`: compliance, run as code.

Chapter 10. `serve` runs chapter 9's service with the audit, residency,
consent and retention wired in; `keys` is chapter 9's key command,
audited; `audit` verifies the tamper-evident
audit log, proves an entry is in it and records an operator's action;
`retention` runs the deletion job; `subject` exports or erases a
person's data and tracks the law's deadlines; `matrix` maps each
requirement to the code and test that meet it, and `evidence` runs the
controls' checks into a dated report. Each command is a module with
`add_parser` and `run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ch09_security.log_redaction import redact_logs
from ch10_compliance import (
    audit_cli,
    evidence_cli,
    keys_cli,
    matrix_cli,
    retention_cli,
    serve,
    subjects_cli,
)

COMMANDS = {"serve": serve, "keys": keys_cli, "audit": audit_cli,
            "retention": retention_cli, "subject": subjects_cli,
            "matrix": matrix_cli, "evidence": evidence_cli}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch10_compliance",
        description="Compliance and data governance for audio ML APIs.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(commands, name)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    redact_logs()
    code: int = COMMANDS[args.command].run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
