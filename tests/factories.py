"""Valid signal data and rows for tests, built through the real validation path."""

import itertools
from datetime import UTC, datetime

from signals.ledger.validation import clean_signal
from signals.models import Signal

_counter = itertools.count(1)


def signal_data(**overrides):
    """Return a valid generator payload; keys in ``overrides`` replace (or, as None, drop) defaults."""
    n = next(_counter)
    data = {
        "signal_id": f"TEST-{n:08d}",
        "symbol": "AAPL",
        "action": "BUY",
        "entry_price": 100.0,
        "target_price": 110.0,
        "stop_price": 95.0,
        "confidence": 80.0,
        "strategy": "momentum",
        "timestamp": datetime(2025, 11, 18, 14, 30, tzinfo=UTC),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def make_signal(**overrides):
    """Store one valid signal row directly (bypassing the journal) and return it."""
    return Signal.objects.create(**clean_signal(signal_data(**overrides)))
