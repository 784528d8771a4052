"""Subclasses of the JSON types, and time zones that misbehave, are checked and stored as what they hold.

A caller's ``str``, ``int``, ``float``, ``dict`` or ``list`` subclass can
override the very methods validation calls (``__contains__``, ``isascii``,
``__int__``, ``__float__``, ``items``) and be checked as one value, then stored
as another. Validation copies each to its exact base type first, without
calling the overridden methods, so the value checked is the value stored and
read back. A ``tzinfo`` whose ``utcoffset`` is out of range, of the wrong
type, or raises is a ValidationError naming the field, never another exception.
"""

from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from signals.ingest import log_signal, log_signals
from signals.ledger.validation import LIFECYCLE_FIELDS, clean_signal
from signals.writepath import journal
from tests.factories import signal_data
from tests.test_signals.test_validation_roundtrip import WRITE_PATHS, assert_stored_as_cleaned, same

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Huge(int):
    def __int__(self):
        return 1 << 80

    def __index__(self):
        return 1 << 80

    def __float__(self):
        return 1e300


class Smuggler(str):
    # Claims to hold no NUL and to be ASCII, so a check by method lets a NUL through.
    def __contains__(self, item):
        return False

    def isascii(self):
        return True

    def isprintable(self):
        return True

    def __str__(self):
        return "clean"

    def strip(self, *args):
        return "clean"


class Liar(float):
    def __float__(self):
        return 1e300

    def __lt__(self, other):
        return True

    def __gt__(self, other):
        return False


class NotANumber(float):
    def __float__(self):
        return float("nan")


class Raising(float):
    def __float__(self):
        raise RuntimeError("the caller's own bug")


class Hiding(dict):
    def items(self):
        raise RuntimeError("items")

    def keys(self):
        return iter(())

    def __iter__(self):
        return iter(())


class Shrinking(list):
    def __iter__(self):
        return iter(())


class Offset(tzinfo):
    def __init__(self, offset):
        self.offset = offset

    def utcoffset(self, dt):
        if isinstance(self.offset, Exception):
            raise self.offset
        return self.offset

    def dst(self, dt):
        return None


BAD_ZONES = {
    "25 hours": Offset(timedelta(hours=25)),
    "not a timedelta": Offset("+01:00"),
    "raises": Offset(RuntimeError("boom")),
}
TIMESTAMP_FIELDS = ("timestamp", "exit_timestamp", "created_at")


def refusal(data, **kwargs):
    with pytest.raises(ValidationError) as caught:
        clean_signal(data, now=NOW, **kwargs)
    return caught.value.message_dict


# Time zones ----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", BAD_ZONES.values(), ids=BAD_ZONES.keys())
@pytest.mark.parametrize("field", TIMESTAMP_FIELDS)
def test_a_time_zone_whose_offset_cannot_be_used_is_refused_naming_the_field(field, zone):
    errors = refusal(signal_data(**{field: datetime(2025, 6, 1, tzinfo=zone)}), lifecycle=True)
    assert list(errors) == [field]
    assert "UTC offset cannot be used" in errors[field][0]


@pytest.mark.parametrize("zone", BAD_ZONES.values(), ids=BAD_ZONES.keys())
@pytest.mark.django_db
def test_log_signal_raises_only_validation_errors_for_a_bad_time_zone(zone):
    data = {"symbol": "TZ", "action": "BUY", "entry_price": 1, "confidence": 1,
            "timestamp": datetime(2024, 1, 1, tzinfo=zone)}
    # A plain dict of known fields: the hot path meets it first.
    with pytest.raises(ValidationError) as caught:
        log_signal(data)
    assert "timestamp" in caught.value.message_dict
    with pytest.raises(ValidationError):
        log_signals([data])


def test_a_datetime_subclass_is_converted_by_the_base_type_not_its_own_methods():
    class Shifted(datetime):
        def astimezone(self, tz=None):
            return datetime(2000, 1, 1, tzinfo=UTC)

    values = clean_signal(signal_data(timestamp=Shifted(2025, 6, 1, 12, tzinfo=UTC)), now=NOW)
    assert type(values["timestamp"]) is datetime
    assert values["timestamp"] == datetime(2025, 6, 1, 12, tzinfo=UTC)


# Fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ("signal_id", "strategy", "asset_type", "data_source", "service_type",
                                   "generated_by", "regime", "reasoning"))
def test_a_str_subclass_cannot_smuggle_a_nul_into_a_text_field(field):
    errors = refusal(signal_data(**{field: Smuggler("a\x00b")}))
    assert list(errors) == [field]


@pytest.mark.parametrize("field", ("symbol", "action", "sha256"))
def test_a_str_subclass_is_judged_by_what_it_holds(field):
    assert field in refusal(signal_data(**{field: Smuggler("a\x00b")}))


def test_an_int_subclass_is_stored_as_the_int_it_holds():
    values = clean_signal(signal_data(sources_count=Huge(7)), now=NOW)
    assert type(values["sources_count"]) is int and values["sources_count"] == 7


@pytest.mark.parametrize("field", ("entry_price", "target_price", "stop_price", "confidence",
                                   "consensus_agreement", "exit_price", "profit_loss_pct"))
@pytest.mark.parametrize("kind", (Liar, NotANumber, Raising, Huge))
def test_a_number_subclass_is_judged_and_stored_as_the_number_it_holds(field, kind):
    values = clean_signal(signal_data(**{field: kind(5)}), now=NOW, lifecycle=True)
    assert type(values[field]) is float and values[field] == 5.0


@pytest.mark.parametrize("field", ("entry_price", "confidence", "sources_count"))
def test_a_number_subclass_out_of_range_is_refused_whatever_its_comparisons_say(field):
    assert list(refusal(signal_data(**{field: Liar(1e13)}))) == [field]


# Metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata, message", [
    ({"k": Smuggler("a\x00b")}, "NUL characters"),
    ({Smuggler("k\x00"): 1}, "NUL characters"),
    ({"k": [Smuggler("\ud800")]}, "NUL characters"),
    ({"k": Huge(2**64)}, "signed 64-bit range"),
    ({"k": Liar(1e300)}, "below 2**53"),
    ({"k": NotANumber(float("nan"))}, "below 2**53"),
], ids=["str value", "str key", "str in list", "int", "float", "NaN float"])
def test_a_subclass_in_metadata_is_refused_by_what_it_holds(metadata, message):
    for data in (signal_data(metadata=metadata), {**signal_data(), **metadata}):
        errors = refusal(data)
        assert list(errors) == ["metadata"]
        assert message in errors["metadata"][0]


def test_dict_and_list_subclasses_in_metadata_are_read_whole_without_their_own_methods():
    metadata = Hiding(a=Shrinking([1, Huge(2), Liar(0.5)]), b=Hiding(c=NotANumber(1.5)))
    values = clean_signal(signal_data(metadata=metadata, extra=Hiding(d=1)), now=NOW)
    assert same(values["metadata"], {"a": [1, 2, 0.5], "b": {"c": 1.5}, "extra": {"d": 1}})


def test_a_mapping_that_fails_while_being_read_is_a_validation_error():
    class Broken(dict):
        pass

    class Unhashable:
        calls = 0

        def __hash__(self):
            type(self).calls += 1
            if type(self).calls > 1:
                raise RuntimeError("hash")
            return 1

    data = Broken(signal_data())
    data[Unhashable()] = 1
    assert NON_FIELD_ERRORS in refusal(data)


# What is accepted is what is stored ---------------------------------------------------


SUBCLASSED = {
    "symbol": Smuggler("AAPL"), "reasoning": Smuggler("why"), "regime": Smuggler("calm"),
    "entry_price": Liar(101.5), "target_price": NotANumber(110.0), "stop_price": Huge(95),
    "confidence": Raising(80.0), "consensus_agreement": Huge(60), "sources_count": Huge(3),
    "metadata": Hiding(depth=Shrinking([Huge(1), Liar(2.5), Smuggler("x"), Hiding(k=Smuggler("v"))])),
    "venue": Smuggler("XNYS"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", WRITE_PATHS)
def test_subclassed_values_are_stored_and_read_back_as_what_they_hold(path, tmp_path):
    values = clean_signal({"action": "BUY", **SUBCLASSED}, now=NOW)
    assert same(values["metadata"], {"depth": [1, 2.5, "x", {"k": "v"}], "venue": "XNYS"})
    assert (values["symbol"], values["entry_price"], values["target_price"], values["stop_price"]) == (
        "AAPL", 101.5, 110.0, 95.0)
    assert type(values["sources_count"]) is int and values["sources_count"] == 3
    result = WRITE_PATHS[path](tmp_path, values)
    assert result.as_dict()["stored"] == 1
    assert_stored_as_cleaned(values)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["values (COPY / INSERT)", "ORM"])
def test_subclassed_lifecycle_values_are_stored_and_read_back(path, tmp_path):
    data = {"action": "SELL", **SUBCLASSED, "outcome": Smuggler("win"), "exit_price": Liar(99.0),
            "profit_loss_pct": NotANumber(-1.5), "order_id": Smuggler("o-1"), "legacy_sha256": Smuggler("ab")}
    values = clean_signal(data, now=NOW, lifecycle=True)
    assert (values["exit_price"], values["profit_loss_pct"]) == (99.0, -1.5)
    result = WRITE_PATHS[path](tmp_path, values)
    assert result.as_dict()["stored"] == 1
    assert_stored_as_cleaned(values, [*journal.LINE_FIELDS, *LIFECYCLE_FIELDS])
