"""What clean_signal accepts, each database stores and gives back unchanged, with the hash still matching.

A property test drives ``clean_signal`` with broad input (any unicode text,
surrogates and NUL included; integers and floats far beyond the columns;
nested metadata; timestamps with offsets across Python's whole range; unknown
keys). For every value it accepts, the same cleaned values go through each
real write path of the database under test:

- journal lines, as the flusher writes them (the database unpacks the JSON);
- ``write_batch`` of values (PostgreSQL COPY, SQLite multi-row INSERT), as
  imports and the general path write them;
- ``write_batch`` with the ORM (``SIGNALHUB_WRITE_METHOD=orm``).

Each is read back and compared field by field, types included, and the row's
hash recomputed. Refusals must be ValidationErrors whose messages can be
logged. The examples are derandomized: the same ones on every run, so a
failure in CI reproduces and no run fails at random.
"""

import math
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, example, given, settings, strategies as st

from signals.ledger.validation import KNOWN_FIELDS, LIFECYCLE_FIELDS, clean_signal
from signals.models import QuarantinedRecord, Signal
from signals.writepath import journal, writer
from signals.writepath.writer import Incoming, write_batch
from sync.models import Delivery

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXAMPLES = int(os.environ.get("SIGNALHUB_ROUNDTRIP_EXAMPLES", "250"))

# Any code point, with NUL and lone surrogates (category Cs) often: drawn
# uniformly they would be rare, and they are what the databases refuse.
unstorable_char = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc80", "\udfff"])
any_char = st.one_of(st.characters(exclude_categories=()), unstorable_char)


def with_unstorable(texts):
    """Texts from ``texts``, and as many again with a NUL or a lone surrogate somewhere inside."""
    return st.one_of(texts, st.builds(lambda head, char, tail: head + char + tail, texts, unstorable_char, texts))


any_text = with_unstorable(st.text(any_char, max_size=15))
# Text a row can hold: anything but NUL and lone surrogates (control characters included).
storable_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
printable_text = st.text(st.characters(exclude_categories=("C", "Z"), include_characters=" "), max_size=30)
wide_ints = st.one_of(st.integers(-(2**70), 2**70), st.integers(-10, 2**32),
                      st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]))
wide_floats = st.floats(allow_nan=True, allow_infinity=True)
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                                            max_value=timedelta(hours=23, minutes=59)))
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)


def json_of(scalars, keys):
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


storable_json = json_of(st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(min_value=-(2.0**53), max_value=2.0**53, exclude_min=True, exclude_max=True),
    st.sampled_from([-0.0, 5e-324, 1e-7, 2.0**53 - 1, 1e15 + 0.5]), storable_text), storable_text)
any_json = json_of(st.one_of(st.none(), st.booleans(), wide_ints, wide_floats, any_text), any_text)


def prices(good):
    return st.one_of(st.floats(min_value=0, max_value=1e12, exclude_min=True), st.integers(1, 10**12),
                     st.floats(min_value=0.01, max_value=1e5).map(repr)) if good else st.one_of(wide_floats, wide_ints)


def percents(good):
    return st.one_of(st.floats(min_value=0, max_value=100), st.just(-0.0), st.integers(0, 100)) if good else st.one_of(
        wide_floats, wide_ints)


def timestamps(good):
    # Good: up to the fixed NOW; anything: Python's whole range, which the offsets can overflow.
    last = datetime(2025, 12, 31) if good else LAST
    return st.one_of(
        st.datetimes(min_value=FIRST, max_value=last, timezones=offsets),
        st.datetimes(min_value=FIRST, max_value=last),
        st.datetimes(min_value=FIRST, max_value=last, timezones=offsets).map(datetime.isoformat),
    )


# Per field: (a value the field should take, anything at all). None drops the field.
FIELDS = {
    "signal_id": (st.one_of(st.none(), st.text(st.characters(exclude_categories=("C", "Z")), min_size=1, max_size=100)),
                  st.one_of(any_text, st.text(max_size=120))),
    "symbol": (st.text("ABCXYZabcxyz0189./_=^:-", min_size=1, max_size=20),
               st.one_of(st.text("ABCXYZ09./_=^:- \x00\ud800", min_size=1, max_size=24), any_text)),
    "action": (st.sampled_from(["BUY", "sell", " Buy "]), any_text),
    "entry_price": (prices(True), prices(False)),
    "target_price": (st.one_of(st.none(), prices(True)), prices(False)),
    "stop_price": (st.one_of(st.none(), prices(True)), prices(False)),
    "confidence": (percents(True), percents(False)),
    "consensus_agreement": (st.one_of(st.none(), percents(True)), percents(False)),
    "sources_count": (st.one_of(st.none(), st.integers(0, 2**31 - 1)), wide_ints),
    "timestamp": (st.one_of(st.none(), timestamps(True)), timestamps(False)),
    "metadata": (st.one_of(st.none(), st.dictionaries(storable_text, storable_json, max_size=4)),
                 st.dictionaries(any_text, any_json, max_size=4)),
    **{field: (st.one_of(st.none(), printable_text), any_text) for field in (
        "strategy", "asset_type", "data_source", "service_type", "generated_by", "regime")},
    "reasoning": (st.one_of(st.none(), storable_text, st.text(st.characters(exclude_categories=("Cs",)), max_size=400)),
                  with_unstorable(st.text(any_char, max_size=200))),
}
UNKNOWN = (st.dictionaries(storable_text.filter(lambda key: key not in KNOWN_FIELDS and key not in LIFECYCLE_FIELDS),
                           storable_json, max_size=3),
           st.dictionaries(any_text.filter(lambda key: key not in KNOWN_FIELDS and key not in LIFECYCLE_FIELDS),
                           any_json, max_size=3))


# What an import adds (clean_signal(lifecycle=True)).
LIFECYCLE = {
    "outcome": (st.one_of(st.none(), st.sampled_from(["win", " LOSS ", "expired", ""])), any_text),
    "exit_price": (st.one_of(st.none(), prices(True)), prices(False)),
    "exit_timestamp": (st.one_of(st.none(), timestamps(True)), timestamps(False)),
    "created_at": (st.one_of(st.none(), timestamps(True)), timestamps(False)),
    "profit_loss_pct": (st.one_of(st.none(), st.floats(min_value=-1e15, max_value=1e15)), prices(False)),
    "order_id": (st.one_of(st.none(), printable_text), any_text),
    "executor_id": (st.one_of(st.none(), printable_text), any_text),
    "legacy_sha256": (st.one_of(st.none(), st.text("0123456789abcdef", max_size=64)), any_text),
}


@st.composite
def signal_dicts(draw, lifecycle=False):
    # A few fields (often none) get anything at all, the rest a value of their
    # kind, so one hostile field does not hide the others and many are accepted.
    fields = {**FIELDS, **LIFECYCLE} if lifecycle else FIELDS
    choices = st.sampled_from([None, *fields, "unknown keys"])
    hostile = {draw(choices), draw(choices)}
    data = {}
    for field, (good, anything) in fields.items():
        value = draw(anything if field in hostile else good)
        if value is not None:
            data[field] = value
    data.update(draw(UNKNOWN[1] if "unknown keys" in hostile else UNKNOWN[0]))
    return data


# Each class of value a database refused or corrupted, tried on every run
# whatever the generated examples hold.
BASE = {"symbol": "AAPL", "action": "BUY", "entry_price": 100.0, "confidence": 80.0}
KNOWN_CASES = [{**BASE, **case} for case in (
    {"reasoning": "lone \ud800 surrogate"}, {"reasoning": "nul \x00 inside"}, {"regime": "\udc80"},
    {"metadata": {"k": "v\x00"}}, {"metadata": {"k\ud800": 1}}, {"venue\x00": "x"}, {"venue": ["\udfff"]},
    {"sources_count": 2**31}, {"sources_count": 2**31 - 1},
    {"timestamp": "0001-01-01T00:00:00+01:00"}, {"timestamp": "9999-12-31T23:59:59-01:00"},
    {"timestamp": "0001-01-01T00:00:00-01:00"}, {"confidence": -0.0}, {"consensus_agreement": -0.0},
    {"metadata": {"big": 1.5e300}}, {"metadata": {"n": 2**64}}, {"metadata": {"n": [-(2**63), 2**63 - 1]}},
)]
KNOWN_IMPORT_CASES = [{**BASE, **case} for case in (
    {"exit_price": 101.0, "exit_timestamp": "9999-12-31T23:59:59-01:00"}, {"created_at": "0001-01-01T00:00:00+05:00"},
    {"profit_loss_pct": 1e300}, {"profit_loss_pct": -0.0}, {"legacy_sha256": "ab\x00cd"}, {"order_id": "o\ud800"},
    {"outcome": "win", "exit_price": 101.0, "exit_timestamp": "2025-11-18T15:00:00+00:00"},
)]


def same(stored, expected):
    """Equal value and equal JSON type, recursively (1 and 1.0 differ; NaN cannot be stored)."""
    if isinstance(expected, dict):
        return type(stored) is dict and stored.keys() == expected.keys() and all(
            same(stored[key], value) for key, value in expected.items())
    if isinstance(expected, list):
        return type(stored) is list and len(stored) == len(expected) and all(
            same(a, b) for a, b in zip(stored, expected, strict=True))
    return type(stored) is type(expected) and stored == expected


def write_lines(tmp_path, values):
    """Write ``values`` as a journal line through the flusher's own entry point."""
    path = tmp_path / "roundtrip.seg"
    path.write_bytes(journal.encode(values))
    fd = os.open(path, os.O_RDONLY)
    try:
        result, _, count = writer.write_journal_batch(fd, path.name, 0, path.stat().st_size, max_lines=10, final=True)
    finally:
        os.close(fd)
    assert count == 1
    return result


WRITE_PATHS = {
    "journal lines": write_lines,
    "values (COPY / INSERT)": lambda tmp_path, values: write_batch([Incoming(values, "roundtrip")], method="fast"),
    "ORM": lambda tmp_path, values: write_batch([Incoming(values, "roundtrip")], method="orm"),
}


def assert_stored_as_cleaned(values, fields=journal.LINE_FIELDS):
    row = Signal.objects.get(signal_id=values["signal_id"])
    for field in fields:
        if field == "created_at" and field not in values:
            continue  # the time of the write
        expected = values[field] if field in values else writer.DEFAULTS[field]
        stored = getattr(row, field)
        if isinstance(expected, float) and expected == 0:  # -0.0 == 0.0, but their hashes differ
            assert math.copysign(1, stored) == math.copysign(1, expected), (field, stored, expected)
        assert same(stored, expected), (field, stored, expected)
    assert row.sha256 == values["sha256"] and row.hash_matches()
    assert Delivery.objects.filter(signal=row).count() == 1


def roundtrip(tmp_path, paths, *, lifecycle=False, fields=journal.LINE_FIELDS):
    """Run the property over ``paths``; return how many examples were accepted and refused."""
    seen = {"accepted": 0, "refused": 0}

    def check(data):
        try:
            values = clean_signal(data, lifecycle=lifecycle, now=NOW)
        except ValidationError as exc:
            seen["refused"] += 1
            assert exc.message_dict
            for messages in exc.message_dict.values():
                for message in messages:
                    message.encode("utf-8")  # loggable: no raw surrogate echoed back
            return
        seen["accepted"] += 1
        for name in paths:
            result = WRITE_PATHS[name](tmp_path, values)
            assert result.as_dict() == {"stored": 1, "duplicates": 0, "conflicts": 0, "quarantined": 0}, (
                name, result, list(QuarantinedRecord.objects.values_list("reason", flat=True)))
            assert_stored_as_cleaned(values, fields)
            Signal.objects.filter(signal_id=values["signal_id"]).delete()  # its delivery goes with it

    check = given(signal_dicts(lifecycle))(check)
    for case in KNOWN_CASES + (KNOWN_IMPORT_CASES if lifecycle else []):
        check = example(case)(check)
    settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])(check)()
    return seen


def test_what_clean_signal_accepts_is_stored_and_read_back_unchanged(tmp_path):
    seen = roundtrip(tmp_path, list(WRITE_PATHS))
    # The property is only worth something if it held for many accepted signals.
    assert seen["accepted"] >= EXAMPLES // 4, seen
    assert seen["refused"] >= EXAMPLES // 10, seen


def test_what_an_import_may_carry_is_stored_and_read_back_unchanged(tmp_path):
    # Lifecycle fields never go through the journal: imports write values.
    seen = roundtrip(tmp_path, ["values (COPY / INSERT)", "ORM"], lifecycle=True,
                     fields=[*journal.LINE_FIELDS, *LIFECYCLE_FIELDS])
    assert seen["accepted"] >= EXAMPLES // 4, seen
    assert seen["refused"] >= EXAMPLES // 10, seen
