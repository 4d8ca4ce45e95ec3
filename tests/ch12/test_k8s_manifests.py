"""Chapter 12's Kubernetes manifests, checked without a cluster.

Chapter 12, "Horizontal scaling" and "Auto-scaling for inference".
Every built-in kind passes kubernetes-validate's strict schemas (an
unknown field is an error) for one Kubernetes version; the RayService
and the ScaledObject pass, under check-jsonschema, JSON Schemas written
for this project from KubeRay's and KEDA's API references (a subset of
each resource, strict: an unknown or misspelt field is refused), and
Ray Serve's own schema takes the RayService's Serve config. Then
the manifests must agree with the code (`manifest_agreement.py`): the
ports, paths, variables and drain bounds of chapter 6's service, the
metrics it exports, the Serve application's contract. Every validator
and every check is also shown to fail on a broken copy.
"""

from __future__ import annotations

import importlib
import json
import re
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.ch12.manifest_agreement import (
    K8S,
    REPO,
    Manifest,
    adapter_problems,
    broken,
    deployment_problems,
    gpus,
    groups,
    hpa_problems,
    ingress_problems,
    keda_problems,
    load,
    matches,
    only_container,
    pipeline_service,
    pod_spec,
    rayservice_problems,
    rejected,
    serve_config,
    serve_config_problems,
    service_problems,
)
from tests.test_compose import compose, default_ports

KUBERNETES = "1.33"  # the oldest release the manifests must run on
SCHEMAS = K8S / "schemas"
# The custom resources, and the hand-written schema of each.
CUSTOM = {"rayservice.yaml": "rayservice-ray.io-v1.json",
          "keda-scaledobject.yaml": "scaledobject-keda.sh-v1alpha1.json"}


def plain_resources() -> list[str]:
    resources: list[str] = load("kustomization.yaml")["resources"]
    return resources


def validate(manifest: Manifest) -> str:
    version: str = kubernetes_validate.validate(manifest, KUBERNETES,
                                                strict=True)
    return version


def ray_version() -> str:
    """The ray the image installs: constraints.txt's pin."""
    pins: list[str] = re.findall(r"^ray==(\S+)$", (
        REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert len(pins) == 1
    return pins[0]


def test_the_kustomization_lists_every_plain_manifest_once() -> None:
    kustomization = load("kustomization.yaml")
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = plain_resources()
    assert len(listed) == len(set(listed))
    on_disk = {path.name for path in K8S.glob("*.yaml")}
    assert set(listed) | set(CUSTOM) | {"kustomization.yaml"} == on_disk
    assert not set(listed) & set(CUSTOM)


@pytest.mark.parametrize("name", plain_resources())
def test_each_plain_manifest_passes_strict_validation(name: str) -> None:
    assert validate(load(name)) == KUBERNETES


def put(node: Any, path: str, value: Any) -> None:
    """`value` at a dotted path (numbers index lists)."""
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value


def set_at(manifest: Manifest, path: str, value: Any) -> Manifest:
    """A broken copy, with `value` at a dotted path."""
    copy = broken(manifest)
    put(copy, path, value)
    return copy


CONTAINER = "spec.template.spec.containers.0"
BROKEN_BUILT_INS = [
    ("deployment.yaml", f"{CONTAINER}.readynessProbe", {}),
    ("deployment.yaml", f"{CONTAINER}.ports.0.containerPort", "8006"),
    ("deployment.yaml", f"{CONTAINER}.lifecycle.preStop.sleep.seconds",
     "ten"),
    ("service.yaml", "spec.ports.0.port", "http"),
    ("hpa.yaml", "spec.behavior.scaleDown.stabilisationWindowSeconds",
     600),
    ("pdb.yaml", "spec.maxUnavailables", 1),
    ("ingress.yaml", "spec.rules.0.http.paths.0.pathType", 1),
]


@pytest.mark.parametrize(("name", "path", "value"), BROKEN_BUILT_INS)
def test_strict_validation_rejects_unknown_fields_and_wrong_types(
        name: str, path: str, value: Any) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(set_at(load(name), path, value))


def test_the_built_in_schemas_know_no_custom_kind() -> None:
    for name in CUSTOM:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            validate(load(name))


def pod_template(template: Manifest) -> Manifest:
    """A Ray group's pod template, as a v1 PodTemplate to validate."""
    return {"apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": "ray-group"}, "template": template}


def test_the_ray_pod_templates_pass_strict_validation() -> None:
    templates = [group["template"] for group in groups(load(
        "rayservice.yaml"))]
    assert len(templates) >= 2  # the head, and at least one worker group
    for template in templates:
        assert validate(pod_template(template)) == KUBERNETES
    wrong = set_at(templates[-1], "spec.containers.0.gpus", 1)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod_template(wrong))


# -- the custom resources, against our schemas ------------------------------

def schema_file(schema: str) -> Path:
    path = SCHEMAS / schema
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    return path


@pytest.mark.parametrize(("name", "schema"), CUSTOM.items())
def test_each_custom_resource_passes_its_schema(name: str,
                                                schema: str) -> None:
    assert rejected(schema_file(schema), K8S / name) == set()


def rejected_copies(name: str, copies: list[Manifest],
                    folder: Path) -> list[int]:
    """Which copies of a custom resource, numbered from 1, its schema
    rejects. Number 0, the manifest unchanged, goes with them: a schema
    that refused it would refuse every copy for nothing."""
    paths = []
    for number, copy in enumerate([load(name), *copies]):
        path = folder / f"copy-{number}.yaml"
        path.write_text(yaml.safe_dump(copy))
        paths.append(str(path))
    refused = rejected(schema_file(CUSTOM[name]), *map(Path, paths))
    return sorted(paths.index(path) for path in refused)


BROKEN_CUSTOM = {
    "rayservice.yaml": [
        ("spec.rayClusterConfig.enableInTreeAutoscaling", "yes"),
        ("spec.rayClusterConfig.workerGroupSpecs.0.maxReplica", 8),
        ("spec.rayClusterConfig.workerGroupSpecs.0.minReplicas", -1),
        ("spec.rayClusterConfig.autoscalerOptions.upscalingMode", "Fast"),
        ("spec.rayClusterConfig.headGroupSpec.rayStartParams.num-gpus", 0),
        ("spec.serveConfig", "{}"),
        ("apiVersion", "ray.io/v1alpha2"),
    ],
    "keda-scaledobject.yaml": [
        ("spec.pollingInterval", "fast"),
        ("spec.pollingInterval", 0),
        ("spec.triggers.0.treshold", "40"),
        ("spec.triggers.0.metadata.threshold", 40),
        ("spec.triggers.0.metricType", "Average"),
        ("spec.fallback.replica", 4),
        ("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown"
         ".selectPolicy", "Least"),
        ("kind", "ScaledJob"),
    ],
}


@pytest.mark.parametrize("name", BROKEN_CUSTOM)
def test_the_schemas_reject_unknown_fields_and_wrong_types(
        name: str, tmp_path: Path) -> None:
    copies = [set_at(load(name), path, value)
              for path, value in BROKEN_CUSTOM[name]]
    assert rejected_copies(name, copies, tmp_path) == list(
        range(1, len(copies) + 1))


def renamed(manifest: Manifest, path: str, name: str) -> Manifest:
    """A broken copy, with the field at a dotted path given `name`."""
    copy = broken(manifest)
    *parents, last = path.split(".")
    node: Any = copy
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[name] = node.pop(last)
    return copy


MISSPELT = {
    "rayservice.yaml": [
        ("spec.serveConfigV2", "serveConfigv2"),
        ("spec.rayClusterConfig.workerGroupSpecs.0.maxReplicas",
         "maxReplica"),
        ("spec.rayClusterConfig.autoscalerOptions.idleTimeoutSeconds",
         "idleTimeoutSecond"),
    ],
    "keda-scaledobject.yaml": [
        ("spec.maxReplicaCount", "maxReplicaCont"),
        ("spec.triggers.0.metricType", "metrictype"),
        ("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown",
         "scaledown"),
    ],
}


@pytest.mark.parametrize("name", MISSPELT)
def test_the_schemas_refuse_a_misspelt_field(name: str,
                                             tmp_path: Path) -> None:
    copies = [renamed(load(name), path, wrong)
              for path, wrong in MISSPELT[name]]
    assert rejected_copies(name, copies, tmp_path) == list(
        range(1, len(copies) + 1))


def loose_objects(node: Any, where: str = "") -> list[str]:
    """Where a schema lists properties yet takes fields it does not."""
    if isinstance(node, list):
        return [found for number, item in enumerate(node)
                for found in loose_objects(item, f"{where}/{number}")]
    if not isinstance(node, dict):
        return []
    loose = ([where or "/"] if "properties" in node
             and node.get("additionalProperties") is not False else [])
    for key, value in node.items():
        if key != "properties":
            loose += loose_objects(value, f"{where}/{key}")
            continue
        for field, schema in value.items():  # field names, not keywords
            loose += loose_objects(schema, f"{where}/properties/{field}")
    return loose


@pytest.mark.parametrize(("name", "schema"), CUSTOM.items())
def test_each_schema_is_strict_and_says_what_it_was_written_from(
        name: str, schema: str) -> None:
    document = json.loads(schema_file(schema).read_text())
    jsonschema.validators.validator_for(document).check_schema(document)
    assert loose_objects(document) == []
    manifest = load(name)
    top = document["properties"]
    assert top["apiVersion"]["const"] == manifest["apiVersion"]
    assert top["kind"]["const"] == manifest["kind"]
    comment = document["$comment"]
    for fact in (manifest["apiVersion"], manifest["kind"], "https://"):
        assert fact in comment, (schema, fact)
    assert re.search(r"\b\d{4}-\d{2}-\d{2}\b", comment), schema


def test_the_schema_folder_holds_our_schemas_only() -> None:
    assert {path.name for path in SCHEMAS.iterdir()} == set(
        CUSTOM.values())


# -- Ray Serve's config ------------------------------------------------------

def test_ray_serve_takes_the_serve_config() -> None:
    assert serve_config_problems(serve_config(load("rayservice.yaml"))) == []


@pytest.mark.parametrize(("path", "value"), [
    ("http_options.prot", 8012),
    ("http_options.port", "eighty-twelve"),
    ("applications.0.deployments.0.graceful_shutdown_timeout", 120.0),
])
def test_the_serve_config_check_fails_on_a_broken_copy(
        path: str, value: Any) -> None:
    config = serve_config(load("rayservice.yaml"))
    assert serve_config_problems(set_at(config, path, value))


# -- chapter 6's service: ports, paths, variables, draining -----------------

def test_the_deployment_agrees_with_chapter_6s_service() -> None:
    deployment = load("deployment.yaml")
    assert deployment_problems(deployment) == []
    assert service_problems(load("service.yaml"), deployment) == []
    container = only_container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gpus(container) == (1, 1)


def with_variable(name: str, value: str) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        only_container(deployment)["env"].append(
            {"name": name, "value": value})
    return change


def with_field(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        put(only_container(deployment), path, value)
    return change


def with_flag(*words: str) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        only_container(deployment)["command"].extend(words)
    return change


def with_grace(seconds: int) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        pod_spec(deployment)["terminationGracePeriodSeconds"] = seconds
    return change


BROKEN_DEPLOYMENTS = [
    ("a port it lacks", with_field("ports.0.containerPort", 8007), "8007"),
    ("a path it lacks", with_field("readinessProbe.httpGet.path",
                                   "/ready"), "/ready"),
    ("a probe on the gRPC port", with_field("livenessProbe.httpGet.port",
                                            "grpc"), "port grpc"),
    ("a variable it never reads", with_variable("CH06_WARP", "9"),
     "CH06_WARP"),
    ("chapter 4's port, which chapter 6's overrides",
     with_variable("CH04_PORT", "9000"), "CH04_PORT"),
    ("a flag it refuses", with_flag("--no-such-flag"), "refuses"),
    ("a value it refuses", with_variable("CH06_MAX_QUEUE", "many"),
     "refuses"),
    ("a grace period shorter than the drain", with_grace(20),
     "terminationGracePeriodSeconds"),
]


@pytest.mark.parametrize(("change", "expected"),
                         [(c, e) for _, c, e in BROKEN_DEPLOYMENTS],
                         ids=[why for why, _, _ in BROKEN_DEPLOYMENTS])
def test_the_deployment_check_fails_on_a_broken_copy(
        change: Callable[[Manifest], None], expected: str) -> None:
    deployment = broken(load("deployment.yaml"))
    change(deployment)
    problems = deployment_problems(deployment)
    assert any(expected in problem for problem in problems), problems


def test_the_service_check_fails_on_a_broken_copy() -> None:
    deployment = load("deployment.yaml")
    no_port = set_at(load("service.yaml"), "spec.ports.0.targetPort",
                     "websocket")
    assert service_problems(no_port, deployment)
    no_pods = set_at(load("service.yaml"), "spec.selector",
                     {"app.kubernetes.io/name": "speech"})
    assert service_problems(no_pods, deployment)


def test_the_image_is_the_stacks_image() -> None:
    image = compose()["services"]["ch06"]["image"]
    containers = [only_container(load("deployment.yaml"))] + [
        group["template"]["spec"]["containers"][0]
        for group in groups(load("rayservice.yaml"))]
    assert {container["image"] for container in containers} == {image}


def test_the_budget_covers_the_deployments_pods() -> None:
    pdb, deployment = load("pdb.yaml"), load("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert not matches({"app.kubernetes.io/name": "other"}, labels)


def test_the_ingress_brings_streams_with_long_timeouts() -> None:
    ingress, service = load("ingress.yaml"), load("service.yaml")
    pipeline = pipeline_service(load("deployment.yaml"))
    assert ingress_problems(ingress, service, pipeline) == []
    assert ingress_problems(set_at(
        ingress, "spec.rules.0.http.paths.0.path", "/metrics"),
        service, pipeline)
    assert ingress_problems(set_at(
        ingress, "metadata.annotations", {}), service, pipeline)


# -- autoscaling: the adapter's metric, the HPA, KEDA -----------------------

def test_the_hpa_scales_on_the_adapters_metric_with_hysteresis() -> None:
    deployment = load("deployment.yaml")
    pipeline = pipeline_service(deployment)
    served, problems = adapter_problems(load("prometheus-adapter.yaml"),
                                        pipeline.exported)
    assert problems == []
    assert served
    hpa = load("hpa.yaml")
    assert hpa_problems(hpa, deployment, served) == []
    # The autoscaler acts before a pod refuses streams.
    target = hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]
    assert float(target) < pipeline.settings.max_streams


def test_the_adapter_check_fails_on_a_broken_rule() -> None:
    adapter = load("prometheus-adapter.yaml")
    exported = pipeline_service(load("deployment.yaml")).exported
    text = adapter["data"]["config.yaml"]
    for before, after in [("speech_active_streams{", "speech_open_streams{"),
                          (" by (<<.GroupBy>>)", ""),
                          ('pod: {resource: "pod"}', "")]:
        assert before in text
        changed = broken(adapter)
        changed["data"]["config.yaml"] = text.replace(before, after)
        assert adapter_problems(changed, exported)[1], after


def test_the_hpa_check_fails_on_utilisation_or_no_hysteresis() -> None:
    deployment, hpa = load("deployment.yaml"), load("hpa.yaml")
    served, _ = adapter_problems(
        load("prometheus-adapter.yaml"),
        pipeline_service(deployment).exported)
    cpu = broken(hpa)
    cpu["spec"]["metrics"].append({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization",
                                  "averageUtilization": 70}}})
    flapping = set_at(
        hpa, "spec.behavior.scaleDown.stabilizationWindowSeconds", 0)
    renamed = set_at(hpa, "spec.metrics.0.pods.metric.name", "streams")
    for wrong in (cpu, flapping, renamed):
        assert hpa_problems(wrong, deployment, served)


def keda_check(scaled: Manifest) -> list[str]:
    deployment = load("deployment.yaml")
    exported = pipeline_service(deployment).exported
    served, _ = adapter_problems(load("prometheus-adapter.yaml"), exported)
    return keda_problems(scaled, load("hpa.yaml"), deployment, served,
                         exported)


def test_keda_scales_on_the_hpas_signal_and_bounds() -> None:
    assert keda_check(load("keda-scaledobject.yaml")) == []


@pytest.mark.parametrize(("path", "value"), [
    ("spec.triggers.0.metadata.query", "sum(speech_open_streams)"),
    ("spec.triggers.0.metadata.query", "sum(pipeline_queue_depth)"),
    ("spec.triggers.0.metadata.threshold", "80"),
    ("spec.maxReplicaCount", 100),
    ("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown"
     ".stabilizationWindowSeconds", 0),
])
def test_the_keda_check_fails_on_a_broken_copy(path: str,
                                               value: Any) -> None:
    assert keda_check(set_at(load("keda-scaledobject.yaml"), path, value))


# -- Ray Serve on KubeRay ----------------------------------------------------

def test_the_rayservice_agrees_with_the_serve_apps_contract() -> None:
    assert rayservice_problems(load("rayservice.yaml"), None,
                               ray_version()) == []


WORKER = "spec.rayClusterConfig.workerGroupSpecs.0"
WORKER_CONTAINER = f"{WORKER}.template.spec.containers.0"


@pytest.mark.parametrize(("path", "value"), [
    ("spec.rayClusterConfig.rayVersion", "2.9.0"),
    ("spec.rayClusterConfig.enableInTreeAutoscaling", False),
    (f"{WORKER}.maxReplicas", 2),
    (f"{WORKER_CONTAINER}.ports.0.containerPort", 8000),
    (f"{WORKER_CONTAINER}.resources", {}),
    (f"{WORKER}.template.spec.terminationGracePeriodSeconds", 60),
])
def test_the_rayservice_check_fails_on_a_broken_copy(path: str,
                                                     value: Any) -> None:
    wrong = set_at(load("rayservice.yaml"), path, value)
    assert rayservice_problems(wrong, None, ray_version())


def needs(module: str) -> None:
    if find_spec(module) is None:
        pytest.skip(f"{module} is not written yet; the manifest names it")


def test_replicas_may_drain_as_long_as_a_preemption_notice_allows() -> None:
    needs("ch12_scaling.preemption")
    drain_s = importlib.import_module("ch12_scaling.preemption").MAX_DRAIN_S
    rayservice = load("rayservice.yaml")
    assert rayservice_problems(rayservice, drain_s, ray_version()) == []
    path = "applications.0.deployments.0.graceful_shutdown_timeout_s"
    config = set_at(serve_config(rayservice), path, drain_s / 2)
    short = set_at(rayservice, "spec.serveConfigV2", yaml.safe_dump(config))
    assert rayservice_problems(short, drain_s, ray_version())


def test_the_serve_config_names_the_app_and_deployments_the_code_has(
) -> None:
    needs("ch12_scaling.serve_app")
    (app,) = serve_config(load("rayservice.yaml"))["applications"]
    module, _, builder = app["import_path"].partition(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray's pydantic deprecations
        build = getattr(importlib.import_module(module), builder)
        from ray.serve._private.build_app import build_app
        # Serve matches a config's deployment options to these names.
        built = build_app(build(app["args"]), name=app["name"])
    names = {deployment.name for deployment in built.deployments}
    for deployment in app.get("deployments", []):
        assert deployment["name"] in names, names


def test_the_serve_port_is_the_serve_commands_default() -> None:
    needs("ch12_scaling.serve_command")
    config = serve_config(load("rayservice.yaml"))
    command = ("python", "-m", "ch12_scaling", "serve")
    assert default_ports(command) == {config["http_options"]["port"]}
