"""`python -m ch09_security COMMAND`: the secured service and its tools.

Chapter 9. `serve` runs chapter 4's streaming endpoints behind managed
API keys, over TLS when given a certificate; `keys` creates, lists,
shows, rolls and revokes those keys; `audio` lists, exports, rotates
and shreds the audio streams asked to have kept; `signing-keys`
rotates and retires the keys that sign tokens; `certs` writes TLS
certificates for a development machine. Each command is a module
with `add_parser` and `run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ch09_security import (
    audio_cli,
    certs_cli,
    keys_cli,
    serve,
    signing_keys_cli,
)
from ch09_security.log_redaction import redact_logs

COMMANDS = {"serve": serve, "keys": keys_cli, "audio": audio_cli,
            "certs": certs_cli, "signing-keys": signing_keys_cli}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch09_security",
        description="Security for audio ML APIs.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(commands, name)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    redact_logs()  # no token, key or URL credential in any log line
    code: int = COMMANDS[args.command].run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
