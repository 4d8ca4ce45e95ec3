"""One error budget spent by unavailable and by inaccurate utterances."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ch11_slo.__main__ import main
from ch11_slo.accuracy_budget import (
    Outage,
    Regression,
    Spend,
    accuracy_budget_report,
    availability_objective,
    conclusion,
    minute_shares,
    month_spends,
    records_spend,
    utterance_wer,
    verdict,
)
from ch11_slo.records import Outcome, UtteranceRecord, write_records
from tests.ch11.commands import exit_status, readme_block
from tests.ch11.promtool import REPO_ROOT

TEN_WORDS = "one two three four five six seven eight nine ten"


def utterance(index: int, outcome: Outcome, reference: str,
              hypothesis: str) -> UtteranceRecord:
    finished = outcome == "ok"
    return UtteranceRecord(
        stream_id="s1", utterance_index=index, outcome=outcome,
        audio_seconds=3.0, first_result_seconds=0.2,
        final_latency_seconds=0.5 if finished else None,
        processing_seconds=1.5 if finished else None,
        reference=reference, hypothesis=hypothesis)


# good; inaccurate (2 of 5 words wrong); unavailable with no words at
# all, so inaccurate too; unavailable, though every word arrived
FOUR = [
    utterance(0, "ok", "one two three four five", "one two three four five"),
    utterance(1, "ok", "one two three four five", "one too three for five"),
    utterance(2, "no_final", "six seven eight", ""),
    utterance(3, "dropped", "nine ten", "nine ten"),
]


def test_an_utterance_unavailable_and_inaccurate_is_bad_once() -> None:
    assert [verdict(u, max_wer=0.10) for u in FOUR] == [
        (False, False), (False, True), (True, True), (True, False)]
    spend = records_spend("run", FOUR, max_wer=0.10)
    assert (spend.utterances, spend.unavailable, spend.inaccurate,
            spend.both) == (4, 2, 2, 1)
    assert spend.bad == 3  # not 4: utterance 2 counts once
    # 3 bad of 4 is 75%; a 95% objective allows 5%: 15 budgets
    assert spend.spent(0.95) == pytest.approx(15.0)


def test_a_wer_at_the_limit_is_within_it() -> None:
    one_wrong = TEN_WORDS.replace("four", "for")
    two_wrong = one_wrong.replace("eight", "ate")
    assert utterance_wer(utterance(0, "ok", TEN_WORDS, one_wrong)) == 0.1
    spend = records_spend("run", [
        utterance(0, "ok", TEN_WORDS, one_wrong),
        utterance(1, "ok", TEN_WORDS, two_wrong),
        utterance(2, "ok", "Book a table, please.", "book a table please"),
    ], max_wer=0.10)
    assert (spend.inaccurate, spend.bad) == (1, 1)


def test_the_budget_by_hand() -> None:
    spend = Spend("hand", utterances=1000, unavailable=30, inaccurate=50,
                  both=10)
    assert spend.bad == 70
    # 7% bad against a 5% budget: 1.4 budgets; against 10%, 0.7
    assert spend.spent(0.95) == pytest.approx(1.4)
    assert spend.spent(0.90) == pytest.approx(0.7)


def test_each_incident_changes_its_own_share_in_its_own_minutes() -> None:
    month = np.arange(3)
    outage = Outage(start=1, minutes=1, unavailable=0.5)
    regression = Regression(start=1, minutes=2, traffic_share=0.3,
                            inaccurate=0.2)
    unavailable, inaccurate = minute_shares(month, outage, regression)
    # half of what the healthy 0.01% leaves fails: 1 - 0.9999 x 0.5
    assert unavailable.tolist() == pytest.approx([0.0001, 0.50005, 0.0001])
    # 70% of traffic at 2%, 30% at 20%: 0.014 + 0.06
    assert inaccurate.tolist() == pytest.approx([0.02, 0.074, 0.074])


def test_the_same_seed_gives_the_same_month() -> None:
    assert month_spends(3) == month_spends(3)
    assert month_spends(3) != month_spends(4)


def test_the_scenarios_differ_only_by_their_incidents() -> None:
    healthy, outage, model, together = month_spends(0)
    assert {r.utterances for r in (healthy, outage, model, together)} == {
        healthy.utterances}
    # the outage moves only who is unavailable, the regression only who
    # is inaccurate
    assert outage.inaccurate == healthy.inaccurate
    assert model.unavailable == healthy.unavailable
    assert together.unavailable == outage.unavailable
    assert together.inaccurate == model.inaccurate
    assert outage.unavailable > 100 * healthy.unavailable
    assert model.inaccurate > healthy.inaccurate


def test_the_conclusion_is_computed_from_the_rows() -> None:
    rows = [Spend("healthy month", 1000, 0, 20, 0),  # 2%: 40% spent
            Spend("outage", 1000, 20, 20, 1),  # 39 bad: 78%
            Spend("model regression", 1000, 0, 40, 0),  # 4%: 80%
            Spend("outage and regression", 1000, 20, 40, 3)]  # 57: 114%
    text = conclusion(rows, objective=0.95, availability=0.999)
    assert "alone spends 40.0% of the budget" in text
    assert "outage adds 38.0% of it and leaves 22.0%" in text
    assert "regression adds 40.0% and leaves 20.0%" in text
    # 38 + 40 - 74: the two utterances that became both
    assert "Together they add 74.0%, 4.0% less than the sum" in text
    assert "ends 14.0% over budget" in text
    # 2% unavailable against a 0.1% budget
    assert "outage spends 20.0 times that budget" in text
    assert "regression 0% of it, as much as the healthy month's 0%" in text


def test_the_availability_objective_is_the_spec_s() -> None:
    assert availability_objective() == 0.999


def test_the_command_measures_a_records_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    records = tmp_path / "run.jsonl"
    write_records(records, FOUR)
    assert main(["accuracy-budget", "--records", str(records)]) == 0
    out = capsys.readouterr().out
    assert "budget is 5% of utterances" in " ".join(out.split())
    row = next(line for line in out.splitlines()
               if line.startswith("run.jsonl"))
    # 2, 2, 1 and 3 of 4 utterances; 75% against 5%: 1500% spent
    assert row.split()[1:] == ["50.00%", "50.00%", "25.00%", "75.00%",
                               "1500.0%", "-1400.0%"]


def test_the_command_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch11_slo", "accuracy-budget", "--seed",
         "2"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    assert "30 days, seed 2:" in done.stdout
    assert "outage and regression" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 79


@pytest.mark.parametrize(("argv", "flag"), [
    (["--seed", "-1"], "--seed"),
    (["--seed", "one"], "--seed"),
    (["--tier", "gold"], "--tier"),
    (["--records", "no/such/records.jsonl"], "--records"),
])
def test_bad_flags_stop_with_status_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str],
) -> None:
    status = exit_status(["accuracy-budget", *argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert flag in err


def test_a_bad_records_line_names_the_flag_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    records = tmp_path / "bad.jsonl"
    records.write_text('{"type": "utterance", "stream_id": ""}\n')
    assert main(["accuracy-budget", "--records", str(records)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --records:") and "bad.jsonl:1:" in err


def test_the_readme_holds_the_command_s_output() -> None:
    assert readme_block("accuracy-budget") == (
        f"```text\n{accuracy_budget_report()}```\n")
