"""A corpus of malformed signals: each is refused naming the field, and nothing is journaled or stored."""

import math
from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from signals.ingest import current_ingestor, log_signal, log_signals
from signals.models import Signal
from signals.writepath import journal
from tests.factories import signal_data

GOOD_HASH_OF_OTHER = "0" * 64

CORPUS = [
    # (field named in the error, changes to a valid payload)
    ("symbol", {"symbol": None}),
    ("action", {"action": None}),
    ("entry_price", {"entry_price": None}),
    ("confidence", {"confidence": None}),
    ("entry_price", {"entry_price": "abc"}),
    ("entry_price", {"entry_price": [100]}),
    ("entry_price", {"entry_price": math.nan}),
    ("entry_price", {"entry_price": math.inf}),
    ("target_price", {"target_price": -math.inf}),
    ("stop_price", {"stop_price": "nan"}),
    ("entry_price", {"entry_price": 0}),
    ("entry_price", {"entry_price": -1.5}),
    ("target_price", {"target_price": 0.0}),
    ("stop_price", {"stop_price": -3}),
    ("entry_price", {"entry_price": 2e12}),
    ("confidence", {"confidence": -0.01}),
    ("confidence", {"confidence": 100.5}),
    ("confidence", {"confidence": True}),
    ("confidence", {"confidence": Decimal("1e400")}),
    ("consensus_agreement", {"consensus_agreement": 150}),
    ("action", {"action": "HOLD"}),
    ("action", {"action": 1}),
    ("symbol", {"symbol": "AA PL"}),
    ("symbol", {"symbol": "S" * 21}),
    ("symbol", {"symbol": 42}),
    ("symbol", {"symbol": "AAPL;DROP"}),
    ("timestamp", {"timestamp": "yesterday"}),
    ("timestamp", {"timestamp": 1700000000}),
    ("timestamp", {"timestamp": "2999-01-01T00:00:00+00:00"}),
    ("sha256", {"sha256": "abc"}),
    ("sha256", {"sha256": "z" * 64}),
    ("sha256", {"sha256": GOOD_HASH_OF_OTHER}),
    ("signal_id", {"signal_id": "x" * 101}),
    ("signal_id", {"signal_id": "bad\nid"}),
    ("signal_id", {"signal_id": " padded "}),
    ("signal_id", {"signal_id": 12345}),
    ("reasoning", {"reasoning": "r" * 10_001}),
    ("strategy", {"strategy": "s" * 101}),
    ("sources_count", {"sources_count": -2}),
    ("sources_count", {"sources_count": 2.5}),
    ("metadata", {"metadata": "not a mapping"}),
    ("metadata", {"extra_key": float("nan")}),
    ("outcome", {"outcome": "win"}),
    ("order_id", {"order_id": "ORD-1"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("field,changes", CORPUS, ids=[f"{i:02d}-{f}" for i, (f, _) in enumerate(CORPUS)])
def test_malformed_signal_is_refused_naming_the_field(journal_dir, field, changes):
    data = signal_data(**{key: value for key, value in changes.items() if value is not None})
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
    with pytest.raises(ValidationError) as refused:
        log_signal(data)
    assert field in refused.value.message_dict, refused.value.message_dict
    assert current_ingestor() is None or current_ingestor().appended == 0
    assert journal.backlog_stats()["pending_signals"] == 0
    assert Signal.objects.count() == 0


def test_corpus_has_at_least_thirty_cases():
    assert len(CORPUS) >= 30


@pytest.mark.django_db
@pytest.mark.parametrize("data", [None, "AAPL BUY 100", ["AAPL", "BUY"], 42])
def test_non_mapping_input_is_refused(journal_dir, data):
    with pytest.raises(ValidationError) as refused:
        log_signal(data)
    assert NON_FIELD_ERRORS in refused.value.message_dict
    assert journal.backlog_stats()["pending_signals"] == 0


@pytest.mark.django_db
def test_log_signals_refuses_the_whole_call_naming_each_bad_signal(journal_dir):
    batch = [signal_data(), signal_data(entry_price=-1), signal_data(), signal_data(symbol="bad symbol!")]
    with pytest.raises(ValidationError) as refused:
        log_signals(batch)
    errors = refused.value.message_dict
    assert errors["entry_price"][0].startswith("signal 1:")
    assert errors["symbol"][0].startswith("signal 3:")
    assert journal.backlog_stats()["pending_signals"] == 0
    assert Signal.objects.count() == 0
