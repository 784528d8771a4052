"""The single validation entry point: normalization, defaults, and errors naming each field."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from signals.ledger.hashing import compute_hash
from signals.ledger.validation import clean_signal, first_errors
from tests.factories import signal_data

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def errors_of(data, **kwargs):
    with pytest.raises(ValidationError) as caught:
        clean_signal(data, now=NOW, **kwargs)
    return caught.value.message_dict


def test_symbol_and_action_are_normalized():
    cleaned = clean_signal(signal_data(symbol=" btc-usd ", action="sell"), now=NOW)
    assert cleaned["symbol"] == "BTC-USD"
    assert cleaned["action"] == "SELL"


def test_absent_signal_id_and_hash_are_filled_in():
    data = signal_data(signal_id=None)
    first, second = clean_signal(data, now=NOW), clean_signal(data, now=NOW)
    assert first["signal_id"] != second["signal_id"]
    assert first["sha256"] == compute_hash(
        signal_id=first["signal_id"], symbol="AAPL", action="BUY", entry_price=100.0, target_price=110.0,
        stop_price=95.0, confidence=80.0, strategy="momentum", timestamp=first["timestamp"])


def test_defaults_apply_for_optional_text_fields():
    cleaned = clean_signal(signal_data(strategy=None), now=NOW)
    assert cleaned["strategy"] == "weighted_consensus_v6"
    assert cleaned["asset_type"] == "stock"
    assert cleaned["data_source"] == "weighted_consensus"
    assert cleaned["service_type"] == "both"
    assert cleaned["generated_by"] == "signal_generator"


def test_missing_timestamp_defaults_to_now():
    assert clean_signal(signal_data(timestamp=None), now=NOW)["timestamp"] == NOW


def test_naive_timestamp_is_taken_as_utc_and_offsets_are_converted():
    assert clean_signal(signal_data(timestamp="2025-05-01T12:00:00"), now=NOW)["timestamp"] == datetime(2025, 5, 1, 12, tzinfo=UTC)
    assert clean_signal(signal_data(timestamp="2025-05-01T14:00:00+02:00"), now=NOW)["timestamp"] == datetime(2025, 5, 1, 12, tzinfo=UTC)
    assert clean_signal(signal_data(timestamp="2025-05-01T12:00:00Z"), now=NOW)["timestamp"] == datetime(2025, 5, 1, 12, tzinfo=UTC)


def test_numbers_may_come_as_decimal_or_numeric_text():
    cleaned = clean_signal(signal_data(entry_price=Decimal("101.5"), confidence="77.5"), now=NOW)
    assert cleaned["entry_price"] == 101.5
    assert cleaned["confidence"] == 77.5


def test_alpine_aliases_are_accepted():
    cleaned = clean_signal(signal_data(target_price=None, stop_price=None, take_profit=120, stop_loss=90), now=NOW)
    assert (cleaned["target_price"], cleaned["stop_price"]) == (120.0, 90.0)


def test_supplied_matching_hash_is_accepted_in_any_case():
    reference = clean_signal(signal_data(signal_id="H-1"), now=NOW)
    cleaned = clean_signal(signal_data(signal_id="H-1", sha256=reference["sha256"].upper()), now=NOW)
    assert cleaned["sha256"] == reference["sha256"]


def test_verification_hash_alias_wins_over_sha256():
    reference = clean_signal(signal_data(signal_id="H-2"), now=NOW)
    cleaned = clean_signal(signal_data(signal_id="H-2", sha256="0" * 64, verification_hash=reference["sha256"]), now=NOW)
    assert cleaned["sha256"] == reference["sha256"]


def test_mismatched_hash_is_refused_naming_sha256():
    errors = errors_of(signal_data(sha256="0" * 64))
    assert list(errors) == ["sha256"]
    assert "Does not match" in errors["sha256"][0]


def test_unknown_keys_are_kept_in_metadata():
    cleaned = clean_signal(signal_data(venue="NASDAQ", model={"version": 3}), now=NOW)
    assert cleaned["metadata"] == {"venue": "NASDAQ", "model": {"version": 3}}


def test_oversized_metadata_is_refused():
    errors = errors_of(signal_data(blob="x" * 20_000))
    assert "metadata" in errors and "at most 16384" in errors["metadata"][0]


def test_every_bad_field_is_named_at_once():
    errors = errors_of({"symbol": "??", "action": "HOLD", "entry_price": -1, "confidence": 101})
    assert set(errors) == {"symbol", "action", "entry_price", "confidence"}
    assert errors["entry_price"] == ["Must be greater than 0; got -1.0."]
    assert errors["confidence"] == ["Must be at most 100; got 101.0."]


def test_non_mapping_is_refused_as_a_whole():
    errors = errors_of(["AAPL", "BUY"])
    assert list(errors) == [NON_FIELD_ERRORS]
    assert "mapping" in errors[NON_FIELD_ERRORS][0]


def test_lifecycle_fields_are_refused_from_generators_but_accepted_for_imports():
    data = signal_data(outcome="win", exit_price=111.0, exit_timestamp="2025-11-19T00:00:00+00:00", order_id="ORD-1")
    assert set(errors_of(data)) == {"outcome", "exit_price", "exit_timestamp", "order_id"}
    cleaned = clean_signal(data, lifecycle=True, now=NOW)
    assert cleaned["outcome"] == "win" and cleaned["order_id"] == "ORD-1"


def test_timestamp_far_in_the_future_is_refused():
    errors = errors_of(signal_data(timestamp=NOW + timedelta(days=2)))
    assert "in the future" in errors["timestamp"][0]


def test_first_errors_summarizes_in_one_line():
    with pytest.raises(ValidationError) as caught:
        clean_signal(signal_data(action="HOLD", confidence=True), now=NOW)
    summary = first_errors(caught.value)
    assert "action: Must be BUY or SELL" in summary
    assert "confidence: Must be a number, not a boolean." in summary
