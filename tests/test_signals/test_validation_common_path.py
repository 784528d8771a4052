"""clean_signal's common-case path gives exactly what the general path gives, or steps aside."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError

from signals.ledger.hashing import compute_hash, hash_cleaned
from signals.ledger.common import clean_common as _clean_common
from signals.ledger.validation import _clean_general, clean_signal
from signals.writepath import journal
from tests.factories import signal_data

NOW = datetime(2026, 1, 1, tzinfo=UTC)

VALID = [
    {},
    {"symbol": " btc-usd ", "action": "sell"},
    {"entry_price": 100, "target_price": 10**6, "stop_price": None, "confidence": 0},
    {"confidence": 100, "consensus_agreement": 55, "sources_count": 0},
    {"consensus_agreement": 0.5, "sources_count": 7, "regime": "bull", "reasoning": "two\nlines"},
    {"strategy": "", "asset_type": "crypto", "data_source": "", "service_type": "alerts", "generated_by": "g"},
    {"timestamp": "2025-11-18T16:30:00.5+02:00"},
    {"timestamp": " 2025-11-18 14:30:00 "},
    {"timestamp": datetime(2025, 11, 18, 14, 30)},
    {"timestamp": datetime(2025, 11, 18, 9, 30, 0, 7, tzinfo=timezone(timedelta(hours=-5)))},
    {"timestamp": None},
    {"timestamp": ""},
    {"symbol": "NESN.SW", "entry_price": 1e12, "strategy": "caf\u00e9 \"quoted\""},
    {"signal_id": "ID with spaces inside", "reasoning": "x" * 50},
]


@pytest.mark.parametrize("overrides", VALID)
def test_common_path_result_and_journal_line_equal_the_general_path(overrides):
    data = signal_data(**overrides)
    if overrides.get("timestamp", "x") is None:
        data.pop("timestamp", None)
    common = _clean_common(data, NOW)
    general = _clean_general(data, lifecycle=False, now=NOW)
    assert common is not None
    assert common == general
    assert list(common) == list(general)  # the same key order, so the same journal line
    assert journal.encode(common, now_ms=1) == journal.encode(general, now_ms=1)


def test_common_path_fills_in_the_same_hash_with_a_supplied_hash():
    data = signal_data()
    data["sha256"] = clean_signal(data, now=NOW)["sha256"].upper()
    assert _clean_common(data, NOW) == _clean_general(data, lifecycle=False, now=NOW)


@pytest.mark.parametrize("overrides", [
    {"entry_price": "100.5"},  # text for a number: valid, but left to the general path
    {"entry_price": 0}, {"entry_price": float("nan")}, {"entry_price": 10**400}, {"entry_price": True},
    {"confidence": 10**400}, {"confidence": float("nan")}, {"confidence": 101}, {"confidence": False},
    {"consensus_agreement": -1}, {"sources_count": -1}, {"sources_count": True}, {"sources_count": 1.0},
    {"symbol": "A B"}, {"symbol": ""}, {"symbol": 5}, {"action": "HOLD"}, {"action": None},
    {"signal_id": " padded"}, {"signal_id": "x" * 500}, {"signal_id": "tab\there"},
    {"regime": "bad\x00"}, {"strategy": 5}, {"reasoning": "x" * 100_000},
    {"timestamp": "yesterday"}, {"timestamp": 5}, {"timestamp": datetime(2030, 1, 1, tzinfo=UTC)},
    {"sha256": "0" * 64}, {"sha256": 5}, {"stop_price": "abc"},
])
def test_common_path_steps_aside_for_anything_unusual(overrides):
    assert _clean_common(signal_data(**overrides), NOW) is None


def test_a_caller_clock_in_another_zone_goes_to_the_general_path():
    now = NOW.astimezone(timezone(timedelta(hours=3)))
    data = signal_data(timestamp=None)
    assert _clean_common(data, now) is None
    assert clean_signal(data, now=now)["sha256"] == _clean_general(data, lifecycle=False, now=now)["sha256"]


@pytest.mark.parametrize("extra", [{"metadata": {"a": 1}}, {"unknown_key": 1}, {"take_profit": 120.0}])
def test_inputs_outside_the_common_keys_are_cleaned_by_the_general_path(extra):
    data = signal_data(**extra)
    cleaned = clean_signal(data, now=NOW)
    assert cleaned == _clean_general(data, lifecycle=False, now=NOW)
    assert cleaned["metadata"] or cleaned["target_price"] == 120.0


def test_a_lifecycle_field_from_a_generator_is_still_refused():
    with pytest.raises(ValidationError) as caught:
        clean_signal(signal_data(outcome="win"), now=NOW)
    assert "outcome" in caught.value.message_dict


def test_hash_of_cleaned_values_is_the_alpine_formula():
    cleaned = clean_signal(signal_data(target_price=None), now=NOW)
    fields = ("signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
              "strategy", "timestamp")
    assert hash_cleaned(*(cleaned.get(name) for name in fields)) == compute_hash(
        **{name: cleaned.get(name) for name in fields}) == cleaned["sha256"]


@pytest.mark.parametrize("fields", [
    ("SIG-1", "AAPL", "BUY", 175.5, 184.25, 171.0, 95.5, "weighted_consensus_v6", datetime(2025, 11, 18, 14, 30, tzinfo=UTC)),
    ("sig-é/ü \"quoted\"", "BTC-USD", "SELL", 1e-7, None, None, 0.0, "straté\\gy", datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
    ("big", "ES=F", "BUY", 1e12, 123456789.123456789, 1e-300, 100.0, "s", datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
])
def test_the_formatted_hash_is_the_canonical_json_hash(fields):
    names = ("signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
             "strategy", "timestamp")
    assert hash_cleaned(*fields) == compute_hash(**dict(zip(names, fields)))
