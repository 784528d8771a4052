"""One record the database refuses is quarantined alone; its batch is stored and every writer keeps moving.

Each poison is a journal line whose checksum matches (``journal.encode`` on
values that skipped validation, as a bug or a hand edit would leave them) but
that the database refuses: a constraint added after the line was journaled, a
NUL or a number beyond the column's range on PostgreSQL, a lone surrogate
(text that is not valid UTF-8) on either database.
"""

import io
import json
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.db import connection

from signals.ingest import flush_pending, get_ingestor, log_signal
from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, Signal
from signals.writepath import journal, writer
from signals.writepath.recovery import replay_dead_segments
from sync.models import Delivery
from tests.factories import signal_data

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Poison:
    name: str
    vendors: tuple
    change: dict  # applied to cleaned values, past validation
    message: str  # what the database's refusal says (in the quarantine reason)


POISONS = [
    Poison("constraint-added-later", ("sqlite", "postgresql"), {"symbol": "POISON"}, "test_poisoned_symbol"),
    Poison("nul-in-text", ("postgresql",), {"reasoning": "before\x00after"}, "NUL"),
    Poison("integer-beyond-column", ("postgresql",), {"sources_count": 2**40}, "out of range"),
    Poison("lone-surrogate", ("sqlite", "postgresql"), {"reasoning": "half a pair \ud83d here"}, "surrogate"),
]


@pytest.fixture
def constraint_added_later():
    """A rule added to the ledger after lines were journaled: the symbol POISON is refused."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("CREATE TRIGGER test_poisoned_symbol BEFORE INSERT ON signals_signal "
                           "WHEN NEW.symbol = 'POISON' "
                           "BEGIN SELECT RAISE(ABORT, 'test_poisoned_symbol refuses it'); END")
        else:
            cursor.execute("ALTER TABLE signals_signal ADD CONSTRAINT test_poisoned_symbol "
                           "CHECK (symbol <> 'POISON') NOT VALID")
    try:
        yield POISONS[0]
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER IF EXISTS test_poisoned_symbol")
            else:
                cursor.execute("ALTER TABLE signals_signal DROP CONSTRAINT IF EXISTS test_poisoned_symbol")


@pytest.fixture(params=POISONS, ids=lambda poison: poison.name)
def poison(request):
    poison = request.param
    if connection.vendor not in poison.vendors:
        pytest.skip(f"{connection.vendor} stores {poison.name} values")
    if poison.name == "constraint-added-later":
        request.getfixturevalue("constraint_added_later")
    return poison


def good_values(prefix, count):
    return [clean_signal(signal_data(signal_id=f"{prefix}-{n:05d}")) for n in range(count)]


def poisoned_values(poison, signal_id):
    values = clean_signal(signal_data(signal_id=signal_id))
    values.update(poison.change)
    return values


def assert_quarantined_alone(poison, signal_ids):
    records = list(QuarantinedRecord.objects.order_by("source"))
    assert len(records) == len(signal_ids)
    for record, signal_id in zip(records, sorted(signal_ids), strict=True):
        assert signal_id in record.raw
        assert "refused by the database" in record.reason and poison.message in record.reason
    assert not Signal.objects.filter(signal_id__in=signal_ids).exists()


def assert_stored_and_queued(values_list):
    ids = [values["signal_id"] for values in values_list]
    assert Signal.objects.filter(signal_id__in=ids).count() == len(ids)
    assert Delivery.objects.filter(signal__signal_id__in=ids).count() == len(ids)
    # Every stored row reads back whole (no row the database half-took).
    for row in Signal.objects.filter(signal_id__in=ids):
        assert row.hash_matches()


def test_the_flusher_quarantines_a_poisoned_line_alone_and_its_next_signals_flow(journal_dir, poison):
    before, after = good_values("FLUSH-A", 3), good_values("FLUSH-B", 3)
    bad = poisoned_values(poison, "FLUSH-POISON")
    ingestor = get_ingestor()
    ingestor.append([journal.encode(values) for values in [*before, bad, *after]])

    assert flush_pending(timeout=20) == 6
    assert_stored_and_queued(before + after)
    assert_quarantined_alone(poison, ["FLUSH-POISON"])
    assert ingestor.pending == 0 and ingestor.last_error is None

    later = [log_signal(signal_data(signal_id=f"FLUSH-C-{n}")) for n in range(3)]
    assert flush_pending(timeout=20) == 3
    assert Signal.objects.filter(signal_id__in=later).count() == 3


def dead_segment(journal_dir, lines, name="deadhost-1-abcd-000001.seg"):
    """Write a segment as a dead owner leaves it: nobody holds its lock."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / name
    path.write_bytes(b"".join(lines))
    return path


def test_flush_signals_replays_a_dead_segment_past_its_poisoned_line(journal_dir, poison):
    before, after = good_values("DEAD-A", 4), good_values("DEAD-B", 4)
    bad = poisoned_values(poison, "DEAD-POISON")
    path = dead_segment(journal_dir, [journal.encode(values) for values in [*before, bad, *after]])

    out, err = io.StringIO(), io.StringIO()
    call_command("flush_signals", "--json", stdout=out, stderr=err)
    counts = json.loads(out.getvalue())
    assert (counts["stored"], counts["quarantined"], counts["segments_replayed"], counts["segments_failed"]) \
        == (8, 1, 1, 0)
    assert_stored_and_queued(before + after)
    assert_quarantined_alone(poison, ["DEAD-POISON"])
    assert not path.exists()


def test_recovery_passes_two_poisoned_lines_in_a_large_batch_and_stores_every_other(journal_dir, poison, settings):
    settings.SIGNALHUB_BATCH_MAX = 5000
    good = good_values("BIG", 3000)
    bad = [poisoned_values(poison, "BIG-POISON-1"), poisoned_values(poison, "BIG-POISON-2")]
    lines = [journal.encode(values) for values in good]
    lines.insert(17, journal.encode(bad[0]))
    lines.insert(2500, journal.encode(bad[1]))
    dead_segment(journal_dir, lines)

    report = replay_dead_segments()
    assert report.segments_failed == 0 and report.errors == []
    assert report.written == {"stored": 3000, "duplicates": 0, "conflicts": 0, "quarantined": 2}
    assert_stored_and_queued(good)
    assert_quarantined_alone(poison, ["BIG-POISON-1", "BIG-POISON-2"])
    # Replayed again (a crash before retiring): duplicates, and each refusal quarantined once.
    dead_segment(journal_dir, lines)
    again = replay_dead_segments()
    assert again.written == {"stored": 0, "duplicates": 3000, "conflicts": 0, "quarantined": 2}
    assert QuarantinedRecord.objects.count() == 2


@pytest.mark.parametrize("method", ["fast", "orm"])
def test_write_batch_of_decoded_records_quarantines_the_refused_one_alone(poison, method):
    good = good_values(f"REC-{method}", 40)
    bad = poisoned_values(poison, f"REC-{method}-POISON")
    items = [writer.Incoming(values, f"test:{n}") for n, values in enumerate([*good[:25], bad, *good[25:]])]
    result = writer.write_batch(items, method=method)
    assert result.as_dict() == {"stored": 40, "duplicates": 0, "conflicts": 0, "quarantined": 1}
    assert_stored_and_queued(good)
    assert_quarantined_alone(poison, [f"REC-{method}-POISON"])


def test_import_signals_quarantines_a_record_a_later_constraint_refuses_and_goes_on(tmp_path, constraint_added_later):
    # Only a rule validation cannot know of: import validates every record first.
    path = tmp_path / "signals.jsonl"
    records = [signal_data(signal_id=f"IMP-{n}", symbol="POISON" if n == 5 else "AAPL") for n in range(12)]
    for record in records:
        record["timestamp"] = record["timestamp"].isoformat()
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = io.StringIO()
    call_command("import_signals", str(path), "--format", "jsonl", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["imported"], report["rejected"], report["reasons"]["database"]["count"]) == (11, 1, 1)
    assert_stored_and_queued([{"signal_id": f"IMP-{n}"} for n in range(12) if n != 5])
    assert_quarantined_alone(constraint_added_later, ["IMP-5"])
    assert QuarantinedRecord.objects.get().source == f"{path.name}:line 6"
