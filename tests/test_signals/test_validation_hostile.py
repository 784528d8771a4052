"""Values a database would refuse or corrupt are refused by validation, naming the field.

Each refusal is a ValidationError from ``clean_signal`` and from ``log_signal``
(nothing else escapes, nothing is journaled), with a message that names the
field, and for metadata the key path.
"""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

import signals.ingest
from signals.ingest import log_signal, log_signals
from signals.ledger.validation import clean_signal
from signals.models import SOURCES_COUNT_MAX
from tests.factories import signal_data

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TEXT_FIELDS = ("signal_id", "symbol", "strategy", "asset_type", "data_source", "service_type", "generated_by",
               "regime", "reasoning")
UNSTORABLE = {"nul": "a\x00b", "high surrogate": "a\ud800b", "low surrogate": "\udfffb", "nul alone": "\x00"}


def refusal(data, **kwargs):
    """Return the message_dict of clean_signal's refusal of ``data``; every message must be loggable."""
    with pytest.raises(ValidationError) as caught:
        clean_signal(data, now=NOW, **kwargs)
    errors = caught.value.message_dict
    for messages in errors.values():
        for message in messages:
            message.encode("utf-8")  # no raw surrogate is echoed back into a log line or a page
    return errors


def nested(depth, leaf=1, *, kind=dict):
    value = leaf
    for _ in range(depth):
        value = {"k": value} if kind is dict else [value]
    return value


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_nul_and_lone_surrogates_are_refused_in_every_text_field(field, text):
    errors = refusal(signal_data(**{field: text}))
    assert list(errors) == [field]


def test_a_lone_surrogate_deep_in_a_long_reasoning_is_found():
    errors = refusal(signal_data(reasoning="é" * 9_000 + "\udc80" + "x" * 500))
    assert "NUL characters or lone surrogates" in errors["reasoning"][0]


def test_reasoning_keeps_newlines_tabs_and_astral_characters():
    text = "line one\nline\ttwo \U0001f4c8 \u2028 \x01"
    assert clean_signal(signal_data(reasoning=text), now=NOW)["reasoning"] == text


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize("where", ["metadata key", "metadata value", "nested key", "list item", "unknown key",
                                   "unknown key's value"])
def test_nul_and_lone_surrogates_are_refused_in_metadata_naming_the_key(where, text):
    data = {
        "metadata key": {"metadata": {text: 1}},
        "metadata value": {"metadata": {"note": text}},
        "nested key": {"metadata": {"outer": {text: 1}}},
        "list item": {"metadata": {"tags": ["ok", text]}},
        "unknown key": {text: "value"},
        "unknown key's value": {"venue": text},
    }[where]
    errors = refusal(signal_data(**data))
    assert list(errors) == ["metadata"]
    message = errors["metadata"][0]
    assert "NUL characters or lone surrogates" in message
    if where == "nested key":
        assert message.startswith("metadata['outer']")
    elif where == "list item":
        assert message.startswith("metadata['tags'][1]")
    elif where == "unknown key's value":
        assert message.startswith("metadata['venue']")


@pytest.mark.parametrize("value", [SOURCES_COUNT_MAX + 1, 2**63, 10**5000, -1], ids=["2**31", "2**63", "10**5000", "-1"])
def test_sources_count_beyond_a_32_bit_column_is_refused(value):
    errors = refusal(signal_data(sources_count=value))
    assert list(errors) == ["sources_count"]
    assert str(SOURCES_COUNT_MAX) in errors["sources_count"][0]


def test_the_largest_32_bit_sources_count_is_accepted():
    assert clean_signal(signal_data(sources_count=SOURCES_COUNT_MAX), now=NOW)["sources_count"] == SOURCES_COUNT_MAX


@pytest.mark.parametrize("value, path", [
    (2**63, "metadata['n']"), (-(2**63) - 1, "metadata['n']"), (10**5000, "metadata['n']"),
    ({"deep": [0, 2**64]}, "metadata['n']['deep'][1]"),
    (1.5e300, "metadata['n']"), (-(2.0**53), "metadata['n']"),
    (float("nan"), "metadata['n']"), (float("inf"), "metadata['n']"), ([float("-inf")], "metadata['n'][0]"),
], ids=["2**63", "-2**63-1", "10**5000", "nested 2**64", "1.5e300", "-2**53", "nan", "inf", "nested -inf"])
def test_metadata_numbers_the_databases_cannot_give_back_are_refused_naming_the_key(value, path):
    errors = refusal(signal_data(metadata={"n": value}))
    assert list(errors) == ["metadata"]
    assert errors["metadata"][0].startswith(path + ":")


def test_metadata_numbers_at_the_edges_of_the_rule_are_kept():
    metadata = {"min": -(2**63), "max": 2**63 - 1, "float": 2.0**53 - 1, "tiny": 5e-324, "negative zero": -0.0}
    assert clean_signal(signal_data(metadata=metadata), now=NOW)["metadata"] == metadata


@pytest.mark.parametrize("field", ["timestamp", "exit_timestamp", "created_at"])
@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
], ids=["year 1 +01:00", "9999 -01:00", "year 1 datetime", "9999 datetime"])
def test_timestamps_that_overflow_when_converted_to_utc_are_refused(field, value):
    data = signal_data(**{field: value}, exit_price=101.0) if field != "timestamp" else signal_data(timestamp=value)
    errors = refusal(data, lifecycle=field != "timestamp")
    assert list(errors) == [field]
    assert "years 1 to 9999" in errors[field][0]


def test_the_first_instant_in_utc_is_accepted():
    cleaned = clean_signal(signal_data(timestamp="0001-01-01T01:00:00+01:00"), now=NOW)
    assert cleaned["timestamp"] == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("kind", [dict, list])
def test_metadata_nested_ten_thousand_deep_is_refused_naming_metadata(kind):
    errors = refusal(signal_data(metadata={"deep": nested(10_000, kind=kind)}))
    assert list(errors) == ["metadata"]
    assert "nested more than" in errors["metadata"][0]


def test_metadata_that_holds_itself_is_refused():
    loop = {}
    loop["self"] = loop
    assert "nested more than" in refusal(signal_data(metadata=loop))["metadata"][0]


def test_deep_structures_in_other_fields_are_refused_without_recursing():
    deep = nested(10_000, kind=list)
    errors = refusal(signal_data(action=deep, sources_count=deep, symbol=deep, timestamp=deep))
    assert set(errors) == {"action", "sources_count", "symbol", "timestamp"}
    assert "lifecycle" not in str(errors)
    assert set(refusal(signal_data(outcome=deep, exit_price=deep), lifecycle=True)) == {"outcome", "exit_price"}


def test_metadata_of_unknown_types_is_refused_naming_the_key():
    errors = refusal(signal_data(metadata={"when": datetime(2025, 1, 1)}))
    assert errors["metadata"][0].startswith("metadata['when']: must hold JSON values")
    assert refusal(signal_data(metadata={1: "x"}))["metadata"][0].startswith("metadata: keys must be text")


def test_metadata_is_given_back_as_plain_json_types():
    cleaned = clean_signal(signal_data(metadata={"pair": (1, 2), "nested": {"t": ("a",)}}), now=NOW)
    assert cleaned["metadata"] == {"pair": [1, 2], "nested": {"t": ["a"]}}
    assert type(cleaned["metadata"]["pair"]) is list


def test_a_huge_metadata_value_is_refused_by_size_not_walked_whole():
    errors = refusal(signal_data(metadata={"items": list(range(5_000_000))}))
    assert "at most 16384 are kept" in errors["metadata"][0]


@pytest.mark.parametrize("value", [Decimal("sNaN"), Decimal("NaN"), Decimal("1e400"), 10**5000],
                         ids=["sNaN", "NaN", "1e400", "10**5000"])
def test_numbers_that_are_not_finite_floats_are_refused(value):
    assert list(refusal(signal_data(entry_price=value))) == ["entry_price"]


def test_lifecycle_values_the_constraints_refuse_are_refused_first():
    errors = refusal(signal_data(profit_loss_pct=1e300, legacy_sha256="ab\x00cd"), lifecycle=True)
    assert set(errors) == {"profit_loss_pct", "legacy_sha256"}


HOSTILE = [
    {"reasoning": "lone \ud83d surrogate"},
    {"symbol": "AA\x00PL"},
    {"strategy": "mo\x00mentum"},
    {"metadata": {"k\x00": 1}},
    {"metadata": {"k": "v\x00"}},
    {"sources_count": 2**31},
    {"timestamp": "0001-01-01T00:00:00+01:00"},
    {"timestamp": "9999-12-31T23:59:59-01:00"},
    {"metadata": nested(10_000)},
    {"metadata": {"n": float("nan")}},
    {"entry_price": Decimal("sNaN")},
]


@pytest.mark.parametrize("overrides", HOSTILE, ids=range(len(HOSTILE)))
def test_log_signal_refuses_hostile_input_with_a_validation_error_and_journals_nothing(journal_dir, overrides):
    with pytest.raises(ValidationError) as caught:
        log_signal(signal_data(**overrides))
    assert caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        log_signals([signal_data(), signal_data(**overrides)])
    assert all(message.startswith("signal 1: ") for messages in caught.value.message_dict.values() for message in messages)
    assert signals.ingest.current_ingestor() is None  # no journal segment was even opened
    assert not journal_dir.exists() or not any(journal_dir.iterdir())


class Touchy:
    """An object whose comparisons and text forms all raise, as a careless caller's might."""

    def _refuse(self, *args):
        raise RuntimeError("touched")

    __eq__ = __ne__ = __lt__ = __str__ = __repr__ = __float__ = __int__ = _refuse
    __hash__ = object.__hash__


@pytest.mark.parametrize("field", ["signal_id", "symbol", "action", "entry_price", "confidence", "timestamp",
                                   "sha256", "strategy", "reasoning", "sources_count", "metadata"])
def test_an_object_whose_comparisons_raise_is_refused_naming_its_field(journal_dir, field):
    with pytest.raises(ValidationError) as caught:
        log_signal(signal_data(**{field: Touchy()}))
    assert field in caught.value.message_dict
    assert signals.ingest.current_ingestor() is None


@pytest.mark.parametrize("value", [5, None, "AAPL", b"AAPL", {"symbol": "AAPL"}])
def test_log_signals_refuses_what_is_not_a_list_of_signals(journal_dir, value):
    with pytest.raises(ValidationError) as caught:
        log_signals(value)
    assert NON_FIELD_ERRORS in caught.value.message_dict
    assert signals.ingest.current_ingestor() is None


@pytest.mark.parametrize("field", ["confidence", "consensus_agreement"])
def test_negative_zero_is_stored_as_zero_so_the_hash_survives_sqlite(field):
    # SQLite reads -0.0 back as 0.0; the hash of "-0.0" would then no longer match.
    cleaned = clean_signal(signal_data(**{field: -0.0}), now=NOW)
    assert str(cleaned[field]) == "0.0"


def test_lifecycle_fields_of_an_import_are_not_copied_into_metadata():
    cleaned = clean_signal(signal_data(outcome="win", exit_price=101.0, exit_timestamp="2025-11-18T15:00:00+00:00",
                                       venue="XNAS"), lifecycle=True, now=NOW)
    assert cleaned["outcome"] == "win"
    assert cleaned["metadata"] == {"venue": "XNAS"}
