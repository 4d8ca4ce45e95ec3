"""`python -m ch08_metering deliver`: the Stripe delivery worker.

Chapter 8, "Stripe Meters API integration". The composition root of the
worker: flags and `DATABASE_URL` / `STRIPE_*` variables pick the ledger
and the sink, then passes run until SIGTERM (or once, with `--once`; or,
with `--drain`, until nothing is due or waiting for a retry, exiting 1
if rows are left undelivered), each printing what it rolled up and sent.
Without `STRIPE_API_KEY` it is a dry run that prints the calls it would
make and marks nothing delivered, so the same ledger can be delivered
for real later.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from random import Random
from typing import Any

from ch08_metering.accounts import add_accounts_argument, load_accounts
from ch08_metering.database import add_database_argument, open_engine
from ch08_metering.delivery import (
    DeliveryPolicy,
    DeliveryWorker,
    PassCounts,
    Throttle,
)
from ch08_metering.schema import metadata
from ch08_metering.stripe_sink import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    DryRunSink,
    MeterSink,
    StripeSettings,
    StripeSink,
    StripeStreamSink,
    StripeUnavailableError,
)

log = logging.getLogger(__name__)


def add_parser(commands: Any, name: str) -> None:
    policy = DeliveryPolicy()
    parser = commands.add_parser(
        name, help="send settled usage to Stripe Billing meters",
        description="Roll up settled minutes of usage and send them to "
        "Stripe (STRIPE_API_KEY, STRIPE_API_BASE, "
        "STRIPE_METER_EVENTS_API_BASE); a dry run without a key.")
    ending = parser.add_mutually_exclusive_group()
    ending.add_argument("--once", action="store_true",
                        help="one pass, then exit")
    ending.add_argument("--drain", action="store_true",
                        help="pass after pass, waiting out retries, until "
                        "no row is due or waiting; exit 1 if rows are "
                        "left undelivered (scripts, cron)")
    parser.add_argument("--drain-timeout-s", type=float, default=600.0,
                        help="--drain gives up after this long "
                        "(default %(default)s)")
    parser.add_argument("--settle-s", type=float, default=policy.settle_s,
                        help="wait this long after a minute ends before "
                        "sending it; -60 also sends the minute in progress "
                        "(demos) (default %(default)s)")
    parser.add_argument("--v2", action="store_true",
                        help="the v2 meter event stream, 100 per call")
    parser.add_argument("--dry-run-log", type=Path,
                        help="dry run: also append the calls to this file")
    add_database_argument(parser)
    add_accounts_argument(parser)
    parser.add_argument("--max-calls-per-s", type=float,
                        default=policy.max_calls_per_s,
                        help="calls to Stripe per second, all customers "
                        "together (default %(default)s)")
    parser.add_argument("--poll-s", type=float, default=policy.poll_s,
                        help="pause between passes (default %(default)s)")
    parser.add_argument("--stripe-timeout-s", type=float,
                        help="seconds per HTTP request to Stripe (env "
                        f"STRIPE_TIMEOUT_S; default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--stripe-max-retries", type=int,
                        help="the Stripe SDK's own retries of a failed "
                        "request, same idempotency key (env "
                        f"STRIPE_MAX_RETRIES; default {DEFAULT_MAX_RETRIES})")


def stripe_settings(args: argparse.Namespace) -> StripeSettings | None:
    """The environment's settings, then the flags given over them."""
    settings = StripeSettings.from_env(os.environ)
    if settings is None:
        return None
    if args.stripe_timeout_s is not None:
        settings = replace(settings, timeout_s=args.stripe_timeout_s)
    if args.stripe_max_retries is not None:
        settings = replace(settings,
                           max_network_retries=args.stripe_max_retries)
    return settings


def open_sink(args: argparse.Namespace,
              pace: Callable[[], object]) -> MeterSink:
    settings = stripe_settings(args)
    if settings is None:
        print("STRIPE_API_KEY is not set: dry run, printing the Stripe "
              "calls it would make; nothing is marked delivered",
              file=sys.stderr, flush=True)
        return DryRunSink(args.dry_run_log)
    if args.v2:
        return StripeStreamSink(settings, pace, time.time)
    return StripeSink(settings, pace)


def run(args: argparse.Namespace) -> int:
    engine = open_engine(args.database_url)
    metadata.create_all(engine)
    policy = DeliveryPolicy(settle_s=args.settle_s,
                            max_calls_per_s=args.max_calls_per_s,
                            poll_s=args.poll_s)
    # A signal only sets `stop`: the call in flight finishes, waits end
    # early, and the worker stops before its next call.
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    throttle = Throttle(policy.max_calls_per_s, time.monotonic, stop.wait)
    sink = open_sink(args, throttle.wait)
    worker = DeliveryWorker(engine, load_accounts(args.accounts), sink,
                            time.time, throttle, Random(), policy, stop)
    printed = 0

    def report(counts: PassCounts) -> None:
        nonlocal printed
        new = sink.records[printed:] if isinstance(sink, DryRunSink) else []
        printed += len(new)
        for record in new:
            print(f"would call {json.dumps(record, sort_keys=True)}")
        # Idle passes are quiet; so are dry runs of rows already shown.
        if args.once or new or replace(counts, recorded=0) != PassCounts():
            print(f"pass {counts.summary()}", flush=True)

    def drain() -> int:
        if isinstance(sink, DryRunSink):  # nothing can be delivered
            report(worker.run_once())
            return 0
        try:
            left = worker.drain(args.drain_timeout_s, report)
        except StripeUnavailableError as error:
            print(f"drain stopped: {error}", file=sys.stderr, flush=True)
            return 1
        if left:
            print(f"drain ended with {left} rows undelivered (see "
                  "stripe_outbox.last_error)", file=sys.stderr, flush=True)
        return 1 if left else 0

    # The SDK logs every request at INFO; the pass summaries say enough.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    log.info("event=delivery_started sink=%s poll_s=%s",
             type(sink).__name__, policy.poll_s)
    code = 0
    try:
        if args.once:
            report(worker.run_once())
        elif args.drain:
            code = drain()
        else:
            worker.run(report)
    finally:
        sink.close()
        engine.dispose()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code
