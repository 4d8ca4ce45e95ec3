"""What chapter 12's Kubernetes manifests must agree with in the code.

Each check takes manifests (as parsed YAML) and returns the problems it
finds, so a test can show both that the committed manifests have none
and that a broken copy has some. Chapter 6's service is built, from the
very command line and environment its Deployment gives it, by its own
composition root (with the model left out): what it listens on, the
paths it answers, its drain bounds and the metrics it exports come from
that object, not from reading the source. `rejected` runs
check-jsonschema, the validator of the custom resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ch04_streaming.auth import KEYS_VARIABLE, ApiKeys, load_api_keys
from ch04_streaming.server import SpeechServer
from ch06_pipeline.app import Pipeline, build_pipeline
from ch06_pipeline.settings import PipelineSettings, parse_pipeline_settings
from tests.test_compose import metric_names

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SECRET_VALUE = "a-key-from-the-secret"  # stands for a secretKeyRef
Manifest = dict[str, Any]


def load(name: str) -> Manifest:
    """The one resource a manifest file holds."""
    documents = [d for d in yaml.safe_load_all((K8S / name).read_text())
                 if d]
    assert len(documents) == 1, name
    document: Manifest = documents[0]
    return document


def broken(manifest: Manifest) -> Manifest:
    """A copy to break in a test, leaving the original alone."""
    return copy.deepcopy(manifest)


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: Manifest) -> Manifest:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    container: Manifest = containers[0]
    return container


def environment(container: Manifest) -> dict[str, str]:
    """The container's variables; one from a Secret gets a stand-in."""
    return {variable["name"]: variable.get("value", SECRET_VALUE)
            for variable in container.get("env", [])}


def rejected(schema: Path, *instances: Path) -> set[str]:
    """The instance files check-jsonschema rejects."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--output-format",
         "json", "--schemafile", str(schema), *map(str, instances)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    return {error["filename"] for error in
            report["errors"] + report.get("parse_errors", [])}


# -- chapter 6's service, as its Deployment runs it -------------------------

@dataclass(frozen=True)
class Service:
    settings: PipelineSettings
    server: SpeechServer
    exported: frozenset[str]  # series names, as Prometheus scrapes them

    def answers(self, path: str) -> bool:
        """A stream's path, or a plain GET that is not a 404."""
        return (path in self.server.dialects
                or self.server.plain_http(path).status_code != 404)


def settings_of(argv: tuple[str, ...], env: Mapping[str, str]
                ) -> PipelineSettings:
    """The settings. A flag the parser refuses raises SystemExit, and a
    variable's value that is not of its setting's type ValueError: the
    service itself would stop either way."""
    with contextlib.redirect_stderr(io.StringIO()):
        return parse_pipeline_settings(list(argv), dict(env))


@cache
def service_of(argv: tuple[str, ...],
               env: tuple[tuple[str, str], ...]) -> Service:
    settings = settings_of(argv, {**dict(env), "CH04_RECOGNIZER": "null"})

    async def build() -> Pipeline:  # its gRPC server wants a loop
        return build_pipeline(settings, keys=ApiKeys.of(SECRET_VALUE))

    pipeline = asyncio.run(build())
    exported: set[str] = set()
    suffixes = {"counter": ("_total",), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("_sum", "_count")}
    for family in pipeline.speech.metrics.registry.collect():
        exported.update(family.name + suffix
                        for suffix in suffixes[family.type])
    return Service(settings, pipeline.speech, frozenset(exported))


def command_of(container: Manifest) -> tuple[str, ...]:
    command: list[str] = container["command"] + container.get("args", [])
    return tuple(command)


def pipeline_service(deployment: Manifest) -> Service:
    """Chapter 6's service, built as the Deployment's container runs it."""
    container = only_container(deployment)
    command = command_of(container)
    assert command[:3] == ("python", "-m", "ch06_pipeline"), command
    return service_of(command[3:],
                      tuple(sorted(environment(container).items())))


def without_env(settings: PipelineSettings) -> PipelineSettings:
    """Settings compared by what they set, not the mapping read."""
    return replace(settings, env={},
                   speech=replace(settings.speech, env={}))


def variables_without_effect(container: Manifest) -> list[str]:
    """Variables the service ignores, or that set only its default:
    removing each one must change what the service does."""
    command, env = command_of(container), environment(container)
    problems = []
    for name in env:
        rest = {k: v for k, v in env.items() if k != name}
        if name == KEYS_VARIABLE:  # set, no development key is made
            effect = (load_api_keys(env)[1] is None
                      and load_api_keys(rest)[1] is not None)
        else:
            effect = (without_env(settings_of(command[3:], env))
                      != without_env(settings_of(command[3:], rest)))
        if not effect:
            problems.append(f"{name}: the service does not read it, or"
                            " it sets the default")
    return problems


def named_ports(container: Manifest) -> dict[str, int]:
    return {port["name"]: port["containerPort"]
            for port in container.get("ports", [])}


def probe_problems(container: Manifest, service: Service) -> list[str]:
    problems = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container.get(kind, {}).get("httpGet")
        if get is None:
            continue
        port = get["port"]
        if isinstance(port, str):
            port = named_ports(container).get(port)
        if port != service.settings.port:
            problems.append(f"{kind}: port {get['port']} is not the"
                            " service's HTTP port")
        if not service.answers(get["path"]):
            problems.append(f"{kind}: the service does not serve"
                            f" {get['path']}")
    return problems


def pre_stop_seconds(container: Manifest) -> int:
    seconds: int = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    return seconds


def deployment_problems(deployment: Manifest) -> list[str]:
    """Chapter 6's Deployment against chapter 6's service."""
    container = only_container(deployment)
    try:
        service = pipeline_service(deployment)
    except (SystemExit, ValueError):
        return [f"the service refuses its command line or environment:"
                f" {command_of(container)}"]
    problems = variables_without_effect(container)
    listening = {service.settings.port, service.settings.grpc_port}
    for name, number in named_ports(container).items():
        if number not in listening:
            problems.append(f"port {name} {number}: the service listens"
                            f" on {sorted(listening)}")
    problems += probe_problems(container, service)
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            problems.append(f"no {probe}")
    annotations = deployment["spec"]["template"]["metadata"].get(
        "annotations", {})
    if annotations.get("prometheus.io/port") != str(service.settings.port):
        problems.append("prometheus.io/port is not the metrics port")
    if not service.answers(annotations.get("prometheus.io/path", "")):
        problems.append("prometheus.io/path is not served")
    limits = service.server.limits
    longest_drain = (pre_stop_seconds(container) + limits.shutdown_grace_s
                     + limits.close_timeout_s)
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    if not grace > longest_drain:
        problems.append(f"terminationGracePeriodSeconds {grace} is not"
                        f" above the longest drain, {longest_drain:g} s")
    return problems


def matches(selector: Mapping[str, str], labels: Mapping[str, str]
            ) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def service_problems(service: Manifest, deployment: Manifest) -> list[str]:
    container = only_container(deployment)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    problems = []
    if not matches(service["spec"]["selector"], labels):
        problems.append("the Service selects no pod of the Deployment")
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        if target not in named_ports(container) and (
                target not in named_ports(container).values()):
            problems.append(f"targetPort {target}: no such container port")
    return problems


# -- autoscaling: the adapter, the HPA and KEDA -----------------------------

def adapter_rules(configmap: Manifest) -> list[Manifest]:
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    rules: list[Manifest] = config["rules"]
    return rules


def rendered(rule: Manifest, series: str) -> str:
    """The rule's metricsQuery as the adapter fills it in."""
    query: str = rule["metricsQuery"]
    return (query.replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="speech",pod="p"')
            .replace("<<.GroupBy>>", "pod"))


def go_replacement(template: str) -> str:
    """Go's `$1` / `${1}` in a replacement, as Python's `\\g<1>`."""
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", template)


def adapter_problems(configmap: Manifest, exported: frozenset[str]
                     ) -> tuple[dict[str, str], list[str]]:
    """The custom metrics the rules serve (name: series they read),
    and what is wrong with the rules."""
    served: dict[str, str] = {}
    problems = []
    keys = {"seriesQuery", "seriesFilters", "resources", "name",
            "metricsQuery"}
    for rule in adapter_rules(configmap):
        if not set(rule) <= keys or "metricsQuery" not in rule:
            problems.append(f"a rule's keys: {sorted(rule)}")
            continue
        series = metric_names(rule["seriesQuery"])
        for name in series - exported:
            problems.append(f"seriesQuery reads {name}, which the"
                            " service does not export")
        overrides = rule["resources"].get("overrides", {})
        if {"namespace", "pod"} - {
                label for label, to in overrides.items()
                if to.get("resource") == label}:
            problems.append("the rule maps no namespace and pod labels")
        for marker in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            if marker not in rule["metricsQuery"]:
                problems.append(f"metricsQuery lacks {marker}")
        for name in series:
            if metric_names(rendered(rule, name)) != {name}:
                problems.append(f"metricsQuery reads more than {name}")
            output = re.sub(rule["name"]["matches"],
                            go_replacement(rule["name"].get("as", "")),
                            name)
            served[output] = name
    return served, problems


def hpa_problems(hpa: Manifest, deployment: Manifest,
                 served: Mapping[str, str]) -> list[str]:
    problems = []
    target = hpa["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"]) != (
            deployment["kind"], deployment["metadata"]["name"]):
        problems.append("the HPA scales another workload")
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] != "Pods":
            problems.append(f"a {metric['type']} metric: scale on streams"
                            " per pod, not utilisation")
            continue
        name = metric["pods"]["metric"]["name"]
        if name not in served:
            problems.append(f"{name}: no adapter rule serves it")
    behavior = hpa["spec"]["behavior"]
    up = behavior["scaleUp"]["stabilizationWindowSeconds"]
    down = behavior["scaleDown"]["stabilizationWindowSeconds"]
    if not down > up:
        problems.append("no hysteresis: scale-down is not slower")
    return problems


def per_pod_target(hpa: Manifest) -> float:
    metric = hpa["spec"]["metrics"][0]["pods"]
    return float(metric["target"]["averageValue"])


def keda_problems(scaled: Manifest, hpa: Manifest, deployment: Manifest,
                  served: Mapping[str, str],
                  exported: frozenset[str]) -> list[str]:
    """KEDA's ScaledObject: the HPA's signal, bounds and hysteresis."""
    problems = []
    spec, hpa_spec = scaled["spec"], hpa["spec"]
    if spec["scaleTargetRef"] != hpa_spec["scaleTargetRef"]:
        problems.append("KEDA scales another workload than the HPA")
    if (spec["minReplicaCount"], spec["maxReplicaCount"]) != (
            hpa_spec["minReplicas"], hpa_spec["maxReplicas"]):
        problems.append("KEDA's replica bounds are not the HPA's")
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    if behavior != hpa_spec["behavior"]:
        problems.append("KEDA's hysteresis is not the HPA's")
    hpa_series = {served[m["pods"]["metric"]["name"]]
                  for m in hpa_spec["metrics"]}
    namespace = deployment["metadata"]["namespace"]
    for trigger in spec["triggers"]:
        query = trigger["metadata"]["query"]
        names = metric_names(query)
        if not names or not names <= exported:
            problems.append(f"{query}: reads what the service does not"
                            " export")
        if names != hpa_series:
            problems.append(f"{query}: not the HPA's signal")
        if f'namespace="{namespace}"' not in query:
            problems.append(f"{query}: not the Deployment's namespace")
        if float(trigger["metadata"]["threshold"]) != per_pod_target(hpa):
            problems.append("KEDA's threshold is not the HPA's target")
        if trigger.get("metricType") != "AverageValue":
            problems.append("the query's total must be divided by pods")
    return problems


# -- Ray Serve on KubeRay ----------------------------------------------------

def serve_config(rayservice: Manifest) -> Manifest:
    config: Manifest = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    return config


def serve_config_problems(config: Manifest) -> list[str]:
    """Ray Serve's own schema of a config file; fields it does not know
    (which it would drop without a word) are problems too."""
    with warnings.catch_warnings():
        # Ray's models still use pydantic's deprecated spellings.
        warnings.simplefilter("ignore")
        from pydantic import ValidationError
        from ray.serve.schema import ServeDeploySchema
        try:
            parsed = ServeDeploySchema.model_validate(config)
        except ValidationError as error:
            return [str(error)]
        kept = parsed.model_dump(mode="json", exclude_unset=True)
    if kept != config:
        return [f"fields Ray Serve ignores: {config} became {kept}"]
    return []


def groups(rayservice: Manifest) -> list[Manifest]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    found: list[Manifest] = [cluster["headGroupSpec"],
                             *cluster["workerGroupSpecs"]]
    return found


def gpus(container: Manifest) -> tuple[int, int]:
    resources = container.get("resources", {})
    return (int(resources.get("requests", {}).get("nvidia.com/gpu", 0)),
            int(resources.get("limits", {}).get("nvidia.com/gpu", 0)))


def rayservice_problems(rayservice: Manifest, drain_s: float | None,
                        ray_version: str) -> list[str]:
    """The RayService against the Serve app's contract; `drain_s` is the
    replicas' drain bound, when the code that sets it is there."""
    problems = serve_config_problems(serve_config(rayservice))
    config = serve_config(rayservice)
    port = config["http_options"]["port"]
    (app,) = config["applications"]
    args = app["args"]
    cluster = rayservice["spec"]["rayClusterConfig"]
    if cluster["rayVersion"] != ray_version:
        problems.append(f"rayVersion {cluster['rayVersion']}: the image"
                        f" installs ray {ray_version}")
    if cluster.get("enableInTreeAutoscaling") is not True:
        problems.append("the Ray autoscaler is off")
    for group in groups(rayservice):
        container = group["template"]["spec"]["containers"][0]
        if named_ports(container).get("serve") != port:
            problems.append(f"{container['name']}: its `serve` port is not"
                            f" Serve's HTTP port {port}")
    workers = cluster["workerGroupSpecs"]
    gpu_workers = [w for w in workers if gpus(
        w["template"]["spec"]["containers"][0]) == (1, 1)]
    if not gpu_workers:
        problems.append("no worker group with one GPU requested and"
                        " limited")
    room = sum(w["maxReplicas"] for w in gpu_workers)
    if not args["min_replicas"] <= args["max_replicas"] <= room:
        problems.append(f"max_replicas {args['max_replicas']} does not fit"
                        f" {room} GPU workers")
    for deployment in app.get("deployments", []):
        timeout = deployment.get("graceful_shutdown_timeout_s")
        if timeout is None:
            problems.append(f"{deployment['name']}: no drain bound")
            continue
        if drain_s is not None and timeout < drain_s:
            problems.append(f"graceful_shutdown_timeout_s {timeout} cuts"
                            f" the {drain_s:g} s drain short")
        for worker in gpu_workers:
            grace = worker["template"]["spec"].get(
                "terminationGracePeriodSeconds", 30)
            if not grace > timeout + deployment.get(
                    "graceful_shutdown_wait_loop_s", 2.0):
                problems.append(f"{worker['groupName']}: its grace period"
                                f" {grace} s ends before the drain")
    return problems


# -- the way in ---------------------------------------------------------------

NGINX = "nginx.ingress.kubernetes.io/"
NGINX_DEFAULT_TIMEOUT_S = 60  # ingress-nginx's proxy read and send timeouts


def ingress_problems(ingress: Manifest, service: Manifest,
                     pipeline: Service) -> list[str]:
    """Stream paths only, to the Service's ports, through a proxy that
    lets a quiet stream live longer than the server's idle timeout."""
    problems = []
    ports = {port["name"] for port in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            if path["path"] not in pipeline.server.dialects:
                problems.append(f"{path['path']}: not a stream the service"
                                " serves")
            backend = path["backend"]["service"]
            if backend["name"] != service["metadata"]["name"]:
                problems.append(f"{path['path']}: to another Service")
            if backend["port"].get("name") not in ports:
                problems.append(f"{path['path']}: to no port of the"
                                " Service")
    annotations = ingress["metadata"].get("annotations", {})
    idle_s = pipeline.settings.speech.idle_timeout_s
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        seconds = float(annotations.get(NGINX + timeout, 0))
        if not seconds > max(NGINX_DEFAULT_TIMEOUT_S, idle_s):
            problems.append(f"{timeout}: {seconds:g} s cuts quiet streams")
    return problems
