"""Demo signals: valid ledger rows with correct hashes, closed by the ledger's own rules."""

import types
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from signals.ledger.hashing import compute_hash
from signals.ledger.lifecycle import close_outcome
from signals.ledger.validation import clean_signal
from signals.models import Signal
from signals.operations.demo import INSTRUMENTS, generate_demo_signals, iter_demo_signals

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
GENERATOR_KEYS = ("signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
                  "strategy", "asset_type", "data_source", "timestamp", "sha256", "reasoning", "regime",
                  "consensus_agreement", "sources_count", "service_type", "generated_by")


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def stored():
    count = generate_demo_signals(400, days=20, seed=7)
    return count, list(Signal.objects.order_by("pk"))


def test_every_stored_row_has_the_alpine_hash_of_its_fields(stored):
    count, rows = stored

    assert count == 400 == len(rows)
    for row in rows:
        assert row.sha256 == compute_hash(**row.hash_fields())
        assert row.hash_matches()


def test_every_row_passes_the_ledger_validation(stored):
    _count, rows = stored

    for row in rows:
        data = {key: getattr(row, key) for key in GENERATOR_KEYS}
        # The validation entry point recomputes the hash and refuses a mismatch.
        values = clean_signal(data, now=NOW)
        assert values["sha256"] == row.sha256
        assert values["symbol"] == row.symbol


def test_closed_signals_carry_the_outcome_and_pnl_of_close_outcome(stored):
    _count, rows = stored
    closed = [row for row in rows if row.outcome is not None]
    still_open = [row for row in rows if row.outcome is None]

    assert closed and still_open
    assert {row.outcome for row in closed} == {"win", "loss", "expired"}
    for row in closed:
        pnl, outcome = close_outcome(row.action, row.entry_price, row.target_price, row.stop_price, row.exit_price)
        assert (row.profit_loss_pct, row.outcome) == (pnl, outcome)
        assert row.timestamp < row.exit_timestamp <= NOW
    for row in still_open:
        assert (row.exit_price, row.exit_timestamp, row.profit_loss_pct) == (None, None, None)


def test_older_signals_are_closed_and_the_newest_are_open(stored):
    _count, rows = stored

    # Positions are held at most ten days.
    assert all(row.outcome is not None for row in rows if row.timestamp < NOW - timedelta(days=10))
    assert rows[-1].outcome is None


def test_signals_look_like_a_trading_desk(stored):
    _count, rows = stored
    instruments = {inst.symbol: inst for inst in INSTRUMENTS}

    assert {row.symbol for row in rows} <= set(instruments)
    assert {row.asset_type for row in rows} == {"stock", "crypto"}
    assert all(row.asset_type == instruments[row.symbol].asset_type for row in rows)
    assert {row.action for row in rows} == {"BUY", "SELL"}
    in_band = sum(55 <= row.confidence <= 99 for row in rows)
    assert in_band / len(rows) > 0.85
    for row in rows:
        if row.target_price is not None:
            assert (row.target_price > row.entry_price) == (row.action == "BUY")
        if row.stop_price is not None:
            assert (row.stop_price < row.entry_price) == (row.action == "BUY")
        # Within a random walk's reach of where each instrument started.
        start = instruments[row.symbol].price
        assert start / 3 < row.entry_price < start * 3


def test_times_spread_over_the_period_in_order(stored):
    _count, rows = stored

    assert all(NOW - timedelta(days=20) <= row.timestamp < row.created_at <= NOW for row in rows)
    timestamps = [row.timestamp for row in rows]
    assert timestamps == sorted(timestamps)
    days = Counter((NOW - ts).days for ts in timestamps)
    assert len(days) == 20  # every day of the period has signals


def test_same_seed_gives_the_same_prices_and_outcomes():
    first = list(iter_demo_signals(50, days=5, seed=3, now=NOW))
    second = list(iter_demo_signals(50, days=5, seed=3, now=NOW))
    other = list(iter_demo_signals(50, days=5, seed=4, now=NOW))

    def key(values):
        return [(v["symbol"], v["entry_price"], v["confidence"], v["outcome"]) for v in values]

    assert key(first) == key(second) != key(other)
    assert {v["signal_id"] for v in first}.isdisjoint(v["signal_id"] for v in second)


def test_generation_is_lazy_and_inserted_in_chunks(monkeypatch):
    from signals.writepath import writer

    assert isinstance(iter_demo_signals(10, now=NOW), types.GeneratorType)
    queued = []
    enqueue = writer.enqueue_deliveries
    monkeypatch.setattr(writer, "enqueue_deliveries", lambda ids: queued.append(len(ids)) or enqueue(ids))

    with CaptureQueriesContext(connection) as queries:
        stored = generate_demo_signals(105, days=3, seed=1, chunk_size=50)

    # One transaction (a savepoint inside the test's) per chunk of at most 50 rows.
    chunks = [q for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert stored == 105 == Signal.objects.count()
    assert len(chunks) == 3
    # Each chunk's rows are inserted and queued for delivery in its own transaction.
    assert queued == [50, 50, 5]


def test_running_twice_adds_more_signals_without_collisions():
    generate_demo_signals(30, days=2, seed=1)
    generate_demo_signals(30, days=2, seed=1)

    assert Signal.objects.count() == 60


def test_command_stores_the_requested_count():
    out = StringIO()

    # The keyword form is the one `manage.py bootstrap` uses.
    call_command("generate_demo_signals", count=120, days=4, seed=9, no_progress=True, stdout=out)

    assert Signal.objects.count() == 120
    assert "Stored 120 demo signals over the last 4 days." in out.getvalue()
    assert Signal.objects.filter(timestamp__lt=NOW - timedelta(days=4)).count() == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"count": -1}, "--count must be at least 0"),
    ({"count": 5, "days": 0}, "--days must be greater than 0"),
])
def test_command_refuses_bad_arguments(options, message):
    with pytest.raises(CommandError, match=message) as raised:
        call_command("generate_demo_signals", no_progress=True, **options)

    assert raised.value.returncode == 2
    assert Signal.objects.count() == 0


def test_every_demo_signal_is_queued_for_delivery(stored):
    from sync.models import Delivery

    count, rows = stored
    assert Delivery.objects.filter(state="pending").count() == count
    assert set(Delivery.objects.values_list("signal_id", flat=True)) == {row.pk for row in rows}
