"""The delivery worker against a Stripe-compatible server: exact totals."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ch08_metering.__main__ import main
from ch08_metering.delivery import due_rows, remember_meters
from ch08_metering.ledger import Ledger
from ch08_metering.rollup import roll_up
from ch08_metering.schema import (
    stripe_dead_letters,
    stripe_meters,
)
from ch08_metering.stripe_sink import (
    DryRunSink,
    StripeSettings,
    StripeSink,
    StripeStreamSink,
    meter_event_params,
)
from tests.ch08.delivery_harness import (
    ACCOUNTS,
    KEY,
    NOON,
    FakeClock,
    calls,
    expected_totals,
    outbox_size,
    settings,
    some_usage,
    undelivered,
    v1_sink,
    worker_for,
)
from tests.ch08.stripe_server import (
    EVENTS_PATH,
    METERS_PATH,
    SESSION_PATH,
    STREAM_PATH,
    RunningStripeServer,
    StripeState,
    running_stripe_server,
)

# The `ledger` fixture on SQLite alone (conftest's `database_url` param)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"],
                                      indirect=True)


def test_every_settled_minute_reaches_stripe_once_with_exact_totals(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON), now_ms=int(NOON * 1000))
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    rows = outbox_size(ledger.engine)
    assert server.state.totals() == expected_totals(ledger)
    assert (counts.rolled_up, counts.delivered, counts.retried) == (
        18, rows, 0)
    assert undelivered(ledger.engine) == 0
    assert sorted(m.event_name for m in server.state.meters) == [
        "speech_audio_ms", "speech_audio_ms_diarization",
        "speech_characters"]
    with ledger.engine.connect() as connection:
        remembered = {r.event_name: r.meter_id
                      for r in connection.execute(select(stripe_meters))}
    assert remembered == {m.event_name: m.id for m in server.state.meters}

    restarted = worker_for(ledger.engine, v1_sink(server.url), clock)
    again = restarted.run_once()
    restarted.sink.close()
    assert (again.rolled_up, again.delivered) == (0, 0)
    assert calls(server.state, EVENTS_PATH) == [200] * rows
    assert calls(server.state, METERS_PATH) == [200] * 4  # list, 3 creates


@sqlite_only
def test_an_identifier_stripe_already_has_counts_as_delivered(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """Sent before a crash, under another idempotency key: Stripe says
    400 duplicate, and the worker moves on instead of stalling."""
    engine = ledger.engine
    ledger.ingest(some_usage(NOON), now_ms=int(NOON * 1000))
    roll_up(engine, ACCOUNTS, int(NOON * 1000), settle_s=0)
    earlier = StripeSink(settings(server.url), pace=lambda: None)
    earlier.ensure_meters(["speech_audio_ms", "speech_audio_ms_diarization",
                           "speech_characters"])
    first = due_rows(engine, int(NOON * 1000), 1)[0].event
    earlier.client.v1.billing.meter_events.create(meter_event_params(first))
    earlier.close()
    worker = worker_for(engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    assert counts.duplicates == 1
    assert counts.delivered == outbox_size(engine) - 1
    assert undelivered(engine) == 0
    assert calls(server.state, EVENTS_PATH).count(400) == 1
    assert server.state.totals() == expected_totals(ledger)


@sqlite_only
def test_the_dry_run_writes_down_each_call_and_marks_nothing(
        ledger: Ledger, clock: FakeClock, tmp_path: Path,
        server: RunningStripeServer) -> None:
    engine = ledger.engine
    ledger.ingest(some_usage(NOON, minutes=1), now_ms=int(NOON * 1000))
    log = tmp_path / "stripe-calls.jsonl"
    dry = DryRunSink(log)
    worker = worker_for(engine, lambda pace: dry, clock)
    counts = worker.run_once()
    rows = outbox_size(engine)
    assert (counts.recorded, counts.delivered) == (rows, 0)
    assert [r["call"] for r in dry.records] == (
        ["POST /v1/billing/meters"] * 3
        + ["POST /v1/billing/meter_events"] * rows)
    params = dry.records[3]["params"]
    assert isinstance(params, dict)
    # the key names the row's first attempt; the identifier, the event
    assert dry.records[3]["idempotency_key"] == f"{params['identifier']}:1"
    assert [json.loads(line) for line in log.read_text().splitlines()] == (
        dry.records)
    assert worker.run_once().recorded == rows  # still due: not delivered
    assert len(dry.records) == 3 + rows  # but written down once
    assert undelivered(engine) == rows
    assert server.state.requests == []

    real = worker_for(engine, v1_sink(server.url), clock)
    assert real.run_once().delivered == rows
    real.sink.close()
    assert server.state.totals() == expected_totals(ledger)


@sqlite_only
def test_the_v2_stream_sends_100_per_call_and_renews_its_session(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    engine = ledger.engine
    customers = ("acme", "beta")
    ledger.ingest(some_usage(NOON, customers, minutes=20),
                  now_ms=int(NOON * 1000))
    worker = worker_for(engine, lambda pace: StripeStreamSink(
        settings(server.url), pace, clock), clock)
    first = worker.run_once()
    assert first.delivered == outbox_size(engine) == 120
    assert calls(server.state, STREAM_PATH) == [200, 200]  # 100 + 20

    clock.now += 14.5 * 60  # the token has 30 s left: renew first
    ledger.ingest(some_usage(clock.now, customers, tag="later"),
                  now_ms=int(clock.now * 1000))
    assert worker.run_once().delivered == 18
    assert calls(server.state, SESSION_PATH) == [200, 200]
    assert 401 not in calls(server.state, STREAM_PATH)

    server.state.advance(16 * 60)  # expired by Stripe's clock, not ours
    ledger.ingest(some_usage(clock.now, customers, tag="expired"),
                  now_ms=int(clock.now * 1000))
    expired = worker.run_once()
    assert (expired.delivered, expired.retried) == (0, 18)
    server.state.inject("429", paths={STREAM_PATH})
    clock.now += 60
    assert worker.run_once().retried == 18  # a new session, then a 429
    clock.now += 60
    assert worker.run_once().delivered == 18
    worker.sink.close()
    assert calls(server.state, SESSION_PATH) == [200, 200, 200]
    assert server.state.error_reports == []
    assert server.state.totals() == expected_totals(ledger)


@sqlite_only
def test_rows_outside_stripes_window_are_dead_lettered_with_why(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    engine = ledger.engine
    old = some_usage(NOON - 36 * 86_400, ("acme",), minutes=1, tag="old")
    ahead = some_usage(NOON + 20 * 60, ("acme",), minutes=1, tag="ahead")
    fine = some_usage(NOON, ("beta",), minutes=1)
    ledger.ingest(old + ahead + fine, now_ms=int(NOON * 1000))
    # rolled up by a clock 20 minutes fast, sent after it was corrected
    roll_up(engine, ACCOUNTS, int((NOON + 20 * 60) * 1000), settle_s=0)
    worker = worker_for(engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    with engine.connect() as connection:
        reasons = sorted(connection.scalars(
            select(stripe_dead_letters.c.reason)))
    assert (counts.dead_lettered, counts.delivered) == (6, 3)
    assert sum("more than 35 days ago" in r for r in reasons) == 3
    assert sum("more than 5 minutes ahead" in r for r in reasons) == 3
    assert outbox_size(engine) == 3  # dead letters left the outbox
    assert set(server.state.totals()) == {
        ("cus_beta", "speech_audio_ms"),
        ("cus_beta", "speech_audio_ms_diarization"),
        ("cus_beta", "speech_characters")}


@sqlite_only
def test_the_cli_dry_run_prints_the_calls_it_would_make(
        ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).timestamp()
    ledger.ingest(some_usage(now, ("acme",), minutes=1),
                  now_ms=int(now * 1000))
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    url = str(ledger.engine.url)
    code = main(["deliver", "--once", "--settle-s", "0",
                 "--database-url", url,
                 "--dry-run-log", str(tmp_path / "calls.jsonl")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "STRIPE_API_KEY is not set: dry run" in err
    assert out.count("would call {") == 6  # 3 meters, 3 events
    assert "pass rolled_up=3 delivered=0" in out
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 6


def test_settings_come_from_the_environment(
        server: RunningStripeServer) -> None:
    assert StripeSettings.from_env({}) is None
    found = StripeSettings.from_env({
        "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": server.url,
        "STRIPE_METER_EVENTS_API_BASE": server.url})
    assert found == StripeSettings(KEY, server.url, server.url)
    sink = StripeSink(found, pace=lambda: None)
    assert sink.ensure_meters(["speech_tokens"]) == {
        "speech_tokens": server.state.meters[0].id}
    assert sink.ensure_meters(["speech_tokens"]) == {
        "speech_tokens": server.state.meters[0].id}  # found, not created
    sink.close()
    assert len(server.state.meters) == 1


@sqlite_only
def test_a_stop_request_ends_the_pass_before_the_next_call(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """SIGTERM mid-pass: the call in flight finishes, no other starts."""
    engine = ledger.engine
    ledger.ingest(some_usage(NOON, ("acme",), minutes=2),
                  now_ms=int(NOON * 1000))
    roll_up(engine, ACCOUNTS, int(NOON * 1000), settle_s=0)
    meters = StripeSink(settings(server.url), pace=lambda: None)
    remember_meters(engine, meters.ensure_meters(
        ["speech_audio_ms", "speech_audio_ms_diarization",
         "speech_characters"]), 0)
    meters.close()
    stop = threading.Event()
    # "SIGTERM" comes as the first call is paced, instead of the throttle
    worker = worker_for(engine, lambda pace: StripeSink(
        settings(server.url), pace=stop.set), clock, stop=stop)
    counts = worker.run_once()
    worker.sink.close()
    assert counts.delivered == 1
    assert undelivered(engine) == 5


@sqlite_only
def test_the_cli_delivers_on_the_v2_stream(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).timestamp()
    ledger.ingest(some_usage(now, ("acme",), minutes=1),
                  now_ms=int(now * 1000))
    with running_stripe_server(StripeState(api_key=KEY)) as server:
        point_at(server.url, monkeypatch)
        code = main(["deliver", "--once", "--v2", "--settle-s", "0",
                     "--database-url", str(ledger.engine.url)])
        totals = server.state.totals()
        streamed = calls(server.state, STREAM_PATH)
    assert code == 0
    assert "pass rolled_up=3 delivered=3" in capsys.readouterr().out
    assert streamed == [200]
    assert totals == expected_totals(ledger)


def test_the_sdk_timeout_and_retries_come_from_the_environment() -> None:
    assert StripeSettings.from_env({"STRIPE_API_KEY": KEY}) == (
        StripeSettings(KEY, max_network_retries=2, timeout_s=10.0))
    found = StripeSettings.from_env({
        "STRIPE_API_KEY": KEY, "STRIPE_TIMEOUT_S": "2.5",
        "STRIPE_MAX_RETRIES": "0"})
    assert found is not None
    sink = StripeSink(found, pace=lambda: None)
    sink.close()
    options = sink.client._requestor._options
    assert (sink.http_client._timeout, options.max_network_retries) == (
        2.5, 0)
    for bad in ({"STRIPE_TIMEOUT_S": "0"}, {"STRIPE_MAX_RETRIES": "-1"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StripeSettings.from_env({"STRIPE_API_KEY": KEY, **bad})


@sqlite_only
def test_the_cli_flags_set_the_sdk_timeout_and_retries(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The flags win over the environment, and reach the SDK: with no
    retries of its own, one 500 leaves one row to the worker's retry;
    with a timeout of 0.3 s, a request held 5 s is given up."""
    url = one_minute_of_usage(ledger)
    with running_stripe_server(StripeState(api_key=KEY)) as server:
        point_at(server.url, monkeypatch)
        monkeypatch.setenv("STRIPE_MAX_RETRIES", "3")
        monkeypatch.setenv("STRIPE_TIMEOUT_S", "30")
        server.state.inject("500")
        server.state.inject("timeout", hold_s=5)
        started = datetime.now(UTC).timestamp()
        code = main(["deliver", "--once", "--settle-s", "0",
                     "--database-url", url, "--stripe-max-retries", "0",
                     "--stripe-timeout-s", "0.3"])
        took_s = datetime.now(UTC).timestamp() - started
        streamed = calls(server.state, EVENTS_PATH)
    assert code == 0
    assert "pass rolled_up=3 delivered=1 duplicates=0 retried=2" in (
        capsys.readouterr().out)
    # no SDK retry after either (the held request is logged when its
    # hold ends, after this): with STRIPE_MAX_RETRIES=3 both would pass
    assert streamed == [500, 200]
    assert took_s < 4  # the 5 s hold was not waited out


def point_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's Stripe: the test server, with the key it expects."""
    for name in ("STRIPE_API_BASE", "STRIPE_METER_EVENTS_API_BASE"):
        monkeypatch.setenv(name, url)
    monkeypatch.setenv("STRIPE_API_KEY", KEY)


def one_minute_of_usage(ledger: Ledger) -> str:
    """A minute of acme's usage, just now; the ledger's URL."""
    now = datetime.now(UTC).timestamp()
    ledger.ingest(some_usage(now, ("acme",), minutes=1),
                  now_ms=int(now * 1000))
    return str(ledger.engine.url)


def deliver_args(url: str, *flags: str) -> list[str]:
    return ["deliver", "--settle-s", "0", "--database-url", url,
            "--stripe-max-retries", "0", *flags]


@sqlite_only
def test_drain_waits_out_the_retries_then_exits_0(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = one_minute_of_usage(ledger)
    with running_stripe_server(StripeState(api_key=KEY)) as server:
        point_at(server.url, monkeypatch)
        server.state.inject("500")
        once = main(deliver_args(url, "--once"))
        left_by_once = undelivered(ledger.engine)
        server.state.inject("500")
        drained = main(deliver_args(url, "--drain", "--drain-timeout-s",
                                    "30"))
        totals = server.state.totals()
    assert (once, left_by_once) == (0, 1)  # --once leaves it waiting
    assert drained == 0
    assert undelivered(ledger.engine) == 0
    assert totals == expected_totals(ledger)
    assert "rows undelivered" not in capsys.readouterr().err


@sqlite_only
def test_drain_exits_1_when_rows_are_left_at_its_timeout(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = one_minute_of_usage(ledger)
    with running_stripe_server(StripeState(api_key=KEY)) as server:
        point_at(server.url, monkeypatch)
        server.state.fail_for(3_600, "500")
        code = main(deliver_args(url, "--drain", "--drain-timeout-s",
                                 "1.5"))
    assert code == 1
    assert "drain ended with 3 rows undelivered" in capsys.readouterr().err
    assert undelivered(ledger.engine) == 3
