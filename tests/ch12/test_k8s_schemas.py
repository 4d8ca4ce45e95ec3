"""`python -m tools.k8s_schemas`: a CRD's schema, strict, with its source.

Chapter 12, "Auto-scaling for inference": the custom resources'
schemas that check-jsonschema applies to the RayService and the
ScaledObject. A small CRD made here stands for KubeRay's and KEDA's:
the written schema must take what the API server takes, refuse the
unknown fields its strict field validation refuses, and keep the
fields whose names are schema words. Bad input stops with status 2 and
a message naming what was wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ch12.manifest_agreement import rejected
from tools.k8s_schemas import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def widget_crd() -> dict[str, Any]:
    spec = {"type": "object", "properties": {
        "size": {"type": "integer", "minimum": 1},
        "note": {"type": "string", "nullable": True},
        "mode": {"type": "string", "enum": ["fast", "slow"],
                 "nullable": True},
        "labels": {"type": "object",
                   "additionalProperties": {"type": "string"}},
        "free": {"type": "object",
                 "x-kubernetes-preserve-unknown-fields": True},
        # Fields named like schema words are fields all the same.
        "properties": {"type": "object", "properties": {
            "nullable": {"type": "boolean"}}},
        "items": {"type": "array", "items": {"type": "object",
                                             "properties": {
                                                 "name": {"type": "string"}}}},
    }, "required": ["size"]}
    version = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object"}, "spec": spec}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com",
                 "names": {"kind": "Widget", "plural": "widgets"},
                 "scope": "Namespaced",
                 "versions": [
                     {"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": version}},
                     {"name": "v0", "served": False, "storage": False,
                      "schema": {"openAPIV3Schema": version}}]}}


def arguments(crd: Path, out: Path, *more: str) -> list[str]:
    return [str(crd), "--repository", "example/widgets", "--path",
            "crds/widgets.yaml", "--ref", "v1.0.0", "--commit", COMMIT,
            "--licence", "Apache-2.0", "--out", str(out), *more]


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"size": 2, **spec}}


def test_the_schema_takes_what_the_server_takes_and_no_more(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crd = write(tmp_path / "crd.yaml", widget_crd())
    assert main(arguments(crd, tmp_path / "out")) == 0
    schema = tmp_path / "out" / "widget-example.com-v1.json"
    assert str(schema) in capsys.readouterr().out
    source = json.loads(schema.read_text())["x-source"]
    assert source == {"repository": "https://github.com/example/widgets",
                      "path": "crds/widgets.yaml", "ref": "v1.0.0",
                      "commit": COMMIT, "licence": "Apache-2.0"}
    good = [widget(), widget(note=None, mode=None, labels={"a": "b"},
                             free={"any": {"thing": [1]}},
                             properties={"nullable": True},
                             items=[{"name": "x"}])]
    bad = [widget(colour="red"), widget(size="two"), widget(size=0),
           widget(mode="medium"), widget(properties={"other": 1}),
           widget(items=[{"name": "x", "age": 3}]),
           {**widget(), "apiVersion": "example.com/v0"},
           {**widget(), "kind": "Gadget"},
           {"apiVersion": "example.com/v1", "kind": "Widget",
            "spec": {"size": 1}},
           {**widget(), "extra": {}}]
    files = [write(tmp_path / f"w{n}.yaml", d)
             for n, d in enumerate(good + bad)]
    assert rejected(schema, *files) == {str(f) for f in files[len(good):]}


def test_an_unserved_version_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crd = write(tmp_path / "crd.yaml", widget_crd())
    with pytest.raises(SystemExit) as stopped:
        main(arguments(crd, tmp_path, "--version", "v0"))
    assert stopped.value.code == 2
    assert "served: v1" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(("content", "flag", "value", "named"), [
    ("kind: Deployment\napiVersion: apps/v1\n", None, None, "crd:"),
    ("spec: [unclosed\n", None, None, "crd:"),
    (None, None, None, "no such file"),
    ("", "--commit", "v1.0.0", "--commit"),
    ("", "--repository", "https://github.com/example/widgets",
     "--repository"),
])
def test_bad_input_stops_with_status_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        content: str | None, flag: str | None, value: str | None,
        named: str) -> None:
    crd = tmp_path / "crd.yaml"
    if content is not None:
        crd.write_text(content or yaml.safe_dump(widget_crd()))
    argv = arguments(crd, tmp_path / "out")
    if flag is not None:
        argv[argv.index(flag) + 1] = str(value)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
