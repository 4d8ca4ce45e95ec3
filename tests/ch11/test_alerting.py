"""The committed streaming rules, driven by synthetic series in promtool.

Each test feeds a traffic pattern to `promtool test rules` and checks
the alerts against the burn-rate table: a total outage pages within the
detection time, a slow burn opens a ticket and never pages, a burn
after a busy stretch opens one through the day-long tier days before
the three-day tier would, a burn just under a threshold stays quiet,
and no traffic fires nothing.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

from ch11_slo.durations import format_duration
from ch11_slo.rules import default_annotations, ratio_name
from ch11_slo.spec_files import parse_spec
from tests.ch11.promtool import (
    STREAMING_RULES,
    STREAMING_SPEC,
    counter,
    promtool_passes,
)

SPEC = parse_spec(STREAMING_SPEC.read_text(encoding="utf-8"))
SLO = next(s for s in SPEC.slos if s.name == "stream-availability")
SLO_ID = f"{SPEC.service}-{SLO.name}"
FAST_PAGE, SLOW_PAGE, QUICK_TICKET, TICKET = SLO.burn_rates.rates
STREAMS = 'speech_streams_total{dialect="deepgram"}'
ERRORS = 'speech_streams_errors_total{dialect="deepgram",code="1011"}'
MINUTE = 60


def expanded(annotations: dict[str, str]) -> dict[str, str]:
    """Annotations as Prometheus fills in their templates."""
    labels = {"sloth_service": SPEC.service, "sloth_slo": SLO.name}
    for name, value in labels.items():
        annotations = {key: text.replace(f"{{{{$labels.{name}}}}}", value)
                       for key, text in annotations.items()}
    return annotations


def alerts_at(minutes: int, *severities: str) -> dict[str, object]:
    """An alert_rule_test: exactly these alerts fire at `minutes`."""
    return {
        "eval_time": format_duration(minutes * MINUTE),
        "alertname": SLO.alert_name,
        "exp_alerts": [
            {
                "exp_labels": {
                    **SPEC.labels, **SLO.labels,
                    "sloth_id": SLO_ID, "sloth_service": SPEC.service,
                    "sloth_slo": SLO.name, **SLO.alert_labels,
                    **(SLO.page if s == "page" else SLO.ticket).labels,
                    "sloth_severity": s,
                },
                "exp_annotations": expanded(
                    {**default_annotations(s), **SLO.alert_annotations}),
            }
            for s in severities
        ],
    }


def ratio_at(
    minutes: int, window: int, value: Fraction
) -> dict[str, object]:
    """A promql_expr_test: the recorded error ratio over `window`, to
    six decimals (rate() leaves float noise: 0.0030000000000000005)."""
    ratio = f'{ratio_name(window)}{{sloth_id="{SLO_ID}"}}'
    return {
        "expr": f"round(max({ratio}), 0.000001)",
        "eval_time": format_duration(minutes * MINUTE),
        "exp_samples": [{"labels": "{}", "value": float(value)}],
    }


def test_total_outage_pages_within_the_detection_time(
    tmp_path: Path,
) -> None:
    # Two healthy hours at 600 streams a minute, then every stream fails.
    onset = 120
    assert FAST_PAGE.detection == Fraction("51.84")  # seconds
    first_scrape_after = math.ceil(FAST_PAGE.detection / MINUTE)
    promtool_passes(tmp_path, [STREAMING_RULES], "1m", {
        "interval": "1m",
        "input_series": [
            {"series": STREAMS, "values": counter((600, onset + 10))},
            {"series": ERRORS, "values": counter((0, onset), (600, 10))},
        ],
        "alert_rule_test": [
            alerts_at(onset),
            # The ticket's 1x threshold is crossed even sooner.
            alerts_at(onset + first_scrape_after, "page", "ticket"),
        ],
    })


def test_an_error_counter_born_with_the_outage_pages_a_scrape_later(
    tmp_path: Path,
) -> None:
    # The errors series appears with its first error, as a labelled
    # counter does; rate() needs two samples, `or vector(0)` fills in.
    onset = 120
    promtool_passes(tmp_path, [STREAMING_RULES], "1m", {
        "interval": "1m",
        "input_series": [
            {"series": STREAMS, "values": counter((600, onset + 10))},
            {"series": ERRORS, "values": f"_x{onset + 1} 600+600x9"},
        ],
        "promql_expr_test": [ratio_at(onset + 1, 5 * MINUTE, Fraction(0))],
        "alert_rule_test": [
            alerts_at(onset + 1),
            alerts_at(onset + 2, "page", "ticket"),
        ],
    })


def fast_burn(errors_per_1000: int) -> dict[str, object]:
    """2 h healthy at 1,000 streams a minute, then 70 min of errors."""
    onset, burn = 120, 70
    return {
        "interval": "1m",
        "input_series": [
            {"series": STREAMS, "values": counter((1000, onset + burn))},
            {"series": ERRORS,
             "values": counter((0, onset), (errors_per_1000, burn))},
        ],
        "promql_expr_test": [
            ratio_at(onset + burn, 3_600, Fraction(errors_per_1000, 1000)),
        ],
        "alert_rule_test": [
            # Under the page threshold it is still a ticket: 1x is passed.
            alerts_at(onset + burn, "ticket",
                      *(["page"] if errors_per_1000 > 14.4 else [])),
        ],
    }


def test_a_burn_just_under_the_fast_threshold_does_not_page(
    tmp_path: Path,
) -> None:
    assert FAST_PAGE.threshold == Fraction("0.0144")
    promtool_passes(tmp_path, [STREAMING_RULES], "1m", fast_burn(14),
                    fast_burn(15))


def steady_burn(errors_per_10000: int) -> dict[str, object]:
    """7 h at 1,000 streams a minute, a steady share of them failing."""
    hours = 7
    share = Fraction(errors_per_10000, 10_000)
    return {
        "interval": "1m",
        "input_series": [
            {"series": STREAMS, "values": counter((1000, hours * 60))},
            {"series": ERRORS, "values": counter((1000 * share, hours * 60))},
        ],
        "alert_rule_test": [
            alerts_at(hours * 60, "ticket",
                      *(["page"] if share > SLOW_PAGE.threshold else [])),
        ],
    }


def test_a_burn_just_under_the_slow_page_threshold_does_not_page(
    tmp_path: Path,
) -> None:
    assert SLOW_PAGE.threshold == Fraction("0.006")  # 6x
    promtool_passes(tmp_path, [STREAMING_RULES], "1m", steady_burn(59),
                    steady_burn(61))


def test_zero_traffic_records_no_ratio_and_fires_nothing(
    tmp_path: Path,
) -> None:
    # The series exist and stay at 0: 0/0 would be NaN in every window.
    minutes = 180
    windows = sorted({w for r in SLO.burn_rates.rates
                      for w in (r.tier.short_window, r.tier.long_window)})
    promtool_passes(tmp_path, [STREAMING_RULES], "1m", {
        "interval": "1m",
        "input_series": [
            {"series": STREAMS, "values": counter((0, minutes))},
            {"series": ERRORS, "values": counter((0, minutes))},
        ],
        "promql_expr_test": [
            {"expr": ratio_name(w), "eval_time": f"{minutes}m",
             "exp_samples": []}
            for w in windows
        ],
        "alert_rule_test": [alerts_at(m) for m in (5, 60, minutes)],
    })


def test_a_slow_burn_opens_a_ticket_and_never_pages(
    tmp_path: Path,
) -> None:
    # Three clean days, then 0.2% of streams fail: a 2x burn, under the
    # day-long tier's 3x. The 3-day window crosses 1x after (0.1% /
    # 0.2%) * 3 days = 1.5 days.
    step = 5  # minutes between samples: days of data, quickly
    onset = 3 * 24 * 60 // step
    burn = Fraction(2, 1000)
    ticket_after = TICKET.detection / burn / (step * MINUTE)
    assert ticket_after == 432  # samples: a day and a half
    end = onset + int(ticket_after) + 12
    before, after = (step * (onset + int(ticket_after) + d)
                     for d in (-1, 1))
    promtool_passes(tmp_path, [STREAMING_RULES], f"{step}m", {
        "interval": f"{step}m",
        "input_series": [
            {"series": STREAMS, "values": counter((1000, end))},
            {"series": ERRORS,
             "values": counter((0, onset), (1000 * burn, end - onset))},
        ],
        # Every page window sees the burn, each under its threshold.
        "promql_expr_test": [
            ratio_at(after, window, burn)
            for window in (300, 1_800, 3_600, 21_600)
        ],
        "alert_rule_test": [
            alerts_at(before),
            alerts_at(after, "ticket"),
        ],
    })


def test_the_day_long_tier_catches_a_burn_a_busy_stretch_dilutes(
    tmp_path: Path,
) -> None:
    # Two days at 10,000 streams a minute, all clean; then 1,000 a
    # minute with 0.5% failing (5x). After t hours of the burn the 1d
    # window holds 5t errors per 1,000 streams-minutes over 1,000t +
    # 10,000 (24 - t): 0.003 (3x) is crossed when 5t = 3t + 30 (24 -
    # t), t = 22.5 h; the 3d window, diluted by both busy days, is at
    # 112.5 / 502,500 = 0.0224% then, far from its 0.1%. Neither page
    # tier fires: 0.5% is under both 1.44% and 0.6%.
    assert (QUICK_TICKET.threshold, TICKET.threshold) == (
        Fraction("0.003"), Fraction("0.001"))
    step = 5
    busy, burn = 2 * 24 * 60 // step, 24 * 60 // step
    before, after = (step * (busy + hours * 60 // step)
                     for hours in (22, 23))
    promtool_passes(tmp_path, [STREAMING_RULES], f"{step}m", {
        "interval": f"{step}m",
        "input_series": [
            {"series": STREAMS,
             "values": counter((10_000 * step, busy), (1000 * step, burn))},
            {"series": ERRORS,
             "values": counter((0, busy), (5 * step, burn))},
        ],
        "alert_rule_test": [alerts_at(before), alerts_at(after, "ticket")],
    })


def test_a_burn_just_under_the_ticket_threshold_opens_nothing(
    tmp_path: Path,
) -> None:
    step = 5
    end = 3 * 24 * 60 // step + 12  # three days and an hour
    promtool_passes(tmp_path, [STREAMING_RULES], f"{step}m", {
        "interval": f"{step}m",
        "input_series": [
            {"series": STREAMS, "values": counter((10_000, end))},
            {"series": ERRORS, "values": counter((9, end))},  # 0.9x
        ],
        "alert_rule_test": [alerts_at(step * end)],
    })
