"""One error budget that model accuracy and availability both spend.

Chapter 11, "Error budgets for ML systems: how model accuracy interacts
with infrastructure reliability". A listener cannot tell a transcript
that never arrived from one too garbled to use, so the SLO counts both:
an utterance is bad if it was unavailable (no final: dropped, errored,
never finalised) or if its WER exceeds the tier's `max_wer`, and bad
once when it is both. The objective is the tier's `min_goodput`, so
the budget is the share of utterances allowed to be bad. WER needs the
reference text, which the service never has: the SLI is measured from
per-utterance records, never from a metric. A seeded synthetic month
(the scenario's diurnal traffic) shows what spends it: the current
model's own inaccurate tail, an outage that takes half the streams for
a day, a new model version whose utterances on a 30% slice of traffic
are often inaccurate, and the outage during the regression.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from numpy.typing import NDArray

from ch11_slo.evaluation import DAY
from ch11_slo.invalid import InvalidField
from ch11_slo.records import InvalidRecord, UtteranceRecord, read_records
from ch11_slo.scenario import BASELINE_ERROR_RATIO, PERIOD_DAYS, clock
from ch11_slo.scenario import diurnal_rate as scenario_rate
from ch11_slo.sli import WORDS
from ch11_slo.spec_files import parse_spec
from ch11_slo.targets import TierTargets, tier_targets

STREAMING_SPEC = Path(__file__).with_name("specs") / "streaming.yaml"
AVAILABILITY_SLO = "stream-availability"
# The current model: the share of its utterances over the tier's max
# WER, as measured offline on an evaluation set.
HEALTHY_INACCURATE = 0.02
HEALTHY_UNAVAILABLE = BASELINE_ERROR_RATIO


def utterance_wer(u: UtteranceRecord) -> float:
    """WER of the words that arrived, final or not."""
    return float(jiwer.process_words(
        u.reference, u.hypothesis, reference_transform=WORDS,
        hypothesis_transform=WORDS).wer)


# --8<-- [start:accuracy_in_the_budget]
def verdict(u: UtteranceRecord, max_wer: float) -> tuple[bool, bool]:
    """Unavailable, inaccurate: either makes the utterance bad."""
    return u.outcome != "ok", utterance_wer(u) > max_wer


@dataclass(frozen=True)
class Spend:
    """Bad utterances of a period, counted once even when both
    unavailable and inaccurate, against the budget they spend."""

    name: str
    utterances: int
    unavailable: int  # no final
    inaccurate: int  # WER over the tier's max_wer
    both: int

    @property
    def bad(self) -> int:
        return self.unavailable + self.inaccurate - self.both

    def spent(self, objective: float) -> float:
        """The share of the budget: 1.0 spends all of it."""
        return self.bad / self.utterances / (1 - objective)
# --8<-- [end:accuracy_in_the_budget]


def records_spend(name: str, utterances: Sequence[UtteranceRecord],
                  max_wer: float) -> Spend:
    """The budget's counts over utterance records."""
    if not utterances:
        raise InvalidField("records", "holds no utterance records")
    verdicts = [verdict(u, max_wer) for u in utterances]
    return Spend(name, len(utterances),
                 unavailable=sum(down for down, _ in verdicts),
                 inaccurate=sum(wrong for _, wrong in verdicts),
                 both=sum(down and wrong for down, wrong in verdicts))


@dataclass(frozen=True)
class Outage:
    """A share of streams fails for a while: an infrastructure fault."""

    start: int  # minute of the month
    minutes: int
    unavailable: float

    def describe(self) -> str:
        return (f"outage: {self.unavailable:.0%} of streams fail for"
                f" {self.minutes // 60} h from {clock(self.start)}")


@dataclass(frozen=True)
class Regression:
    """A new model version serves a slice of traffic, and more of its
    utterances than the current model's exceed the max WER."""

    start: int
    minutes: int
    traffic_share: float
    inaccurate: float

    def describe(self) -> str:
        return (f"model regression: a new version on"
                f" {self.traffic_share:.0%} of traffic for"
                f" {self.minutes // DAY} days from {clock(self.start)},"
                f" {self.inaccurate:.0%} of its utterances over the max"
                " WER")


OUTAGE = Outage(start=15 * DAY, minutes=DAY, unavailable=0.5)
REGRESSION = Regression(start=12 * DAY, minutes=11 * DAY,
                        traffic_share=0.3, inaccurate=0.2)
SCENARIOS = (("healthy month", False, False), ("outage", True, False),
             ("model regression", False, True),
             ("outage and regression", True, True))
Shares = NDArray[np.float64]
Minutes = NDArray[np.int64]


def during(start: int, minutes: int, month: Minutes) -> NDArray[np.bool_]:
    return (month >= start) & (month < start + minutes)


def minute_shares(month: Minutes, outage: Outage | None,
                  regression: Regression | None) -> tuple[Shares, Shares]:
    """Each minute's chance that an utterance is unavailable, and that
    it is inaccurate."""
    unavailable = np.full(month.size, HEALTHY_UNAVAILABLE)
    inaccurate = np.full(month.size, HEALTHY_INACCURATE)
    if outage is not None:
        down = during(outage.start, outage.minutes, month)
        unavailable[down] = 1 - ((1 - HEALTHY_UNAVAILABLE)
                                 * (1 - outage.unavailable))
    if regression is not None:
        new = during(regression.start, regression.minutes, month)
        share = regression.traffic_share
        inaccurate[new] = ((1 - share) * HEALTHY_INACCURATE
                           + share * regression.inaccurate)
    return unavailable, inaccurate


def synthetic_month(seed: int, name: str, down: bool, regressed: bool,
                    outage: Outage = OUTAGE,
                    regression: Regression = REGRESSION) -> Spend:
    """A month of minutes of diurnal traffic: in each minute, how many
    utterances were unavailable, how many inaccurate, and how many of
    the unavailable were also inaccurate (the causes are independent).

    Each stretch of the month (neither incident's window, the outage's,
    the regression's, both) draws each count from a generator of its
    own, whether or not its incidents happen (`down`, `regressed`). So
    for one seed every scenario has the same traffic; the outage changes
    only who is unavailable, the regression only who is inaccurate; and
    rows differ only where the incidents differ."""
    if seed < 0:
        raise InvalidField("seed", f"{seed} is negative (use 0 or more)")
    traffic, *seeds = np.random.SeedSequence(seed).spawn(13)
    month = np.arange(PERIOD_DAYS * DAY)
    total = np.random.default_rng(traffic).poisson(scenario_rate(month))
    u, a = minute_shares(month, outage if down else None,
                         regression if regressed else None)
    stretch = (during(outage.start, outage.minutes, month).astype(int)
               + 2 * during(regression.start, regression.minutes, month))
    counts = np.zeros((3, month.size), dtype=np.int64)
    for key in range(4):
        mine = stretch == key
        fails, misses, overlap = (np.random.default_rng(s)
                                  for s in seeds[3 * key:3 * key + 3])
        counts[0, mine] = fails.binomial(total[mine], u[mine])
        counts[1, mine] = misses.binomial(total[mine], a[mine])
        counts[2, mine] = overlap.hypergeometric(
            counts[1, mine], total[mine] - counts[1, mine], counts[0, mine])
    unavailable, inaccurate, both = counts.sum(axis=1)
    return Spend(name, int(total.sum()), int(unavailable), int(inaccurate),
                 int(both))


def month_spends(seed: int) -> list[Spend]:
    """The healthy month, each incident alone, and both."""
    return [synthetic_month(seed, name, down, regressed)
            for name, down, regressed in SCENARIOS]


def availability_objective(spec: Path = STREAMING_SPEC) -> float:
    """The stream-availability objective of the service's SLO spec."""
    slos = parse_spec(spec.read_text(encoding="utf-8")).slos
    return next(float(s.objective) for s in slos
                if s.name == AVAILABILITY_SLO)


HEADER = ("scenario", "unavailable", "inaccurate", "both", "bad",
          "spent", "left")
LEGEND = ("unavailable, inaccurate, both, bad: shares of utterances."
          " spent, left: shares of the budget.")


def cells(row: Spend, objective: float) -> tuple[str, ...]:
    spent = row.spent(objective)
    return (row.name, *(f"{n / row.utterances:.2%}" for n in (
        row.unavailable, row.inaccurate, row.both, row.bad)),
        f"{spent:.1%}", f"{1 - spent:.1%}")


def format_table(rows: Sequence[Spend], objective: float) -> str:
    """Shares of utterances, and of the budget; within 79 columns."""
    table = [HEADER] + [cells(row, objective) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width
            in zip(row[1:], widths[1:], strict=True)]).rstrip()
        for row in table) + "\n" + textwrap.fill(LEGEND, 72) + "\n"


def leaves(spent: float) -> str:
    if spent <= 1:
        return f"{1 - spent:.1%}"
    return f"nothing ({spent - 1:.1%} over)"


def conclusion(rows: Sequence[Spend], objective: float,
               availability: float) -> str:
    """What the four rows of `month_spends` say, computed from them."""
    healthy, outage, model, together = (r.spent(objective) for r in rows)
    added = together - healthy
    fewer = (outage - healthy) + (model - healthy) - added
    ending = (f"with {1 - together:.1%} of it left" if together <= 1
              else f"{together - 1:.1%} over budget")
    down = [r.unavailable / r.utterances / (1 - availability)
            for r in rows]
    same = ("as much as" if rows[2].unavailable == rows[0].unavailable
            else "against")
    return (
        f"The current model's inaccurate tail alone spends {healthy:.1%}"
        f" of the budget. The outage adds {outage - healthy:.1%} of it and"
        f" leaves {leaves(outage)}; the regression adds"
        f" {model - healthy:.1%} and leaves {leaves(model)}. Together they"
        f" add {added:.1%}, {fewer:.1%} less than the sum, as an"
        " utterance both unavailable and inaccurate is bad once, and the"
        f" month ends {ending}. Judged by the {availability:.1%}"
        f" availability SLO alone, the outage spends {down[1]:.1f} times"
        f" that budget and the regression {down[2]:.0%} of it, {same} the"
        f" healthy month's {down[0]:.0%}: only a budget that counts"
        " accuracy sees the regression.")


def describe(targets: TierTargets) -> str:
    objective = targets.min_goodput
    return (f"Tier {targets.name}: an utterance is bad if it got no final"
            f" or its WER is over {targets.max_wer:.0%}; the objective is"
            f" {objective:.0%} good (the tier's min_goodput), so the"
            f" budget is {1 - objective:.0%} of utterances.")


def month_report(seed: int, targets: TierTargets) -> str:
    """The four scenarios of a synthetic month, and what they say."""
    rows = month_spends(seed)
    setting = [
        f"{PERIOD_DAYS} days, seed {seed}: {rows[0].utterances:,}"
        " utterances, the scenario's traffic",
        f"current model: {HEALTHY_INACCURATE:.0%} of utterances over the"
        f" max WER, {HEALTHY_UNAVAILABLE:.2%} unavailable",
        OUTAGE.describe(), REGRESSION.describe()]
    summary = conclusion(rows, targets.min_goodput,
                         availability_objective())
    return "\n".join([
        textwrap.fill(describe(targets), 72),
        *(textwrap.fill(line, 72, initial_indent="  ",
                        subsequent_indent="    ") for line in setting),
        "", format_table(rows, targets.min_goodput),
        textwrap.fill(summary, 72),
    ]) + "\n"


def records_report(path: Path, targets: TierTargets) -> str:
    """The budget a records file spent: the SLI as it is measured."""
    try:
        records = read_records(path)
    except OSError as error:
        raise InvalidField("records", f"cannot read {path}:"
                           f" {error.strerror}") from None
    except InvalidRecord as error:
        raise InvalidField("records", str(error)) from None
    utterances = [r for r in records if isinstance(r, UtteranceRecord)]
    row = records_spend(path.name, utterances, targets.max_wer)
    return "\n".join([textwrap.fill(describe(targets), 72), "",
                      format_table([row], targets.min_goodput)])


def accuracy_budget_report(seed: int = 0, tier: str = "voice-ai",
                           records: Path | None = None) -> str:
    """What `python -m ch11_slo accuracy-budget` prints."""
    targets = tier_targets(tier)
    if records is not None:
        return records_report(records, targets)
    return month_report(seed, targets)
