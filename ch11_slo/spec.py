"""SLO specs in every form Sloth reads, checked before any rule is made.

Chapter 11, "Setting SLO targets". A service's SLOs live in YAML that
people review: the objective, the SLI as PromQL over `{{.window}}`, and
who is paged or ticketed. Sloth's `prometheus/v1` spec is the main
form; a file may hold several, as YAML documents. The same SLOs may
come as Sloth's Kubernetes `PrometheusServiceLevel` (camelCase fields)
or as OpenSLO `v1alpha` SLOs (`spec_files.py` reads every form). Reading
checks what a generator could turn into a silent bad rule: missing
fields, queries without a window, periods no alert tier fits in.
Unknown fields are reported, as warnings or, in strict mode, as errors.
Three fields extend Sloth's format: `period` (default 30d),
`scrape_interval` (default 1m) and, per SLO, `min_request_rate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from ch11_slo.burn_rates import (
    DEFAULT_SCRAPE_INTERVAL,
    AlertTier,
    BurnRateTable,
    burn_rate_table,
    parse_objective,
)
from ch11_slo.durations import parse_duration
from ch11_slo.invalid import InvalidField, PluginsRefused
from ch11_slo.windows import WindowCatalogue

VERSION = "prometheus/v1"
DEFAULT_PERIOD = "30d"
WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")
NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = ("__", "sloth_")
PLUGINS = "Sloth plugins are Go code, which this generator does not run"
SLI_PLUGIN = f"{PLUGINS}; write the SLI as sli.events or sli.raw"
SLO_PLUGINS = f"{PLUGINS}; remove the chain for Sloth's default rules"


@dataclass(frozen=True)
class EventsSli:
    """Errors over total events, each a query over `{{.window}}`."""

    error_query: str
    total_query: str


@dataclass(frozen=True)
class RawSli:
    """The error ratio itself, as one query over `{{.window}}`."""

    error_ratio_query: str


Sli = EventsSli | RawSli


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
    sli: Sli
    labels: Mapping[str, str]
    alert_name: str
    alert_labels: Mapping[str, str]
    alert_annotations: Mapping[str, str]
    page: AlertSpec
    ticket: AlertSpec
    min_request_rate: Fraction
    burn_rates: BurnRateTable
    windows: tuple[int, ...]  # every window of the period's tiers


@dataclass(frozen=True)
class K8sMetadata:
    """The metadata of a Kubernetes resource, passed on to the rules."""

    name: str
    namespace: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class ServiceSpec:
    service: str
    labels: Mapping[str, str]
    period: int
    scrape_interval: int
    slos: tuple[SloSpec, ...]
    form: str = VERSION  # what it was read from, as sloth_spec says
    k8s_metadata: K8sMetadata | None = None
    notes: tuple[str, ...] = ()  # fields ignored, and the like

    def slo_id(self, slo: SloSpec) -> str:
        """Sloth's id of an SLO: its service and name."""
        return f"{self.service}-{slo.name}"

    @property
    def warnings(self) -> list[str]:
        return list(self.notes) + [
            f"slo {slo.name!r}: {warning}" for slo in self.slos
            for warning in slo.burn_rates.warnings]


@dataclass(frozen=True)
class SpecOptions:
    """How to read: strictly (unknown fields are errors), the period of
    a spec that names none, and the alert windows of each period."""

    strict: bool = False
    default_period: str = DEFAULT_PERIOD
    windows: WindowCatalogue = field(default_factory=WindowCatalogue)


@dataclass(frozen=True)
class Keys:
    """Field names, which Sloth's Kubernetes resource writes in
    camelCase."""

    error_query: str = "error_query"
    total_query: str = "total_query"
    error_ratio_query: str = "error_ratio_query"
    page_alert: str = "page_alert"
    ticket_alert: str = "ticket_alert"
    service_plugins: str = "slo_plugins"


PROMETHEUS_KEYS = Keys()


class Reader:
    """Reads one document, collecting what it ignores as notes."""

    def __init__(self, options: SpecOptions) -> None:
        self.options = options
        self.notes: list[str] = []

    def only_keys(self, value: Mapping[str, object], field: str,
                  allowed: set[str]) -> None:
        unknown = sorted(str(key) for key in value if key not in allowed)
        expected = f"expected one of {', '.join(sorted(allowed))}"
        if unknown and self.options.strict:
            raise InvalidField(child(field, unknown[0]),
                               f"unknown field; {expected}")
        self.notes += [f"{child(field, key)}: unknown field, ignored"
                       f" ({expected})" for key in unknown]


def read_prometheus_spec(spec: Mapping[str, object], options: SpecOptions,
                         keys: Keys = PROMETHEUS_KEYS,
                         form: str = VERSION,
                         extensions: bool = True) -> ServiceSpec:
    """A `prometheus/v1` spec (or a resource's spec, with its `keys`)."""
    reader = Reader(options)
    allowed = {"service", "labels", "slos", keys.service_plugins}
    if extensions:
        allowed |= {"version", "period", "scrape_interval"}
    reader.only_keys(spec, "spec", allowed)
    refuse_plugins(spec.get(keys.service_plugins), keys.service_plugins)
    service = name_of(required(spec, "service", "spec"), "service")
    labels = labels_of(spec.get("labels", {}), "labels")
    period = parse_duration(spec.get("period", options.default_period),
                            "period")
    scrape = spec.get("scrape_interval", f"{DEFAULT_SCRAPE_INTERVAL}s")
    scrape_interval = parse_duration(scrape, "scrape_interval")
    slos = required(spec, "slos", "spec")
    if not isinstance(slos, list) or not slos:
        raise InvalidField("slos", "must be a non-empty list of SLOs")
    parsed = tuple(
        parse_slo(reader, slo, f"slos[{i}]", period, scrape_interval, keys,
                  extensions)
        for i, slo in enumerate(slos)
    )
    names = [slo.name for slo in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidField(f"slos[{i}].name", f"{name!r} is repeated")
    return ServiceSpec(service, labels, period, scrape_interval, parsed,
                       form, notes=tuple(reader.notes))


def parse_slo(reader: Reader, value: object, field: str, period: int,
              scrape_interval: int, keys: Keys,
              extensions: bool) -> SloSpec:
    slo = mapping(value, field)
    allowed = {"name", "objective", "description", "labels", "sli",
               "alerting", "plugins"}
    reader.only_keys(slo, field, allowed | (
        {"min_request_rate"} if extensions else set()))
    refuse_plugins(slo.get("plugins"), f"{field}.plugins")
    objective = parse_objective(required(slo, "objective", field),
                                f"{field}.objective", allow_full=True)
    sli = parse_sli(reader, required(slo, "sli", field), f"{field}.sli",
                    keys)
    alerting = mapping(slo.get("alerting", {}), f"{field}.alerting")
    reader.only_keys(alerting, f"{field}.alerting", {
        "name", "labels", "annotations", keys.page_alert,
        keys.ticket_alert})
    page = alert_of(reader, alerting.get(keys.page_alert, {}),
                    f"{field}.alerting.{keys.page_alert}")
    ticket = alert_of(reader, alerting.get(keys.ticket_alert, {}),
                      f"{field}.alerting.{keys.ticket_alert}")
    alert_name = ""
    if page.enabled or ticket.enabled:
        alert_name = name_of(
            required(alerting, "name", f"{field}.alerting"),
            f"{field}.alerting.name", LABEL_NAME,
            "an alert name (letters, digits, '_')")
    rate = rate_of(slo.get("min_request_rate", 0), f"{field}.min_request_rate")
    if rate and isinstance(sli, RawSli):
        raise InvalidField(f"{field}.min_request_rate", (
            "needs an events SLI: a raw SLI has no total to compare"))
    tiers = reader.options.windows.tiers(period, "period")
    table = burn_rate_table(objective, period, tiers, scrape_interval)
    return SloSpec(
        name=name_of(required(slo, "name", field), f"{field}.name"),
        objective=objective,
        sli=sli,
        labels=labels_of(slo.get("labels", {}), f"{field}.labels"),
        alert_name=alert_name,
        alert_labels=labels_of(alerting.get("labels", {}),
                               f"{field}.alerting.labels"),
        alert_annotations=labels_of(alerting.get("annotations", {}),
                                    f"{field}.alerting.annotations",
                                    check_names=False),
        page=page,
        ticket=ticket,
        min_request_rate=rate,
        burn_rates=table,
        windows=windows_of(tiers),
    )


def windows_of(tiers: Sequence[AlertTier]) -> tuple[int, ...]:
    """Every window the tiers read, shortest first."""
    return tuple(sorted({window for tier in tiers
                         for window in (tier.short_window,
                                        tier.long_window)}))


def parse_sli(reader: Reader, value: object, field: str, keys: Keys) -> Sli:
    sli = mapping(value, field)
    if "plugin" in sli:
        raise PluginsRefused(f"{field}.plugin", SLI_PLUGIN)
    reader.only_keys(sli, field, {"events", "raw", "plugin"})
    if ("events" in sli) == ("raw" in sli):
        raise InvalidField(field, "needs one of events or raw")
    if "raw" in sli:
        raw = mapping(sli["raw"], f"{field}.raw")
        reader.only_keys(raw, f"{field}.raw", {keys.error_ratio_query})
        key = keys.error_ratio_query
        return RawSli(query_of(required(raw, key, f"{field}.raw"),
                               f"{field}.raw.{key}"))
    events = mapping(sli["events"], f"{field}.events")
    names = (keys.error_query, keys.total_query)
    reader.only_keys(events, f"{field}.events", set(names))
    error, total = (query_of(required(events, key, f"{field}.events"),
                             f"{field}.events.{key}") for key in names)
    if error == total:
        raise InvalidField(f"{field}.events", (
            "the error and total queries are the same"))
    return EventsSli(error, total)


def refuse_plugins(value: object, field: str) -> None:
    if value:
        raise PluginsRefused(field, SLO_PLUGINS)


def alert_of(reader: Reader, value: object, field: str) -> AlertSpec:
    alert = mapping(value, field)
    reader.only_keys(alert, field, {"disable", "labels", "annotations"})
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
    """Labels (or annotations) as strings. An unquoted number or
    boolean (`tier: 2`) becomes its text, as in Sloth."""
    labels = mapping(value, field)
    for key, text in labels.items():
        if check_names and not LABEL_NAME.match(str(key)):
            raise InvalidField(f"{field}.{key}", "is not a label name")
        if check_names and str(key).startswith(RESERVED):
            raise InvalidField(f"{field}.{key}", (
                "label names starting __ or sloth_ are reserved"))
        if not isinstance(text, str | int | float):  # bool is an int
            raise InvalidField(f"{field}.{key}", (
                f"{text!r} must be a string, a number or true/false"))
    return {str(key): scalar_text(text) for key, text in labels.items()}


def scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rate_of(value: object, field: str) -> Fraction:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        rate = Fraction(-1)
    if rate < 0:
        raise InvalidField(field, (
            f"{value!r} must be a number of requests per second, >= 0"))
    return rate
