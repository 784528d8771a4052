"""Journal lines written by the database-side path: the same rows as the ORM, or the general path."""

import json
import os
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, Signal, SignalConflict
from signals.writepath import journal, writer
from signals.writepath.writer import Incoming, write_batch
from sync.models import Delivery
from tests.factories import signal_data

pytestmark = pytest.mark.django_db

# Every column a generator sets, in shapes the fast path must carry unchanged.
SHAPES = [
    {},
    {"target_price": None, "stop_price": None, "strategy": None},
    {"timestamp": datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC), "confidence": 0, "entry_price": 1e-6},
    {"reasoning": 'line one\nline "two" \\ tab\t and é, 日本, \U0001f4c8', "regime": "bear", "sources_count": 0,
     "consensus_agreement": 99.5, "service_type": "alerts", "generated_by": "g-7", "data_source": "x"},
    {"metadata": {"nested": {"list": [1, 2.5, None, True]}, "ünïcode": "ß", "empty": {}}},
    {"symbol": "BRK/B", "action": "sell", "entry_price": 999999999999.0, "asset_type": "crypto"},
    {"signal_id": "ID with spaces & ünïcode ✓"},
]


def lines_read_back(tmp_path, values_list, junk=()):
    """Journal ``values_list`` (and raw ``junk`` lines) to a file and read it back as the flusher does."""
    path = tmp_path / "writer-test.seg"
    path.write_bytes(b"".join([journal.encode(values) for values in values_list] + list(junk)))
    fd = os.open(path, os.O_RDONLY)
    try:
        lines = journal.read_lines(fd, 0, path.stat().st_size, max_lines=10_000, final=True, decode=False)
    finally:
        os.close(fd)
    assert all(line.values is None for line in lines)
    return [Incoming.from_line(path.name, line) for line in lines]


def segment_batch(tmp_path, values_list):
    """Journal ``values_list`` to a segment file and write it as the flusher does; return (batch, file size)."""
    path = tmp_path / "batch.seg"
    path.write_bytes(b"".join(journal.encode(values) for values in values_list))
    fd = os.open(path, os.O_RDONLY)
    try:
        size = path.stat().st_size
        return writer.write_journal_batch(fd, path.name, 0, size, max_lines=10_000, final=True), size
    finally:
        os.close(fd)


def stored_row(signal_id):
    row = Signal.objects.filter(signal_id=signal_id).values().get()
    return {key: value for key, value in row.items() if key not in ("id", "signal_id", "sha256", "created_at")}


def checked_line(payload: bytes) -> bytes:
    """A line whose checksum matches ``payload``, whatever it holds."""
    data = b"1700000000000 " + payload
    return b"%08x %s\n" % (zlib.crc32(data), data)


def test_journal_lines_are_stored_exactly_as_the_orm_stores_the_same_values(tmp_path):
    by_lines = [clean_signal(signal_data(**shape)) for shape in SHAPES]
    by_orm = [clean_signal(signal_data(**{**shape, "signal_id": f"ORM-{n}"})) for n, shape in enumerate(SHAPES)]

    result = writer._write_lines(lines_read_back(tmp_path, by_lines), dry_run=False)
    assert result is not None and result.stored == len(SHAPES)  # the database-side path, not the general one
    assert write_batch([Incoming(values, "orm") for values in by_orm], method="orm").stored == len(SHAPES)

    for line_values, orm_values in zip(by_lines, by_orm, strict=True):
        assert stored_row(line_values["signal_id"]) == stored_row(orm_values["signal_id"])
        row = Signal.objects.get(signal_id=line_values["signal_id"])
        assert row.sha256 == line_values["sha256"] and row.hash_matches()
    # The same created_at for the whole batch, and one pending delivery per signal.
    ids = [values["signal_id"] for values in by_lines]
    assert Signal.objects.filter(signal_id__in=ids).values("created_at").distinct().count() == 1
    assert sorted(Delivery.objects.filter(signal__signal_id__in=ids).values_list("signal__signal_id", "state")) == \
        sorted((signal_id, "pending") for signal_id in ids)


@pytest.mark.parametrize("count", [1, 700])
def test_consecutive_line_batches_each_queue_exactly_their_own_deliveries(tmp_path, count):
    first = [clean_signal(signal_data()) for _ in range(count)]
    assert write_batch(lines_read_back(tmp_path, first)).stored == count
    # Rows removed in between leave gaps in the keys: the next batch still queues only its own.
    Signal.objects.filter(signal_id=first[-1]["signal_id"]).delete()
    second = [clean_signal(signal_data()) for _ in range(count)]
    assert write_batch(lines_read_back(tmp_path, second)).stored == count
    assert Delivery.objects.count() == 2 * count - 1
    assert not Signal.objects.filter(delivery__isnull=True).exists()


def test_a_line_batch_with_stored_or_repeated_ids_is_written_by_the_general_path(tmp_path):
    stored = clean_signal(signal_data(signal_id="L-STORED"))
    write_batch([Incoming(stored, "earlier")])
    new = clean_signal(signal_data(signal_id="L-NEW"))
    changed = dict(stored, confidence=12.0)
    batch = [stored, new, changed, new]

    # The database-side path writes nothing for it ...
    assert writer._write_lines(lines_read_back(tmp_path, batch), dry_run=False) is None
    assert not Signal.objects.filter(signal_id="L-NEW").exists() and not Delivery.objects.filter(
        signal__signal_id="L-NEW").exists()
    # ... and write_batch accounts for every line.
    result = write_batch(lines_read_back(tmp_path, batch))
    assert result.as_dict() == {"stored": 1, "duplicates": 2, "conflicts": 1, "quarantined": 0}
    assert Signal.objects.get(signal_id="L-STORED").confidence == stored["confidence"]
    assert SignalConflict.objects.get().incoming["confidence"] == 12.0
    assert Delivery.objects.filter(signal__signal_id="L-NEW").count() == 1


def test_a_line_the_database_refuses_is_quarantined_alone(tmp_path):
    good = [clean_signal(signal_data()) for _ in range(3)]
    refused = clean_signal(signal_data(signal_id="L-REFUSED"))
    refused["symbol"] = "lower case"  # past validation (a bug, a hand edit): the check constraint refuses it
    result = write_batch(lines_read_back(tmp_path, [good[0], refused, *good[1:]]))
    assert result.as_dict() == {"stored": 3, "duplicates": 0, "conflicts": 0, "quarantined": 1}
    assert not Signal.objects.filter(signal_id="L-REFUSED").exists()
    assert "refused by the database" in QuarantinedRecord.objects.get().reason


@pytest.mark.parametrize("payload", [b"[1, 2,", b'{"signal_id": 7}', b"[" + b"null," * 18 + b"null]", b"\"text\""])
def test_a_checked_line_that_is_not_a_signal_is_quarantined_and_the_rest_stored(tmp_path, payload):
    good = [clean_signal(signal_data()) for _ in range(2)]
    items = lines_read_back(tmp_path, good, junk=[checked_line(payload)])
    assert items[-1].error is None and items[-1].payload == payload  # the checksum matched
    result = write_batch(items)
    assert result.as_dict() == {"stored": 2, "duplicates": 0, "conflicts": 0, "quarantined": 1}
    assert QuarantinedRecord.objects.get().raw.endswith(payload.decode())


def test_a_dry_run_of_journal_lines_stores_nothing(tmp_path):
    result = write_batch(lines_read_back(tmp_path, [clean_signal(signal_data()) for _ in range(3)]), dry_run=True)
    assert result.stored == 3
    assert not Signal.objects.exists() and not Delivery.objects.exists()


def test_a_line_holds_the_values_as_an_array_in_line_fields_order():
    values = clean_signal(signal_data(reasoning="why"))
    appended_ms, payload = journal.check(journal.encode(values, now_ms=123)[:-1])
    row = json.loads(payload)
    assert appended_ms == 123 and len(row) == len(journal.LINE_FIELDS)
    assert dict(zip(journal.LINE_FIELDS, row, strict=True))["reasoning"] == "why"
    assert journal.decode_payload(payload) == values


def test_a_line_written_as_a_mapping_still_decodes():
    # Lines were JSON objects before they were arrays; a journal left from then is still replayed.
    values = clean_signal(signal_data())
    old = json.dumps({**values, "timestamp": values["timestamp"].isoformat()}).encode()
    assert journal.decode(checked_line(old)[:-1])[1] == values


def test_a_field_a_line_cannot_hold_is_refused_not_dropped():
    values = clean_signal(signal_data())
    with pytest.raises(ValueError, match="outcome"):
        journal.encode({**values, "outcome": "win"})


def test_the_bulk_read_gives_the_same_payloads_and_offsets_as_the_line_reader(tmp_path):
    path = tmp_path / "bulk.seg"
    whole = b"".join(journal.encode(clean_signal(signal_data())) for _ in range(10))
    path.write_bytes(whole + b"0badc0de 17000 [torn")  # a torn last line: never part of a batch
    fd = os.open(path, os.O_RDONLY)
    try:
        size = path.stat().st_size
        lines = journal.read_lines(fd, 0, size, max_lines=100, final=False, decode=False)
        offset, batches = 0, []
        while (read := journal.read_payloads(fd, offset, size, max_lines=4)) is not None and read[0]:
            batches.append(read[0])
            offset = read[1]
        assert [len(batch) for batch in batches] == [4, 4, 2] and offset == len(whole)
        assert [payload for batch in batches for payload in batch] == [line.payload for line in lines]
        assert journal.read_payloads(fd, lines[4].offset, size, max_lines=4)[1] == lines[7].end
        # A damaged line anywhere in the range: the caller must read it line by line.
        path.write_bytes(whole[:100] + b"X" + whole[101:])
        assert journal.read_payloads(fd, 0, len(whole), max_lines=100) is None
    finally:
        os.close(fd)


@pytest.mark.parametrize("method", ["fast", "orm"])
def test_a_segment_batch_is_written_whole_by_either_method(tmp_path, settings, method):
    settings.SIGNALHUB_WRITE_METHOD = method
    cleaned = [clean_signal(signal_data()) for _ in range(5)]
    (result, end, count), size = segment_batch(tmp_path, cleaned)
    assert (result.stored, end, count) == (5, size, 5)
    assert Delivery.objects.filter(signal__signal_id__in=[values["signal_id"] for values in cleaned]).count() == 5


def test_a_declined_segment_batch_goes_to_the_general_path_without_a_second_try(tmp_path, monkeypatch):
    cleaned = [clean_signal(signal_data()) for _ in range(4)]
    write_batch([Incoming(cleaned[0], "earlier")])  # a replay: the first line is already stored
    tries = []
    inserter = writer._LINE_INSERTERS[connection.vendor]
    monkeypatch.setitem(writer._LINE_INSERTERS, connection.vendor, lambda *args: tries.append(1) or inserter(*args))
    (result, _, count), _ = segment_batch(tmp_path, cleaned)
    assert (result.stored, result.duplicates, count) == (3, 1, 4)
    assert tries == [1]


def test_a_timestamp_in_another_zone_is_journaled_and_stored_as_the_same_instant_in_utc(tmp_path):
    # The SQLite line insert turns "...+00:00" text into Django's stored form: encode() must write UTC.
    values = clean_signal(signal_data())
    moment = datetime(2025, 6, 1, 16, 30, 5, 250000, tzinfo=timezone(timedelta(hours=2)))
    values["timestamp"] = moment
    payload = journal.check(journal.encode(values)[:-1])[1]
    assert json.loads(payload)[journal.LINE_FIELDS.index("timestamp")] == "2025-06-01T14:30:05.250000+00:00"
    (result, _, _), _ = segment_batch(tmp_path, [values])
    assert result.stored == 1
    assert Signal.objects.get(signal_id=values["signal_id"]).timestamp == moment


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side binding is PostgreSQL's")
def test_line_batches_leave_no_prepared_statement_a_pooler_would_lose(tmp_path):
    # With automatic preparing on (OPTIONS prepare_threshold; Django leaves it off by default),
    # psycopg names a statement once it has run that many times: this one must stay unnamed.
    connection.ensure_connection()
    connection.connection.prepare_threshold = 1
    try:
        for batch in range(3):
            directory = tmp_path / str(batch)
            directory.mkdir()
            values_list = [clean_signal(signal_data(signal_id=f"P{batch}-{n}")) for n in range(3)]
            assert write_batch(lines_read_back(directory, values_list)).stored == 3
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
    finally:
        connection.connection.prepare_threshold = None
    assert Signal.objects.count() == 9
