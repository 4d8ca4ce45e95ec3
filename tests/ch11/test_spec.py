"""Reading SLO specs: every bad spec is refused, naming the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import yaml

from ch11_slo.invalid import InvalidField
from ch11_slo.spec import EventsSli, RawSli, SpecOptions
from ch11_slo.spec_files import parse_spec
from tests.ch11.promtool import STREAMING_SPEC

Spec = dict[str, Any]
ERRORS = "sum(rate(errors_total[{{.window}}]))"
TOTAL = "sum(rate(requests_total[{{.window}}]))"


def base_spec() -> Spec:
    return {
        "version": "prometheus/v1",
        "service": "asr",
        "labels": {"team": "speech"},
        "slos": [{
            "name": "availability",
            "objective": 99.9,
            "sli": {"events": {"error_query": ERRORS, "total_query": TOTAL}},
            "alerting": {
                "name": "AsrAvailabilityBurn",
                "page_alert": {"labels": {"severity": "page"}},
                "ticket_alert": {"labels": {"severity": "ticket"}},
            },
        }],
    }


def changed(change: Callable[[Spec], object]) -> str:
    spec = copy.deepcopy(base_spec())
    change(spec)
    return yaml.safe_dump(spec)


def slo(spec: Spec) -> Spec:
    first: Spec = spec["slos"][0]
    return first


def test_the_streaming_spec_reads_with_its_defaults() -> None:
    spec = parse_spec(STREAMING_SPEC.read_text(encoding="utf-8"))
    assert spec.period == 30 * 86_400 and spec.scrape_interval == 60
    assert [s.objective for s in spec.slos] == [
        Fraction("0.999"), Fraction("0.99"), Fraction("0.95")]
    assert spec.warnings == []


def test_extension_fields_set_period_scrape_and_minimum_rate() -> None:
    def extend(spec: Spec) -> None:
        spec.update(period="28d", scrape_interval="30s")
        slo(spec)["min_request_rate"] = 0.5
    spec = parse_spec(changed(extend))
    assert spec.period == 28 * 86_400 and spec.scrape_interval == 30
    assert spec.slos[0].min_request_rate == Fraction(1, 2)
    assert spec.warnings == [
        "slo 'availability': ticket tier (10% in 3d): factor"
        " 0.933333333333333 is below 1 over 28d, so it alerts on a burn"
        " that would not spend the budget within the period; lengthen its"
        " window or raise its share"]
    # 10% in 1d is 2.8x over 28 days: no warning.


def parent(spec: Spec, path: str) -> tuple[Any, Any]:
    """The container of the field at dotted `path` (slos.0.name), and
    its key there."""
    node: Any = spec
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def set_in(path: str, value: object) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        node, key = parent(spec, path)
        node[key] = value
    return change


def remove(path: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        node, key = parent(spec, path)
        del node[key]
    return change


BAD_SPECS = {
    "objective over 100": (
        set_in("slos.0.objective", 100.5), "slos[0].objective"),
    "objective of 0": (set_in("slos.0.objective", 0), "slos[0].objective"),
    "negative objective": (
        set_in("slos.0.objective", -5), "slos[0].objective"),
    "objective as text": (
        set_in("slos.0.objective", "high"), "slos[0].objective"),
    "unknown period syntax": (set_in("period", "30 days"), "period"),
    "period as a number": (set_in("period", 30), "period"),
    "windows longer than the period": (set_in("period", "1d"), "period"),
    "scrape too slow for 5m": (
        set_in("scrape_interval", "3m"), "scrape_interval"),
    "wrong version": (set_in("version", "prometheus/v2"), "version"),
    "missing version": (remove("version"), "version"),
    "missing service": (remove("service"), "service"),
    "service with spaces": (set_in("service", "my asr"), "service"),
    "missing slos": (remove("slos"), "slos"),
    "empty slos": (set_in("slos", []), "slos"),
    "slos not a list": (set_in("slos", {"a": 1}), "slos"),
    "slo not a mapping": (set_in("slos.0", "availability"), "slos[0]"),
    "missing name": (remove("slos.0.name"), "slos[0].name"),
    "missing objective": (remove("slos.0.objective"), "slos[0].objective"),
    "missing sli": (remove("slos.0.sli"), "slos[0].sli"),
    "neither events nor raw": (set_in("slos.0.sli", {}), "slos[0].sli"),
    "both events and raw": (
        set_in("slos.0.sli.raw", {"error_ratio_query": ERRORS}),
        "slos[0].sli"),
    "raw query without window": (
        set_in("slos.0.sli", {"raw": {"error_ratio_query": "x"}}),
        "slos[0].sli.raw.error_ratio_query"),
    "a plugin SLI": (
        set_in("slos.0.sli", {"plugin": {"id": "sloth-common/availability"}}),
        "slos[0].sli.plugin"),
    "an SLO plugin chain": (
        set_in("slos.0.plugins", {"chain": [{"id": "x"}]}),
        "slos[0].plugins"),
    "a service plugin chain": (
        set_in("slo_plugins", {"chain": [{"id": "x"}]}), "slo_plugins"),
    "the same error and total query": (
        set_in("slos.0.sli.events.error_query", TOTAL),
        "slos[0].sli.events"),
    "minimum rate with a raw SLI": (
        lambda spec: slo(spec).update(
            sli={"raw": {"error_ratio_query": ERRORS}}, min_request_rate=1),
        "slos[0].min_request_rate"),
    "missing error query": (
        remove("slos.0.sli.events.error_query"),
        "slos[0].sli.events.error_query"),
    "missing total query": (
        remove("slos.0.sli.events.total_query"),
        "slos[0].sli.events.total_query"),
    "error query without window": (
        set_in("slos.0.sli.events.error_query", "sum(errors_total)"),
        "slos[0].sli.events.error_query"),
    "total query without window": (
        set_in("slos.0.sli.events.total_query",
               "sum(rate(requests_total[5m]))"),
        "slos[0].sli.events.total_query"),
    "query not a string": (
        set_in("slos.0.sli.events.total_query", ["x"]),
        "slos[0].sli.events.total_query"),
    "missing alert name": (
        remove("slos.0.alerting.name"), "slos[0].alerting.name"),
    "alert name with spaces": (
        set_in("slos.0.alerting.name", "ASR burn"),
        "slos[0].alerting.name"),
    "disable not a boolean": (
        set_in("slos.0.alerting.page_alert.disable", "yes please"),
        "slos[0].alerting.page_alert.disable"),
    "label value a list": (set_in("labels.tier", [1]), "labels.tier"),
    "label value null": (set_in("labels.tier", None), "labels.tier"),
    "label name not a label name": (
        set_in("labels.team-name", "x"), "labels.team-name"),
    "reserved label name": (
        set_in("slos.0.alerting.labels", {"sloth_severity": "x"}),
        "slos[0].alerting.labels.sloth_severity"),
    "minimum rate as text": (
        set_in("slos.0.min_request_rate", "lots"),
        "slos[0].min_request_rate"),
    "negative minimum rate": (
        set_in("slos.0.min_request_rate", -1), "slos[0].min_request_rate"),
    "repeated slo name": (
        lambda spec: spec["slos"].append(copy.deepcopy(slo(spec))),
        "slos[1].name"),
}


@pytest.mark.parametrize(("change", "field"), BAD_SPECS.values(),
                         ids=BAD_SPECS.keys())
def test_a_bad_spec_is_refused_naming_the_field(
    change: Callable[[Spec], object], field: str,
) -> None:
    with pytest.raises(InvalidField) as refused:
        parse_spec(changed(change))
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("text", "problem"), [
    ("version: [unclosed", "not valid YAML"),
    ("just some words", "expected a mapping of fields, found str"),
    ("", "is empty: no YAML document in it"),
    ("---\n---\n", "is empty: no YAML document in it"),
    ("- version: prometheus/v1", "expected a mapping of fields, found list"),
])
def test_text_that_is_not_a_spec_is_refused(text: str, problem: str) -> None:
    with pytest.raises(InvalidField, match=problem) as refused:
        parse_spec(text)
    assert refused.value.field == "spec"


def test_both_alerts_disabled_need_no_alert_name() -> None:
    def quiet(spec: Spec) -> None:
        slo(spec)["alerting"] = {"page_alert": {"disable": True},
                                 "ticket_alert": {"disable": True}}
    (parsed,) = parse_spec(changed(quiet)).slos
    assert not parsed.page.enabled and not parsed.ticket.enabled


STRICT = SpecOptions(strict=True)
UNKNOWN_FIELDS = {
    "misspelt field": (
        set_in("slos.0.sli.events.eror_query", ERRORS),
        "slos[0].sli.events.eror_query"),
    "unknown top-level field": (set_in("serivce", "asr"), "serivce"),
    "unknown alert field": (
        set_in("slos.0.alerting.page_alret", {}),
        "slos[0].alerting.page_alret"),
}


@pytest.mark.parametrize(("change", "field"), UNKNOWN_FIELDS.values(),
                         ids=UNKNOWN_FIELDS.keys())
def test_unknown_fields_are_warnings_and_strict_mode_refuses_them(
    change: Callable[[Spec], object], field: str,
) -> None:
    # Sloth ignores them silently; this says which, or refuses.
    spec = parse_spec(changed(change))
    (warning,) = spec.warnings
    assert warning.startswith(f"{field}: unknown field, ignored")
    with pytest.raises(InvalidField) as refused:
        parse_spec(changed(change), STRICT)
    assert refused.value.field == field


def test_unquoted_label_values_become_strings_as_in_sloth() -> None:
    def unquoted(spec: Spec) -> None:
        spec["labels"].update(tier=2, canary=True, weight=0.5)
        slo(spec)["alerting"]["page_alert"]["labels"]["level"] = 1
    parsed = parse_spec(changed(unquoted))
    assert dict(parsed.labels) == {"team": "speech", "tier": "2",
                                   "canary": "true", "weight": "0.5"}
    assert parsed.slos[0].page.labels["level"] == "1"


def test_objectives_sloth_accepts_are_read_with_warnings() -> None:
    full = parse_spec(changed(set_in("slos.0.objective", 100)))
    assert full.slos[0].objective == 1
    assert any("leaves no error budget" in w for w in full.warnings)
    # At 90% the 14.4x page tier can never fire: it is left out.
    low = parse_spec(changed(set_in("slos.0.objective", 90)))
    assert [r.factor for r in low.slos[0].burn_rates.rates] == [6, 3, 1]
    assert any("left out" in w for w in low.warnings)


def test_alerting_may_be_absent_when_no_alert_is_wanted() -> None:
    # Sloth reads a missing alerting block as alerts with no name, which
    # it refuses; with both disabled, none is needed.
    with pytest.raises(InvalidField) as refused:
        parse_spec(changed(remove("slos.0.alerting")))
    assert refused.value.field == "slos[0].alerting.name"


def test_a_raw_sli_is_read() -> None:
    query = "1 - avg_over_time(up[{{.window}}])"
    (parsed,) = parse_spec(changed(set_in(
        "slos.0.sli", {"raw": {"error_ratio_query": query}}))).slos
    assert parsed.sli == RawSli(query)
    (events,) = parse_spec(changed(lambda spec: None)).slos
    assert events.sli == EventsSli(ERRORS, TOTAL)
