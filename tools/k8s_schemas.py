"""JSON Schemas from Kubernetes CRDs, to check custom resources offline.

Chapter 12, "Auto-scaling for inference": KubeRay's `RayService` and
KEDA's `ScaledObject` are custom resources, which no schema bundled for
the built-in kinds covers. The API server checks one against the
`openAPIV3Schema` of its CustomResourceDefinition; this writes that
schema, for one served version, as a JSON Schema file that
`check-jsonschema` applies without a cluster. The server's strict field
validation is written out: an object that lists its properties takes
no others unless it says so, `nullable` becomes a `null` type, and
`apiVersion` and `kind` must name the resource (the server routes on
them). CEL rules (`x-kubernetes-validations`) are not evaluated. The
schemas committed in deploy/k8s/schemas are hand-written subsets of
the API references; this tool is for checking the manifests against a
full upstream CRD when you have one (give `--out` another folder). The
file records where the CRD came from, so it can be made again:

    python -m tools.k8s_schemas CRD.yaml --repository OWNER/NAME
        --path PATH --ref TAG --commit SHA --licence SPDX
        [--version NAME] [--out deploy/k8s/schemas]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Where a structural schema holds other schemas.
SCHEMA_MAPS = ("properties", "patternProperties")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SCHEMA_ONES = ("additionalProperties", "items", "not")


class CrdError(ValueError):
    """A document that is not a CRD, or lacks the version asked for."""


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema, with the API server's strict
    field validation and OpenAPI's `nullable` in JSON Schema's terms."""
    copy = dict(schema)
    for key in SCHEMA_MAPS:
        if key in copy:
            copy[key] = {name: strict(s) for name, s in copy[key].items()}
    for key in SCHEMA_LISTS:
        if key in copy:
            copy[key] = [strict(s) for s in copy[key]]
    for key in SCHEMA_ONES:
        if isinstance(copy.get(key), dict):
            copy[key] = strict(copy[key])
    if copy.pop("nullable", False) and "type" in copy:
        copy["type"] = [copy["type"], "null"]
        if "enum" in copy:
            copy["enum"] = [*copy["enum"], None]
    if ("properties" in copy and "additionalProperties" not in copy
            and not copy.get("x-kubernetes-preserve-unknown-fields")):
        copy["additionalProperties"] = False
    return copy


def served_schema(crd: dict[str, Any], version: str | None
                  ) -> tuple[str, dict[str, Any]]:
    """The version asked for (or the storage version) and its schema."""
    if (crd.get("apiVersion") != "apiextensions.k8s.io/v1"
            or crd.get("kind") != "CustomResourceDefinition"):
        raise CrdError("not an apiextensions.k8s.io/v1"
                      " CustomResourceDefinition")
    versions = crd["spec"]["versions"]
    chosen = [v for v in versions if v["name"] == version
              or (version is None and v.get("storage"))]
    if not chosen or not chosen[0].get("served"):
        served = ", ".join(v["name"] for v in versions if v.get("served"))
        raise CrdError(f"no served version {version}; served: {served}")
    schema: dict[str, Any] = chosen[0]["schema"]["openAPIV3Schema"]
    return chosen[0]["name"], schema


def json_schema(crd: dict[str, Any], version: str | None,
                source: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The file name and the JSON Schema of one version of `crd`."""
    name, schema = served_schema(crd, version)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema = strict(schema)
    schema["properties"]["apiVersion"]["const"] = f"{group}/{name}"
    schema["properties"]["kind"]["const"] = kind
    needed = ["apiVersion", "kind", "metadata"]
    schema["required"] = [*needed, *(field for field in schema.get(
        "required", []) if field not in needed)]
    document = {"$schema": DRAFT,
                "$comment": f"The openAPIV3Schema of {kind} {group}/{name}"
                " from its CustomResourceDefinition, made strict by"
                " tools/k8s_schemas.py; see x-source and NOTICE.",
                "x-source": source, **schema}
    return f"{kind.lower()}-{group}-{name}.json", document


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.k8s_schemas",
        description="Write a CRD's openAPIV3Schema as a strict JSON"
        " Schema, with where it came from.")
    parser.add_argument("crd", type=Path, help="the CRD's YAML file")
    parser.add_argument("--repository", required=True,
                        help="the CRD's repository, OWNER/NAME on GitHub")
    parser.add_argument("--path", required=True,
                        help="the CRD's path in that repository")
    parser.add_argument("--ref", required=True, help="the release tag")
    parser.add_argument("--commit", required=True,
                        help="the tag's commit, 40 hex digits")
    parser.add_argument("--licence", required=True,
                        help="the repository's licence, as SPDX")
    parser.add_argument("--version", help="the CRD version to write"
                        " (default: its storage version)")
    parser.add_argument("--out", type=Path,
                        default=Path("deploy/k8s/schemas"),
                        help="folder to write to (default %(default)s)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        parser.error("--commit must be 40 lower-case hex digits")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repository):
        parser.error("--repository must be OWNER/NAME")
    if not args.crd.is_file():
        parser.error(f"crd: no such file: {args.crd}")
    args.parser = parser
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    source = {"repository": f"https://github.com/{args.repository}",
              "path": args.path, "ref": args.ref, "commit": args.commit,
              "licence": args.licence}
    try:
        crd = yaml.safe_load(args.crd.read_text())
        name, schema = json_schema(crd, args.version, source)
    except (CrdError, yaml.YAMLError, AttributeError, KeyError,
            TypeError) as error:
        args.parser.error(f"crd: {args.crd}: {error}")
    args.out.mkdir(parents=True, exist_ok=True)
    written = args.out / name
    written.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
