"""Spec files: YAML documents in any of the forms Sloth reads.

Chapter 11, "Setting SLO targets". One file may hold several specs as
YAML documents, each in one of three forms, told apart as Sloth tells
them: a `prometheus/v1` spec (`version`), Sloth's Kubernetes resource
`PrometheusServiceLevel` (`apiVersion: sloth.slok.dev/v1`, answered
with a `PrometheusRule`), or an OpenSLO `v1alpha` SLO, whose objectives
become SLOs of their own without alerts, as in Sloth. Every document
becomes one `ServiceSpec`, so the rules of a file are one list of rule
groups that Prometheus loads whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction

import yaml

from ch11_slo.burn_rates import DEFAULT_SCRAPE_INTERVAL, burn_rate_table
from ch11_slo.durations import parse_duration
from ch11_slo.invalid import InvalidField
from ch11_slo.spec import (
    VERSION,
    AlertSpec,
    EventsSli,
    K8sMetadata,
    Keys,
    Reader,
    ServiceSpec,
    SloSpec,
    SpecOptions,
    labels_of,
    mapping,
    name_of,
    query_of,
    read_prometheus_spec,
    required,
    windows_of,
)

CRD_VERSION = "sloth.slok.dev/v1"
CRD_KIND = "PrometheusServiceLevel"
OPENSLO_VERSION = "openslo/v1alpha"
CRD_KEYS = Keys(error_query="errorQuery", total_query="totalQuery",
                error_ratio_query="errorRatioQuery", page_alert="pageAlert",
                ticket_alert="ticketAlert", service_plugins="sloPlugins")
NO_ALERT = AlertSpec(enabled=False, labels={}, annotations={})


def parse_spec(text: str, options: SpecOptions | None = None) -> ServiceSpec:
    """The one spec in `text`; InvalidField names what is wrong."""
    specs = parse_specs(text, options)
    if len(specs) != 1:
        raise InvalidField("spec", (
            f"holds {len(specs)} specs where one was expected"))
    return specs[0]


def parse_specs(text: str,
                options: SpecOptions | None = None) -> list[ServiceSpec]:
    """Every spec in `text`, one per YAML document. Two SLOs with one id
    (service and name) are refused: their rule groups would clash."""
    options = options or SpecOptions()
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise InvalidField("spec", f"not valid YAML: {error}") from None
    if not documents:
        raise InvalidField("spec", "is empty: no YAML document in it")
    specs = []
    for number, document in enumerate(documents, start=1):
        try:
            specs.append(read_document(document, options))
        except InvalidField as error:
            if len(documents) == 1:
                raise
            raise InvalidField(f"document {number}: {error.field}",
                               error.problem) from None
    seen: set[str] = set()
    for spec in specs:
        for slo in spec.slos:
            slo_id = spec.slo_id(slo)
            if slo_id in seen:
                raise InvalidField("spec", f"SLO {slo_id!r} is defined twice")
            seen.add(slo_id)
    return specs


def read_document(document: object, options: SpecOptions) -> ServiceSpec:
    """One YAML document, in whichever form it says it is."""
    spec = mapping(document, "spec")
    version = spec.get("version")
    api_version, kind = spec.get("apiVersion"), spec.get("kind")
    if version is not None:
        if version != VERSION:
            raise InvalidField("version", (
                f"{version!r} is not {VERSION!r}"))
        return read_prometheus_spec(spec, options)
    if api_version == CRD_VERSION and kind == CRD_KIND:
        return read_service_level(spec, options)
    if api_version == OPENSLO_VERSION and kind == "SLO":
        return read_openslo(spec, options)
    if api_version is None:
        raise InvalidField("version", "missing")
    raise InvalidField("apiVersion", (
        f"{api_version!r} {kind!r} is none of {VERSION} (version),"
        f" {CRD_VERSION} {CRD_KIND} or {OPENSLO_VERSION} SLO"))


def read_service_level(resource: Mapping[str, object],
                       options: SpecOptions) -> ServiceSpec:
    """Sloth's Kubernetes resource: its spec is a prometheus/v1 spec in
    camelCase; its metadata names the PrometheusRule made from it."""
    reader = Reader(options)
    reader.only_keys(resource, "resource", {
        "apiVersion", "kind", "metadata", "spec", "status"})
    given = mapping(required(resource, "metadata", "resource"), "metadata")
    namespace = given.get("namespace")
    metadata = K8sMetadata(
        name_of(required(given, "name", "metadata"), "metadata.name"),
        namespace if isinstance(namespace, str) else None,
        *(labels_of(given.get(key) or {}, f"metadata.{key}",
                    check_names=False) for key in ("labels", "annotations")))
    spec = read_prometheus_spec(
        mapping(required(resource, "spec", "resource"), "spec"), options,
        CRD_KEYS, CRD_VERSION, extensions=False)
    return replace(spec, k8s_metadata=metadata,
                   notes=tuple(reader.notes) + spec.notes)


def read_openslo(document: Mapping[str, object],
                 options: SpecOptions) -> ServiceSpec:
    """An OpenSLO SLO: each objective is an SLO `<name>-<index>` whose
    errors are total minus good events; no alerts, as in Sloth."""
    reader = Reader(options)
    reader.only_keys(document, "spec", {"apiVersion", "kind", "metadata",
                                        "spec"})
    metadata = mapping(required(document, "metadata", "spec"), "metadata")
    reader.only_keys(metadata, "metadata", {"name", "displayName"})
    name = name_of(required(metadata, "name", "metadata"), "metadata.name")
    spec = mapping(required(document, "spec", "spec"), "spec")
    reader.only_keys(spec, "spec", {
        "description", "service", "indicator", "timeWindows",
        "budgetingMethod", "objectives"})
    service = name_of(required(spec, "service", "spec"), "spec.service")
    period = openslo_period(spec.get("timeWindows"), options)
    objectives = required(spec, "objectives", "spec")
    if not isinstance(objectives, list) or not objectives:
        raise InvalidField("spec.objectives", "must be a non-empty list")
    slos = tuple(
        openslo_objective(reader, objective, f"spec.objectives[{i}]",
                          f"{name}-{i}", period, options)
        for i, objective in enumerate(objectives))
    return ServiceSpec(service, {}, period, DEFAULT_SCRAPE_INTERVAL, slos,
                       OPENSLO_VERSION, notes=tuple(reader.notes))


def openslo_period(value: object, options: SpecOptions) -> int:
    """The one time window, in days, as Sloth supports."""
    if value is None:
        return parse_duration(options.default_period, "period")
    if not isinstance(value, list) or len(value) != 1:
        raise InvalidField("spec.timeWindows", (
            "needs exactly one time window"))
    window = mapping(value[0], "spec.timeWindows[0]")
    count = window.get("count")
    if str(window.get("unit", "")).lower() != "day" or not (
            isinstance(count, int) and count > 0):
        raise InvalidField("spec.timeWindows[0]", (
            "must be a whole number of days (unit: Day, count: 30)"))
    return count * 86_400


def openslo_objective(reader: Reader, value: object, field: str,
                      name: str, period: int,
                      options: SpecOptions) -> SloSpec:
    objective = mapping(value, field)
    reader.only_keys(objective, field, {
        "displayName", "op", "value", "target", "timeSliceTarget",
        "ratioMetrics"})
    target = required(objective, "target", field)
    try:
        ratio = Fraction(str(target))
    except (ValueError, ZeroDivisionError):
        ratio = Fraction(-1)
    if not 0 < ratio <= 1:
        raise InvalidField(f"{field}.target", (
            f"{target!r} must be a ratio above 0 and at most 1"))
    metrics = mapping(required(objective, "ratioMetrics", field),
                      f"{field}.ratioMetrics")
    reader.only_keys(metrics, f"{field}.ratioMetrics", {
        "good", "total", "incremental"})
    good, total = (openslo_query(reader, required(
        metrics, key, f"{field}.ratioMetrics"), f"{field}.ratioMetrics.{key}")
        for key in ("good", "total"))
    tiers = options.windows.tiers(period, "spec.timeWindows")
    return SloSpec(
        name=name, objective=ratio,
        sli=EventsSli(f"({total})\n-\n({good})", total),
        labels={}, alert_name="", alert_labels={}, alert_annotations={},
        page=NO_ALERT, ticket=NO_ALERT, min_request_rate=Fraction(0),
        burn_rates=burn_rate_table(ratio, period, tiers),
        windows=windows_of(tiers))


def openslo_query(reader: Reader, value: object, field: str) -> str:
    query = mapping(value, field)
    reader.only_keys(query, field, {"source", "queryType", "query",
                                    "metadata"})
    if query.get("source") not in ("prometheus", "sloth") or query.get(
            "queryType") != "promql":
        raise InvalidField(field, (
            "needs source: prometheus and queryType: promql"))
    return query_of(required(query, "query", field), f"{field}.query")

