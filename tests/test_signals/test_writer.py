"""The batch writer: stored once, duplicates counted, conflicts recorded, bad records quarantined."""

import pytest

from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, Signal, SignalConflict
from signals.writepath import journal
from signals.writepath.writer import Incoming, content_of, write_batch
from tests.factories import signal_data

pytestmark = pytest.mark.django_db

METHODS = ["fast", "orm"]


def incoming(source="test", **overrides):
    return Incoming(clean_signal(signal_data(**overrides)), source)


@pytest.mark.parametrize("method", METHODS)
def test_new_signals_are_stored_with_every_field(method):
    items = [incoming(signal_id=f"W-{n}", reasoning="because", sources_count=3, metadata={"k": [1, 2]}) for n in range(5)]
    result = write_batch(items, method=method)
    assert result.stored == 5
    assert sorted(Signal.objects.values_list("signal_id", flat=True)) == [f"W-{n}" for n in range(5)]
    row = Signal.objects.get(signal_id="W-3")
    assert row.reasoning == "because" and row.sources_count == 3 and row.metadata == {"k": [1, 2]}
    assert row.hash_matches()
    assert content_of(items[3].values) == content_of({f: getattr(row, f) for f in items[3].values})


@pytest.mark.parametrize("method", METHODS)
def test_duplicate_signal_id_with_same_content_is_stored_once_and_counted(method):
    first = incoming(signal_id="DUP-1")
    write_batch([first], method=method)
    again = Incoming(dict(first.values), "replay")
    result = write_batch([again, Incoming(dict(first.values), "replay")], method=method)
    assert result.stored == 0 and result.duplicates == 2 and result.conflicts == 0
    assert Signal.objects.filter(signal_id="DUP-1").count() == 1


@pytest.mark.parametrize("method", METHODS)
def test_same_id_with_different_content_is_a_conflict_and_the_first_version_stays(method):
    write_batch([incoming(signal_id="C-1", entry_price=100.0)], method=method)
    result = write_batch([incoming(signal_id="C-1", entry_price=101.0, source="seg@10")], method=method)
    assert result.conflicts == 1 and result.stored == 0
    assert Signal.objects.get(signal_id="C-1").entry_price == 100.0
    conflict = SignalConflict.objects.get(signal_id="C-1")
    assert conflict.stored["entry_price"] == 100.0 and conflict.incoming["entry_price"] == 101.0
    assert conflict.source == "seg@10" and conflict.occurrences == 1
    # The same refused version again (a replay) bumps the count instead of adding a row.
    write_batch([incoming(signal_id="C-1", entry_price=101.0)], method=method)
    assert SignalConflict.objects.get(signal_id="C-1").occurrences == 2


def test_duplicate_and_conflict_inside_one_batch():
    a = incoming(signal_id="IN-1", confidence=50.0)
    result = write_batch([a, Incoming(dict(a.values), "x"), incoming(signal_id="IN-1", confidence=60.0)])
    assert result.stored == 1 and result.duplicates == 1 and result.conflicts == 1
    assert Signal.objects.filter(signal_id="IN-1").exists()
    assert Signal.objects.get(signal_id="IN-1").confidence == 50.0


def test_created_at_does_not_make_a_replay_a_conflict():
    values = clean_signal(signal_data(signal_id="CR-1"))
    write_batch([Incoming(values, "a")])
    later = dict(values, created_at=Signal.objects.get(signal_id="CR-1").created_at.replace(year=2020))
    assert write_batch([Incoming(later, "b")]).duplicates == 1


@pytest.mark.parametrize("method", METHODS)
def test_corrupt_record_is_quarantined_and_the_rest_is_stored(method):
    bad = Incoming(None, "seg@0", raw="garbage\x00line", error="checksum mismatch")
    result = write_batch([incoming(signal_id="Q-1"), bad, incoming(signal_id="Q-2")], method=method)
    assert result.stored == 2 and result.quarantined == 1
    assert Signal.objects.filter(signal_id__in=["Q-1", "Q-2"]).count() == 2
    record = QuarantinedRecord.objects.get()
    assert record.reason == "checksum mismatch" and record.source == "seg@0" and "garbage" in record.raw
    # Replayed again: counted, but not a second row.
    assert write_batch([bad], method=method).quarantined == 1
    assert QuarantinedRecord.objects.count() == 1


@pytest.mark.parametrize("method", METHODS)
def test_row_the_database_refuses_is_quarantined_alone(method):
    refused = incoming(signal_id="R-bad")
    refused.values["symbol"] = "lower case"  # past validation, the check constraint refuses it
    result = write_batch([incoming(signal_id="R-1"), refused, incoming(signal_id="R-2")], method=method)
    assert result.stored == 2 and result.quarantined == 1
    assert sorted(Signal.objects.values_list("signal_id", flat=True)) == ["R-1", "R-2"]
    assert "refused by the database" in QuarantinedRecord.objects.get().reason
    assert not Signal.objects.filter(signal_id="R-bad").exists()


def test_dry_run_stores_nothing_but_reports():
    result = write_batch([incoming(signal_id="D-1")], dry_run=True)
    assert result.stored == 1
    assert not Signal.objects.exists()


def test_journal_line_round_trip_keeps_cleaned_values():
    values = clean_signal(signal_data(metadata={"a": 1}))
    appended, decoded = journal.decode(journal.encode(values)[:-1])
    assert decoded == values and appended > 0


@pytest.mark.parametrize("damage", [
    lambda line: line[:-5],
    lambda line: line.replace(b"AAPL", b"AAPX"),
    lambda line: b"zzzzzzzz" + line[8:],
    lambda line: b"",
])
def test_damaged_journal_line_is_detected(damage):
    line = journal.encode(clean_signal(signal_data()))[:-1]
    with pytest.raises(journal.CorruptLine):
        journal.decode(damage(line))


@pytest.mark.parametrize("value", [
    "2025-11-18T14:30:00+00:00", "2025-11-18T14:30:00.000123+00:00", "2025-11-18T16:30:00.5+02:00",
])
def test_fast_path_stores_datetimes_as_django_does(value):
    from datetime import datetime

    from django.db import connection

    from signals.writepath.sqlite import sqlite_datetime

    moment = datetime.fromisoformat(value)
    if connection.vendor == "sqlite":
        assert sqlite_datetime(moment) == connection.ops.adapt_datetimefield_value(moment)
    write_batch([incoming(signal_id="DT-fast", timestamp=value)], method="fast")
    write_batch([incoming(signal_id="DT-orm", timestamp=value)], method="orm")
    fast, orm = (Signal.objects.get(signal_id=f"DT-{kind}") for kind in ("fast", "orm"))
    assert fast.timestamp == orm.timestamp == moment


@pytest.mark.parametrize("method", METHODS)
def test_each_new_signal_is_queued_for_delivery_in_its_batch(method):
    from sync.models import Delivery

    write_batch([incoming(signal_id="Q-1")], method=method)
    result = write_batch([incoming(signal_id="Q-2"), incoming(signal_id="Q-1")], method=method)
    assert result.stored == 1 and result.duplicates == 1
    deliveries = Delivery.objects.filter(signal__signal_id__in=["Q-1", "Q-2"])
    assert sorted(deliveries.values_list("signal__signal_id", "state")) == [("Q-1", "pending"), ("Q-2", "pending")]


def test_a_batch_that_cannot_queue_its_deliveries_stores_nothing(monkeypatch):
    # Signal and delivery rows commit together or not at all.
    from signals.writepath import writer

    def refuse(signal_ids):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(writer, "enqueue_deliveries", refuse)
    with pytest.raises(RuntimeError):
        write_batch([incoming(signal_id="Q-3")])
    assert not Signal.objects.filter(signal_id="Q-3").exists()


@pytest.mark.parametrize("count", [1, 255, 256, 261, 700])
def test_batches_of_any_size_are_stored_whole_and_queued(count):
    from sync.models import Delivery

    result = write_batch([incoming(signal_id=f"N-{count}-{n}") for n in range(count)], method="fast")
    assert result.stored == count
    assert Signal.objects.filter(signal_id__startswith=f"N-{count}-").count() == count
    assert Delivery.objects.filter(signal__signal_id__startswith=f"N-{count}-").count() == count
