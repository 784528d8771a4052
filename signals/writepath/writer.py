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

Writing new rows has interchangeable methods with the same results, measured
side by side in bench/ingest.py: ``bulk_create`` (``orm``) and the ``fast``
paths. A batch of journal lines takes the fastest: the lines' JSON goes to the
database as one array and the database unpacks it (SQLite ``json_each``,
PostgreSQL ``jsonb_array_elements``) and queues the deliveries in the same
transaction, so no Python runs per signal and the flusher leaves the
interpreter lock to ``log_signal`` while the database works. Only a batch
whose every line is new takes it; anything else (a duplicate, a conflict, a
corrupt line) is rolled back and written by the general path, which decodes
each line. On PostgreSQL a backlog of several segments is written by more than
one connection at once (``in_lanes``). Other records (imports) use SQLite multi-row
``INSERT ... VALUES`` and PostgreSQL ``COPY``.
"""

import functools
import hashlib
import json
import logging
import operator
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, IntegrityError, OperationalError, connection, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from signals.ledger.hashing import canonical_timestamp
from signals.ledger.fields import COLUMN_FIELDS, CONTENT_FIELDS
from signals.models import QuarantinedRecord, Signal, SignalConflict
from signals.writepath import journal
from sync.outbox import enqueue_deliveries, enqueue_inserted_after, queue_sql, queued_in_this_transaction

logger = logging.getLogger(__name__)

# The stored columns, in the catalogue's order (that of every raw insert).
_FIELDS = [Signal._meta.get_field(name) for name in COLUMN_FIELDS]
_DEFAULTS = {f.name: f.get_default() for f in _FIELDS if f.name != "created_at"}
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
        value = values.get(name, _DEFAULTS[name])
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
        logger.warning("a batch of %d was refused (%s); finding the records refused", len(items), _text(exc))
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
            refused = Incoming(None, item.source, raw=raw, error=f"refused by the database: {_text(exc)}")
            return _apply([refused], "orm")
    middle = len(items) // 2
    result = _write_isolating(items[:middle], method)
    result += _write_isolating(items[middle:], method)
    return result


def _text(exc) -> str:
    """Return an error's message as text any database stores (no NUL, no lone surrogate)."""
    return _storable(str(exc))


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; neither database's driver binds a lone surrogate.
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


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
    result.conflicts = _record_conflicts(conflicts)
    result.quarantined = _quarantine(corrupt)
    _enqueue_deliveries(stored)
    return result


def _stored_rows(signal_ids):
    rows = {}
    ids = list(signal_ids)
    for start in range(0, len(ids), SQLITE_MAX_PARAMS):
        for row in Signal.objects.filter(signal_id__in=ids[start:start + SQLITE_MAX_PARAMS]).values(*CONTENT_FIELDS):
            rows[row["signal_id"]] = row
    return rows


def _enqueue_deliveries(signal_ids):
    # The delivery row of each new signal is created in this batch's
    # transaction, so no signal is ever stored without one.
    if not signal_ids:
        return 0
    return enqueue_deliveries(list(signal_ids))


# Journal lines: the database unpacks the batch ----------------------------------------------


class _NotAllNew(Exception):
    """A batch of journal lines holds a signal_id already stored or repeated: the general path writes it."""


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


def segment_writers() -> int:
    """How many journal segments may be written at once, each on its own connection.

    ``SIGNALHUB_FLUSH_WRITERS`` on PostgreSQL, whose backends insert side by
    side; one on SQLite, which lets one writer in at a time.
    """
    return settings.SIGNALHUB_FLUSH_WRITERS if connection.vendor == "postgresql" else 1


def in_lanes(work, items, lanes):
    """Call ``work(item)`` for each item, taken in order by up to ``lanes`` threads at once (this one too).

    Each extra thread writes on its own database connection and closes it when
    done. Once any call fails no lane takes another item; after every lane has
    stopped, the first failure is raised. Without a spare thread (interpreter
    shutdown) everything runs in this one.
    """
    queue = list(items)
    queue.reverse()  # popped from the end: oldest first
    failures = []

    def lane():
        while queue and not failures:
            try:
                item = queue.pop()
            except IndexError:  # another lane took the last one
                return
            try:
                work(item)
            except BaseException as exc:
                failures.append(exc)
                return

    def extra_lane():
        try:
            lane()
        finally:
            connections.close_all()

    threads = []
    for number in range(min(lanes, len(queue)) - 1):
        thread = threading.Thread(target=extra_lane, name=f"{threading.current_thread().name}-lane{number + 2}",
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:  # can't create new thread at interpreter shutdown
            break
        threads.append(thread)
    lane()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


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
    if not batch.isascii() or (connection.vendor == "sqlite" and _lone_surrogate(batch)):
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
    except _NotAllNew:
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
                       len(payloads), _text(exc))
        return None
    return WriteResult(stored=stored)


# A JSON escape of half a surrogate pair without its other half.
_LONE_SURROGATE_RE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                                rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _lone_surrogate(batch: bytes) -> bool:
    # The search runs only on a batch holding a surrogate escape at all
    # (characters beyond the BMP, written as pairs): the good path scans once in C.
    return (b"\\ud" in batch or b"\\uD" in batch) and _LONE_SURROGATE_RE.search(batch) is not None


def _line_column_sql(vendor, params):
    """Return the SELECT list making a row of ``_FIELDS`` from ``j.value`` (one line's JSON array).

    Columns a line does not hold get their model default; ``params`` is
    extended with the values of the placeholders, in order (created_at's).
    """
    columns = []
    for f in _FIELDS:
        if f.name in journal.LINE_FIELDS:
            index = journal.LINE_FIELDS.index(f.name)
            columns.append(_LINE_VALUE_SQL[vendor](f, index))
        elif f.name == "created_at":
            columns.append("%s")
            params.append("created_at")
        elif _DEFAULTS[f.name] is None:
            columns.append("NULL")
        elif _DEFAULTS[f.name] == "":
            columns.append("''")
        else:
            raise ImproperlyConfigured(f"the journal line writer has no default for Signal.{f.name}")
    return ", ".join(columns)


def _sqlite_line_value(f, index):
    value = f"json_extract(j.value, '$[{index}]')"
    if isinstance(f, models.DateTimeField):
        # encode() writes UTC ISO text ("2025-11-18T14:30:00.123456+00:00");
        # Django's SQLite backend stores "2025-11-18 14:30:00.123456".
        value = f"replace(replace({value}, 'T', ' '), '+00:00', '')"
    return value


_POSTGRESQL_TYPES = {"CharField": "text", "TextField": "text", "FloatField": "double precision",
                     "PositiveIntegerField": "integer", "DateTimeField": "timestamp with time zone"}


def _postgresql_line_value(f, index):
    if isinstance(f, models.JSONField):
        return f"(j.value -> {index})"
    # Cast to the base type: a cast to varchar(n) would cut an overlong value
    # instead of refusing it as the column does.
    return f"(j.value ->> {index})::{_POSTGRESQL_TYPES[f.get_internal_type()]}"


_LINE_VALUE_SQL = {"sqlite": _sqlite_line_value, "postgresql": _postgresql_line_value}


@functools.cache
def _sqlite_lines_insert():
    params = []
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    # WHERE true: the upsert clause after a SELECT needs one (SQLite's parsing rule).
    sql = (f'INSERT INTO "{Signal._meta.db_table}" ({columns}) SELECT {_line_column_sql("sqlite", params)} '
           f"FROM json_each(%s) AS j WHERE true ON CONFLICT (signal_id) DO NOTHING")
    return sql, params + ["batch"]


def _insert_lines_sqlite(batch, count):
    sql, params = _sqlite_lines_insert()
    values = {"created_at": sqlite_datetime(timezone.now()), "batch": batch}
    with connection.cursor() as cursor:
        cursor.execute(sql, [values[name] for name in params])
        if cursor.rowcount != count:
            raise _NotAllNew
        # One statement in an IMMEDIATE transaction: its rows took the keys
        # just below the last one, and no other writer can hold any of them.
        first = cursor.lastrowid - count + 1
    if enqueue_inserted_after(first - 1) != count:
        raise _NotAllNew
    return count


@functools.cache
def _postgresql_lines_insert():
    from sync.models import Delivery

    params = []
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    sql = (f'WITH new AS (INSERT INTO "{Signal._meta.db_table}" ({columns}) '
           f'SELECT {_line_column_sql("postgresql", params)} FROM jsonb_array_elements(%s::jsonb) AS j(value) '
           f"ON CONFLICT (signal_id) DO NOTHING RETURNING id), "
           f"queued AS ({queue_sql(Delivery._meta.db_table, 'new s')} RETURNING 1) "
           f"SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM queued)")
    return sql, params + ["batch", "now", "now", "now"]


def _insert_lines_postgresql(batch, count):
    import psycopg

    sql, params = _postgresql_lines_insert()
    now = timezone.now()
    values = {"created_at": now, "now": now, "batch": batch}
    connection.ensure_connection()
    # Bound by the server: Django's cursors bind on the client, which made the
    # batch a literal of several MB in the statement's text for the server to
    # scan (measured: 4% of its time per row, and the quoting in Python).
    # Never prepared, even where OPTIONS turns psycopg's automatic preparing on
    # (Django leaves it off): a named statement would not survive a pooler in
    # transaction mode, and planning is nothing beside the batch.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [values[name] for name in params], prepare=False)
        stored, queued = cursor.fetchone()
    if stored != count:
        raise _NotAllNew
    queued_in_this_transaction(queued)
    return stored


_LINE_INSERTERS = {"sqlite": _insert_lines_sqlite, "postgresql": _insert_lines_postgresql}


# Inserting new rows -------------------------------------------------------------------


_NAMES = [f.name for f in _FIELDS]


def _existing_ids(ids, method) -> set:
    if method == "fast" and connection.vendor == "sqlite":
        # One query per batch: the ids travel as one JSON array parameter.
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT signal_id FROM "{Signal._meta.db_table}" '
                           "WHERE signal_id IN (SELECT value FROM json_each(%s))", [json.dumps(ids)])
            return {row[0] for row in cursor.fetchall()}
    existing = set()
    for start in range(0, len(ids), SQLITE_MAX_PARAMS):
        existing.update(Signal.objects.filter(signal_id__in=ids[start:start + SQLITE_MAX_PARAMS])
                        .values_list("signal_id", flat=True))
    return existing


_ROW_GETTER = operator.itemgetter(*_NAMES)


def _rows(items, created_at=None):
    """Yield each record as a list of column values in ``_FIELDS`` order, defaults filled in."""
    defaults = {name: _DEFAULTS.get(name) for name in _NAMES}
    defaults["created_at"] = timezone.now() if created_at is None else created_at
    for item in items:
        yield list(_ROW_GETTER({**defaults, **item.values}))


def _insert_new(items, method) -> set:
    """Insert the records whose signal_id is not stored yet; return the set of ids inserted."""
    if method == "fast" and connection.vendor == "postgresql":
        return _insert_copy(items)
    ids = [item.values["signal_id"] for item in items]
    existing = _existing_ids(ids, method)
    fresh = [item for item in items if item.values["signal_id"] not in existing]
    if not fresh:
        return set()
    if method == "fast" and connection.vendor == "sqlite":
        # Safe without ON CONFLICT: SQLite transactions here are IMMEDIATE, so
        # no other writer can insert between the SELECT above and this INSERT.
        _insert_values(fresh)
    else:
        Signal.objects.bulk_create([Signal(**item.values) for item in fresh], batch_size=500)
    return {item.values["signal_id"] for item in fresh}


def sqlite_datetime(value):
    """Return the text Django's SQLite backend stores for an aware datetime (naive UTC, ``str()``)."""
    if value.tzinfo is UTC:
        # Cleaned values are already in UTC: the same text without converting.
        return value.isoformat(" ")[:-6]
    return str(value.astimezone(UTC).replace(tzinfo=None))


_DATETIME_INDEXES = [i for i, f in enumerate(_FIELDS) if isinstance(f, models.DateTimeField)]
_JSON_INDEXES = [i for i, f in enumerate(_FIELDS) if isinstance(f, models.JSONField)]


def _sqlite_rows(items):
    """Rows adapted as Django's SQLite backend adapts them (datetimes as naive UTC text, JSON as text)."""
    # created_at is the same for the whole batch: adapted once, not per row.
    created_at = sqlite_datetime(timezone.now())
    for row in _rows(items, created_at):
        for index in _DATETIME_INDEXES:
            value = row[index]
            if value is not None and value is not created_at:
                row[index] = sqlite_datetime(value)
        for index in _JSON_INDEXES:
            value = row[index]
            if value is not None:
                row[index] = "{}" if value == {} else json.dumps(value, cls=_FIELDS[index].encoder)
        yield row


# Statements of 2**k rows only (up to ROWS_PER_INSERT): a batch of any size
# is a handful of statements, and only a few distinct ones are ever prepared.
# (One statement per remainder size filled sqlite3's statement cache with
# hundreds of large prepared statements: 2x the peak memory at 1,000,000 signals.)
ROWS_PER_INSERT = 256


@functools.cache
def _values_insert(rows):
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    marks = "(" + ", ".join("?" for _ in _FIELDS) + ")"
    return f'INSERT INTO "{Signal._meta.db_table}" ({columns}) VALUES {", ".join([marks] * rows)}'


def _insert_values(items):
    """Insert with multi-row ``INSERT ... VALUES`` statements of up to ROWS_PER_INSERT rows each.

    Not executemany: it releases the interpreter lock around every row's step
    and must win it back each time, and while log_signal keeps the lock busy in
    another thread each win can take a whole switch interval (5 ms), which
    starved the flusher (a few hundred rows a second). One statement per
    few hundred rows binds them all in C and releases the lock once.
    """
    connection.ensure_connection()
    db = connection.connection
    per_insert = min(ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_FIELDS))
    per_insert = 1 << max(0, per_insert.bit_length() - 1)  # a power of two
    rows = list(_sqlite_rows(items))
    # The raw sqlite3 cursor: Django's wrapper would rewrite the placeholders.
    # Its errors are wrapped so the caller sees Django's (IntegrityError,
    # OperationalError).
    with connection.wrap_database_errors:
        raw = db.cursor()
        try:
            start = 0
            while start < len(rows):
                size = min(per_insert, 1 << ((len(rows) - start).bit_length() - 1))
                chunk = rows[start:start + size]
                raw.execute(_values_insert(size), [value for row in chunk for value in row])
                start += size
        finally:
            raw.close()


STAGING_TABLE = "signalhub_incoming_signals"


def _insert_copy(items):
    from psycopg.types.json import Jsonb

    table = Signal._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    json_index = [index for index, f in enumerate(_FIELDS) if isinstance(f, models.JSONField)]
    with connection.cursor() as cursor:
        # A per-connection staging table with the ledger's column types and no
        # constraints; emptied at every commit.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM {table} WITH NO DATA")
        cursor.execute(f"TRUNCATE {STAGING_TABLE}")
        # psycopg's own COPY: wrapped so its errors reach the caller as Django's (a refused row a DataError).
        copy_sql = f"COPY {STAGING_TABLE} ({columns}) FROM STDIN"
        with connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:
            for row in _rows(items):
                for index in json_index:
                    # Empty metadata (nearly every signal) as its text: no JSON encoding per row.
                    row[index] = "{}" if row[index] == {} else Jsonb(row[index])
                copy.write_row(row)
        # ON CONFLICT DO NOTHING waits for a concurrent writer of the same id and
        # then skips it; RETURNING tells which rows are new. The ones skipped are
        # compared with the stored row by the caller (duplicate or conflict).
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGING_TABLE} "
            f"ON CONFLICT (signal_id) DO NOTHING RETURNING signal_id")
        return {row[0] for row in cursor.fetchall()}


# Conflicts and quarantine ----------------------------------------------------------------------


def _record_conflicts(conflicts) -> int:
    now = timezone.now()
    for item, incoming, stored in conflicts:
        signal_id = item.values["signal_id"]
        digest = hashlib.sha256(incoming.encode()).hexdigest()
        logger.warning("conflict: signal %s arrived with different content from %s; the stored version is kept",
                       signal_id, item.source)
        updated = SignalConflict.objects.filter(signal_id=signal_id, incoming_digest=digest).update(
            occurrences=F("occurrences") + 1, last_seen=now, source=item.source[:300])
        if not updated:
            SignalConflict.objects.create(
                signal_id=signal_id, stored=json.loads(stored), incoming=json.loads(incoming),
                incoming_digest=digest, source=item.source[:300], first_seen=now, last_seen=now)
    return len(conflicts)


def _quarantine(items) -> int:
    if not items:
        return 0
    rows = []
    for item in items:
        logger.error("quarantined a record from %s: %s", item.source, item.error)
        raw = item.raw.decode("utf-8", "replace") if isinstance(item.raw, bytes) else item.raw
        # A damaged line may hold NUL, an imported record a lone surrogate: kept escaped.
        raw = _storable(raw)
        source = _storable(item.source)
        fingerprint = hashlib.sha256(f"{source}\n{raw}".encode()).hexdigest()
        rows.append(QuarantinedRecord(reason=_storable(item.error or "unknown"), raw=raw, source=source[:300],
                                      fingerprint=fingerprint))
    # ignore_conflicts: the same line replayed again (after a crash) is already
    # quarantined under the same fingerprint; it is counted, not added twice.
    QuarantinedRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(items)
