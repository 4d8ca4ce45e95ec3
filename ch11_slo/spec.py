"""SLO specs in Sloth's `prometheus/v1` format, read strictly.

Chapter 11, "Setting SLO targets". A service's SLOs live in one YAML
file that people review: the objective, the SLI as two PromQL queries
(errors and total, over `{{.window}}`), and who is paged or ticketed.
Reading it checks everything a generator could otherwise turn into a
silent bad rule: missing or unknown fields, objectives of 100%, queries
without a window, periods no alert tier fits in. Two fields extend
Sloth's format: `period` (default 30d) and `scrape_interval` (default
1m), and each SLO may set `min_request_rate`, the requests per second
below which its ratios are not judged (default 0: any traffic).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import yaml

from ch11_slo.burn_rates import (
    DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_TIERS,
    BurnRateTable,
    burn_rate_table,
    parse_objective,
)
from ch11_slo.durations import parse_duration
from ch11_slo.invalid import InvalidField

VERSION = "prometheus/v1"
DEFAULT_PERIOD = "30d"
WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")
NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = ("__", "sloth_")


@dataclass(frozen=True)
class AlertSpec:
    """The page or the ticket alert of one SLO."""

    enabled: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class SloSpec:
    name: str
    objective: Fraction  # a ratio: 0.999 for 99.9%
    error_query: str
    total_query: str
    labels: Mapping[str, str]
    alert_name: str
    alert_labels: Mapping[str, str]
    alert_annotations: Mapping[str, str]
    page: AlertSpec
    ticket: AlertSpec
    min_request_rate: Fraction
    burn_rates: BurnRateTable


@dataclass(frozen=True)
class ServiceSpec:
    service: str
    labels: Mapping[str, str]
    period: int
    scrape_interval: int
    slos: tuple[SloSpec, ...]

    @property
    def warnings(self) -> list[str]:
        return [f"slo {slo.name!r}: {warning}" for slo in self.slos
                for warning in slo.burn_rates.warnings]


def parse_spec(text: str) -> ServiceSpec:
    """A checked spec from YAML text; InvalidField names what is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidField("spec", f"not valid YAML: {error}") from None
    spec = mapping(document, "spec")
    only_keys(spec, "spec", {"version", "service", "labels", "slos",
                             "period", "scrape_interval"})
    version = required(spec, "version", "spec")
    if version != VERSION:
        raise InvalidField("version", f"{version!r} is not {VERSION!r}")
    service = name_of(required(spec, "service", "spec"), "service")
    labels = labels_of(spec.get("labels", {}), "labels")
    period = parse_duration(spec.get("period", DEFAULT_PERIOD), "period")
    scrape = spec.get("scrape_interval", f"{DEFAULT_SCRAPE_INTERVAL}s")
    scrape_interval = parse_duration(scrape, "scrape_interval")
    slos = required(spec, "slos", "spec")
    if not isinstance(slos, list) or not slos:
        raise InvalidField("slos", "must be a non-empty list of SLOs")
    parsed = tuple(
        parse_slo(slo, f"slos[{i}]", period, scrape_interval)
        for i, slo in enumerate(slos)
    )
    names = [slo.name for slo in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidField(f"slos[{i}].name", f"{name!r} is repeated")
    return ServiceSpec(service, labels, period, scrape_interval, parsed)


def parse_slo(
    value: object, field: str, period: int, scrape_interval: int
) -> SloSpec:
    slo = mapping(value, field)
    only_keys(slo, field, {"name", "objective", "description", "labels",
                           "sli", "alerting", "min_request_rate"})
    objective = parse_objective(required(slo, "objective", field),
                                f"{field}.objective")
    sli = mapping(required(slo, "sli", field), f"{field}.sli")
    if "events" not in sli:
        raise InvalidField(f"{field}.sli.events", (
            "missing: this generator reads SLIs as error_query and"
            " total_query under sli.events (raw and plugin SLIs are not"
            " supported)"))
    only_keys(sli, f"{field}.sli", {"events"})
    events = mapping(sli["events"], f"{field}.sli.events")
    only_keys(events, f"{field}.sli.events", {"error_query", "total_query"})
    queries = {
        key: query_of(required(events, key, f"{field}.sli.events"),
                      f"{field}.sli.events.{key}")
        for key in ("error_query", "total_query")
    }
    alerting = mapping(required(slo, "alerting", field), f"{field}.alerting")
    only_keys(alerting, f"{field}.alerting", {
        "name", "labels", "annotations", "page_alert", "ticket_alert"})
    page = alert_of(alerting.get("page_alert", {}),
                    f"{field}.alerting.page_alert")
    ticket = alert_of(alerting.get("ticket_alert", {}),
                      f"{field}.alerting.ticket_alert")
    alert_name = ""
    if page.enabled or ticket.enabled:
        alert_name = name_of(
            required(alerting, "name", f"{field}.alerting"),
            f"{field}.alerting.name", LABEL_NAME,
            "an alert name (letters, digits, '_')")
    return SloSpec(
        name=name_of(required(slo, "name", field), f"{field}.name"),
        objective=objective,
        error_query=queries["error_query"],
        total_query=queries["total_query"],
        labels=labels_of(slo.get("labels", {}), f"{field}.labels"),
        alert_name=alert_name,
        alert_labels=labels_of(alerting.get("labels", {}),
                               f"{field}.alerting.labels"),
        alert_annotations=labels_of(alerting.get("annotations", {}),
                                    f"{field}.alerting.annotations",
                                    check_names=False),
        page=page,
        ticket=ticket,
        min_request_rate=rate_of(slo.get("min_request_rate", 0),
                                 f"{field}.min_request_rate"),
        burn_rates=burn_rate_table(objective, period, DEFAULT_TIERS,
                                   scrape_interval, f"{field}.objective"),
    )


def alert_of(value: object, field: str) -> AlertSpec:
    alert = mapping(value, field)
    only_keys(alert, field, {"disable", "labels", "annotations"})
    disable = alert.get("disable", False)
    if not isinstance(disable, bool):
        raise InvalidField(f"{field}.disable", "must be true or false")
    return AlertSpec(
        enabled=not disable,
        labels=labels_of(alert.get("labels", {}), f"{field}.labels"),
        annotations=labels_of(alert.get("annotations", {}),
                              f"{field}.annotations", check_names=False),
    )


def mapping(value: object, field: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidField(field, (
            f"expected a mapping of fields, found {type(value).__name__}"))
    return value


def only_keys(value: Mapping[str, object], field: str,
              allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise InvalidField(child(field, unknown[0]), (
            f"unknown field; expected one of {', '.join(sorted(allowed))}"))


def required(value: Mapping[str, object], key: str, field: str) -> object:
    if value.get(key) is None:
        raise InvalidField(child(field, key), "missing")
    return value[key]


def child(field: str, key: str) -> str:
    """The name of field `key` inside `field`: top-level fields of the
    spec go by their own names."""
    return key if field == "spec" else f"{field}.{key}"


def name_of(
    value: object,
    field: str,
    pattern: re.Pattern[str] = NAME,
    kind: str = "a name (letters, digits, '-', '_', '.')",
) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidField(field, f"{value!r} is not {kind}")
    return value


def query_of(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a PromQL query")
    if not WINDOW.search(value):
        raise InvalidField(field, (
            "has no {{.window}}: the generator puts each alert window"
            " there, as in rate(x_total[{{.window}}])"))
    return value.strip()


def labels_of(value: object, field: str,
              check_names: bool = True) -> dict[str, str]:
    labels = mapping(value, field)
    for key, text in labels.items():
        if check_names and not LABEL_NAME.match(str(key)):
            raise InvalidField(f"{field}.{key}", "is not a label name")
        if check_names and str(key).startswith(RESERVED):
            raise InvalidField(f"{field}.{key}", (
                "label names starting __ or sloth_ are reserved"))
        if not isinstance(text, str):
            raise InvalidField(f"{field}.{key}", (
                f"{text!r} must be a string (quote it)"))
    return {str(key): str(text) for key, text in labels.items()}


def rate_of(value: object, field: str) -> Fraction:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        rate = Fraction(-1)
    if rate < 0:
        raise InvalidField(field, (
            f"{value!r} must be a number of requests per second, >= 0"))
    return rate
