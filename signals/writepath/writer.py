"""The batch writer: one transaction per batch, every record accounted for.

Each record of a batch ends up exactly one of:

- stored (a new row, and its delivery row in the same transaction);
- a duplicate (its signal_id is stored with the same content: counted only);
- a conflict (its signal_id is stored with different content: the stored row
  stays, both versions go to ``SignalConflict``);
- quarantined (a corrupt journal line, or a row the database refuses:
  ``QuarantinedRecord`` with the reason; the rest of the batch proceeds).

Database errors that may pass (locked, down, connection lost) propagate to the
caller, which keeps the records in the journal and retries later.

A batch of journal lines whose every signal is new goes to the database as one
JSON array that it unpacks itself (``sqlite``, ``postgresql``); anything else
is rolled back and written by the general path here, which decodes each line.
This is the one module under ``signals`` that imports ``sync``: it queues each
stored signal's delivery through ``sync.outbox`` in the same transaction.
"""

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from signals.ledger.fields import CONTENT_FIELDS
from signals.ledger.hashing import canonical_timestamp
from signals.models import Signal
from signals.writepath import journal, postgresql, sqlite
from signals.writepath.columns import DEFAULTS, NotAllNew
from signals.writepath.quarantine import error_text, quarantine, record_conflicts
from sync.outbox import enqueue_deliveries, enqueue_inserted_after, queue_sql, queued_in_this_transaction

logger = logging.getLogger(__name__)

SQLITE_MAX_PARAMS = 900


@dataclass(slots=True)
class Incoming:
    """One record handed to the writer: cleaned ``values``, or None with the ``error`` that spoiled it.

    A journal line read by the flusher comes with its checked JSON ``payload``
    instead, and its values are decoded only if the general path needs them.
    """

    values: dict | None
    source: str  # where it came from: "<segment>@<offset>" or "<file>:<line>"
    raw: str | bytes = ""  # kept for quarantine (bytes: a journal line, decoded only if quarantined)
    error: str | None = None
    payload: bytes | None = None

    @classmethod
    def from_line(cls, segment_name, line: journal.Line):
        source = f"{segment_name}@{line.offset}"
        if line.error:
            return cls(None, source, raw=line.raw, error=line.error)
        return cls(line.values, source, raw=line.raw, payload=line.payload)

    def load(self):
        """Decode the payload's values if not done yet; a line that cannot be a signal gets its ``error``."""
        if self.values is None and self.error is None and self.payload is not None:
            try:
                self.values = journal.decode_payload(self.payload)
            except journal.CorruptLine as exc:
                self.error = str(exc)


@dataclass
class WriteResult:
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    quarantined: int = 0

    def __iadd__(self, other):
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.quarantined += other.quarantined
        return self

    @property
    def resolved(self):
        return self.stored + self.duplicates + self.conflicts + self.quarantined

    def as_dict(self):
        return {"stored": self.stored, "duplicates": self.duplicates,
                "conflicts": self.conflicts, "quarantined": self.quarantined}


def content_of(values) -> str:
    """Return the canonical text of a signal's content (compared to tell duplicates from conflicts)."""
    content = {}
    for name in CONTENT_FIELDS:
        value = values.get(name, DEFAULTS[name])
        if name == "timestamp":
            value = canonical_timestamp(value)
        elif isinstance(value, int) and not isinstance(value, bool) and name != "sources_count":
            value = float(value)
        content[name] = value
    return json.dumps(content, sort_keys=True, default=str)


def write_batch(items, *, dry_run=False, method=None) -> WriteResult:
    """Write ``items`` (a list of ``Incoming``) in one transaction and return what became of each.

    If the database refuses a record (``REFUSALS``), the batch is written
    again, split in halves around the refusal, so that only that record is
    quarantined and the rest is stored.
    """
    method = method or settings.SIGNALHUB_WRITE_METHOD
    result = _write_lines(items, dry_run) if method == "fast" else None
    if result is not None:
        return result
    return _write_general(items, dry_run, method)


# What the database (or its driver, binding a value) says about one record:
# a constraint, a value out of a column's range or type, text it cannot hold
# (NUL on PostgreSQL, a lone surrogate that is not UTF-8). Anything else (the
# database down, locked, a lost connection) propagates: the caller keeps the
# records and retries.
REFUSALS = (IntegrityError, DataError, UnicodeError, OverflowError)


def _write_general(items, dry_run, method) -> WriteResult:
    """The general path: decode what needs it, then account for every record (``_apply``)."""
    try:
        with transaction.atomic():
            result = _apply(items, method)
            if dry_run:
                transaction.set_rollback(True)
        return result
    except REFUSALS as exc:
        logger.warning("a batch of %d was refused (%s); finding the records refused", len(items), error_text(exc))
    # Only after a refusal, so the batch that goes through pays nothing for it.
    with transaction.atomic():
        result = _write_isolating(items, method)
        if dry_run:
            transaction.set_rollback(True)
    return result


def _write_isolating(items, method) -> WriteResult:
    """Write ``items`` in a savepoint; if refused, write each half the same way. A single refused record is quarantined.

    k refused records among n cost about 2k log2(n) attempts, each a batch
    statement: a poisoned line in a backlog of 20,000 is found in a few dozen.
    """
    try:
        with transaction.atomic():
            # One record goes by the ORM: what it refuses is refused by Django's own insert, not a fast path's.
            return _apply(items, method if len(items) > 1 else "orm")
    except REFUSALS as exc:
        if len(items) == 1:
            item = items[0]
            raw = item.raw or (json.dumps(item.values, default=str) if item.values is not None else "")
            refused = Incoming(None, item.source, raw=raw, error=f"refused by the database: {error_text(exc)}")
            return _apply([refused], "orm")
    middle = len(items) // 2
    result = _write_isolating(items[:middle], method)
    result += _write_isolating(items[middle:], method)
    return result


def _apply(items, method) -> WriteResult:
    result = WriteResult()
    for item in items:
        item.load()
    corrupt = [item for item in items if item.values is None]
    firsts, repeats = {}, []
    for item in items:
        if item.values is not None:
            signal_id = item.values["signal_id"]
            if signal_id in firsts:
                repeats.append(item)
            else:
                firsts[signal_id] = item

    new_ids = _insert_new(list(firsts.values()), method) if firsts else set()
    stored = [signal_id for signal_id in firsts if signal_id in new_ids]
    result.stored = len(stored)

    # Everything not new is compared with what is stored.
    compare = [item for signal_id, item in firsts.items() if signal_id not in new_ids] + repeats
    # A repeat of a signal stored by this very batch is compared with that first copy.
    stored_content = {item.values["signal_id"]: content_of(firsts[item.values["signal_id"]].values)
                      for item in repeats if item.values["signal_id"] in new_ids}
    missing = {item.values["signal_id"] for item in compare} - stored_content.keys()
    stored_rows = _stored_rows(missing)
    stored_content.update({signal_id: content_of(row) for signal_id, row in stored_rows.items()})
    conflicts = []
    for item in compare:
        signal_id = item.values["signal_id"]
        incoming = content_of(item.values)
        if signal_id not in stored_content:
            # Not new and not stored: cannot happen inside one transaction; never drop it silently.
            corrupt.append(Incoming(None, item.source, raw=item.raw, error="neither stored nor found after the insert"))
        elif incoming == stored_content[signal_id]:
            result.duplicates += 1
        else:
            conflicts.append((item, incoming, stored_content[signal_id]))
    result.conflicts = record_conflicts(conflicts)
    result.quarantined = quarantine(corrupt)
    queue_deliveries(stored)
    return result


def _stored_rows(signal_ids):
    rows = {}
    ids = list(signal_ids)
    for start in range(0, len(ids), SQLITE_MAX_PARAMS):
        for row in Signal.objects.filter(signal_id__in=ids[start:start + SQLITE_MAX_PARAMS]).values(*CONTENT_FIELDS):
            rows[row["signal_id"]] = row
    return rows


def queue_deliveries(signal_ids):
    """Queue a delivery for each of these stored signals (by signal_id) in the caller's transaction; return the count.

    The delivery row of each new signal is created in its batch's transaction,
    so no signal is ever stored without one.
    """
    if not signal_ids:
        return 0
    return enqueue_deliveries(list(signal_ids))


# Journal lines: the database unpacks the batch ----------------------------------------------


def _write_lines(items, dry_run) -> WriteResult | None:
    """Store a batch of journal lines whose every signal is new, in one transaction; else None.

    The lines' payloads go to the database as one JSON array; it makes the rows
    and their deliveries. None (nothing written) if any item is not a checked
    journal line, or any signal_id is already stored or repeated in the batch,
    or the database refuses a row: the caller then writes the batch by the
    general path, which decodes each line and sorts out duplicates, conflicts
    and refused rows.
    """
    if any(item.payload is None for item in items):
        return None
    return _write_payloads([item.payload for item in items], dry_run)


def write_journal_batch(fd, segment_name, start, end, *, max_lines, final):
    """Write the next batch of a segment's lines from byte ``start``; return ``(result, offset after it, lines)``.

    None when there is no whole line to write. The flusher's and recovery's
    way: checksums checked in bulk and the payloads handed to the database
    (``_write_payloads``); if anything is off (a bad line, an id already
    stored, ``SIGNALHUB_WRITE_METHOD=orm``) the same lines go through the
    general path, one ``Incoming`` each.
    """
    if settings.SIGNALHUB_WRITE_METHOD == "fast":
        read = journal.read_payloads(fd, start, end, max_lines=max_lines)
        if read is not None and read[0]:
            result = _write_payloads(read[0], dry_run=False)
            if result is not None:
                return result, read[1], len(read[0])
    lines = journal.read_lines(fd, start, end, max_lines=max_lines, final=final, decode=False)
    if not lines:
        return None
    # Straight to the general path: the database path has declined these lines already (or cannot take them).
    items = [Incoming.from_line(segment_name, line) for line in lines]
    return _write_general(items, False, settings.SIGNALHUB_WRITE_METHOD), lines[-1].end, len(lines)


def _write_payloads(payloads, dry_run) -> WriteResult | None:
    inserter = _LINE_INSERTERS.get(connection.vendor)
    if inserter is None or not payloads:
        return None
    batch = b"[" + b",".join(payloads) + b"]"
    if not batch.isascii() or (connection.vendor == "sqlite" and sqlite.lone_surrogate(batch)):
        # Never from encode(), which writes ASCII; SQLite would store a lone
        # surrogate as invalid UTF-8. The general path refuses such a record alone.
        logger.warning("a batch of %d journal lines holds text that is not UTF-8; decoding them one by one",
                       len(payloads))
        return None
    batch = batch.decode("ascii")
    try:
        with transaction.atomic():
            stored = inserter(batch, len(payloads))
            if dry_run:
                transaction.set_rollback(True)
    except NotAllNew:
        return None
    except OperationalError as exc:
        # A payload the database cannot read as JSON (never one encode() wrote).
        if "JSON" not in str(exc):
            raise
        logger.warning("the database could not read a batch of %d journal lines (%s); decoding them one by one",
                       len(payloads), exc)
        return None
    except REFUSALS as exc:
        logger.warning("the database refused a batch of %d journal lines (%s); decoding them one by one",
                       len(payloads), error_text(exc))
        return None
    return WriteResult(stored=stored)


def _insert_lines_sqlite(batch, count):
    first = sqlite.insert_lines(batch, count)
    if enqueue_inserted_after(first - 1) != count:
        raise NotAllNew
    return count


def _insert_lines_postgresql(batch, count):
    from sync.models import Delivery

    stored, queued = postgresql.insert_lines(batch, count, queue_sql(Delivery._meta.db_table, "new s"), timezone.now())
    queued_in_this_transaction(queued)
    return stored


_LINE_INSERTERS = {"sqlite": _insert_lines_sqlite, "postgresql": _insert_lines_postgresql}


# Inserting new rows -------------------------------------------------------------------


def _existing_ids(ids, method) -> set:
    if method == "fast" and connection.vendor == "sqlite":
        return sqlite.existing_ids(ids)
    existing = set()
    for start in range(0, len(ids), SQLITE_MAX_PARAMS):
        existing.update(Signal.objects.filter(signal_id__in=ids[start:start + SQLITE_MAX_PARAMS])
                        .values_list("signal_id", flat=True))
    return existing


def _insert_new(items, method) -> set:
    """Insert the records whose signal_id is not stored yet; return the set of ids inserted."""
    if method == "fast" and connection.vendor == "postgresql":
        return postgresql.insert_records(items)
    ids = [item.values["signal_id"] for item in items]
    existing = _existing_ids(ids, method)
    fresh = [item for item in items if item.values["signal_id"] not in existing]
    if not fresh:
        return set()
    if method == "fast" and connection.vendor == "sqlite":
        # Safe without ON CONFLICT: SQLite transactions here are IMMEDIATE, so
        # no other writer can insert between the SELECT above and this INSERT.
        sqlite.insert_records(fresh)
    else:
        Signal.objects.bulk_create([Signal(**item.values) for item in fresh], batch_size=500)
    return {item.values["signal_id"] for item in fresh}
