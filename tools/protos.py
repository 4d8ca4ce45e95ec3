"""Python stubs from the protos: generate them, or prove them current.

The `.proto` files under `protos/` are the source; the `*_pb2.py`,
`*_pb2_grpc.py` and their `.pyi` type stubs are generated from them
with grpcio-tools and mypy-protobuf, and committed, so a reader sees
them and an install needs no compiler. Each proto is compiled as if it
sat in the Python package that holds its stubs (`protos/speech/v1/` as
`ch05_protocols/speech/v1/`), so the generated imports are absolute.
`--check` generates into a temporary folder and fails, naming the file,
when a committed stub differs from what the protos give.

    python -m tools.protos [--root .] [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = "protos"
STUB_PACKAGE = "ch05_protocols"  # where the stubs of every proto live
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi")


def proto_files(root: Path) -> list[Path]:
    """Every proto, relative to the proto folder, sorted."""
    base = root / PROTO_DIR
    return sorted(p.relative_to(base) for p in base.rglob("*.proto"))


def generate(root: Path, out: Path) -> list[Path]:
    """Compile every proto under `root` into `out`; the files written,
    relative to `out`."""
    plugins = Path(sys.executable).parent
    well_known = str(files("grpc_tools") / "_proto")
    protos = [f"{STUB_PACKAGE}/{p.as_posix()}" for p in proto_files(root)]
    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{STUB_PACKAGE}={root / PROTO_DIR}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}", f"--mypy_grpc_out=quiet:{out}",
        *protos,
    ])
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    return generated_files(out)


def generated_files(root: Path) -> list[Path]:
    """The stubs under `root`'s stub package, relative to `root`."""
    folder = root / STUB_PACKAGE
    found = {p for pattern in GENERATED for p in folder.rglob(pattern)}
    return sorted(p.relative_to(root) for p in found)


def stale_stubs(root: Path) -> list[str]:
    """How the committed stubs differ from freshly generated ones."""
    with tempfile.TemporaryDirectory() as temp:
        fresh = Path(temp)
        expected = set(generate(root, fresh))
        committed = set(generated_files(root))
        problems = [f"{p}: not generated from any proto"
                    for p in sorted(committed - expected)]
        for path in sorted(expected):
            if path not in committed:
                problems.append(f"{path}: missing; run make protos")
            elif (root / path).read_bytes() != (fresh / path).read_bytes():
                problems.append(f"{path}: differs from its proto;"
                                " run make protos")
        return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.protos")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--check", action="store_true",
                        help="fail if a committed stub is out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_stubs(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in generate(args.root, args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
