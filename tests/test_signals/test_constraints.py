"""Every invariant of the ledger is enforced by the database itself, not only by validation."""

import math

import pytest
from django.db import DataError, IntegrityError, transaction

from signals.ledger.validation import clean_signal
from signals.models import Signal
from tests.factories import signal_data

pytestmark = pytest.mark.django_db


def _valid_row(**changes):
    values = clean_signal(signal_data())
    values.update(changes)
    return Signal(**values)


@pytest.mark.parametrize("changes", [
    {"signal_id": ""},
    {"signal_id": "x" * 101},
    {"signal_id": "bad\nid"},
    {"signal_id": "bad\x7fid"},
    {"symbol": ""},
    {"symbol": "S" * 21},
    {"symbol": "aapl"},
    {"symbol": "AA PL"},
    {"symbol": "AAPL;"},
    {"action": "HOLD"},
    {"entry_price": 0.0},
    {"entry_price": -1.0},
    {"entry_price": math.inf},
    {"entry_price": 2e12},
    {"target_price": 0.0},
    {"stop_price": -5.0},
    {"stop_price": math.inf},
    {"confidence": -0.1},
    {"confidence": 100.1},
    {"consensus_agreement": 101.0},
    {"sha256": "abc"},
    {"sha256": "G" * 64},
    {"sha256": "A" * 64},
    {"reasoning": "r" * 10_001},
    {"outcome": "draw"},
    {"exit_price": 0.0, "exit_timestamp": None},
    {"exit_price": 10.0, "exit_timestamp": None},
    {"profit_loss_pct": 1e16},
    {"sources_count": -1},
], ids=lambda changes: ",".join(f"{k}={str(v)[:12]!r}" for k, v in changes.items()))
def test_database_refuses_row_breaking_an_invariant(changes):
    # PostgreSQL reports an over-long varchar as DataError, the rest as IntegrityError.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        _valid_row(**changes).save()
    assert Signal.objects.count() == 0


def test_database_refuses_nan_price():
    # SQLite turns NaN into NULL (refused by NOT NULL); PostgreSQL keeps NaN,
    # which compares above every number and so fails the upper bound.
    with pytest.raises(IntegrityError), transaction.atomic():
        _valid_row(entry_price=math.nan).save()
    assert Signal.objects.count() == 0


def test_database_refuses_a_second_row_with_the_same_signal_id():
    _valid_row(signal_id="DUP-1").save()
    with pytest.raises(IntegrityError), transaction.atomic():
        _valid_row(signal_id="DUP-1").save()
    assert Signal.objects.filter(signal_id="DUP-1").count() == 1


@pytest.mark.parametrize("symbol", ["BTC-USD", "NESN.SW", "BRK/B", "ES=F", "^GSPC", "X:BTCUSD", "A_B", "Z" * 20])
def test_database_accepts_every_symbol_form_the_validator_accepts(symbol):
    _valid_row(symbol=symbol).save()
    assert Signal.objects.get().symbol == symbol


def test_database_accepts_unicode_signal_id():
    _valid_row(signal_id="sig-unicode-é").save()
    assert Signal.objects.filter(signal_id="sig-unicode-é").exists()
