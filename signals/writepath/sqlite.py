"""The write path's SQL on SQLite: journal lines unpacked by ``json_each``, and multi-row inserts.

Rows are adapted as Django's SQLite backend adapts them (datetimes as naive
UTC text, JSON as text), so what is stored reads back as the ORM's own.
"""

import functools
import json
import re
import sqlite3
from datetime import UTC

from django.db import connection, models
from django.utils import timezone

from signals.writepath.columns import COLUMNS, FIELDS, TABLE, NotAllNew, line_columns, rows

# Statements of 2**k rows only (up to ROWS_PER_INSERT): a batch of any size
# is a handful of statements, and only a few distinct ones are ever prepared.
# (One statement per remainder size filled sqlite3's statement cache with
# hundreds of large prepared statements, each holding on to its memory.)
ROWS_PER_INSERT = 256


def sqlite_datetime(value):
    """Return the text Django's SQLite backend stores for an aware datetime (naive UTC, ``str()``)."""
    if value.tzinfo is UTC:
        # Cleaned values are already in UTC: the same text without converting.
        return value.isoformat(" ")[:-6]
    return str(value.astimezone(UTC).replace(tzinfo=None))


# Journal lines ----------------------------------------------------------------------------


# A JSON escape of half a surrogate pair without its other half.
_LONE_SURROGATE_RE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                                rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def lone_surrogate(batch: bytes) -> bool:
    """Return True if a batch of JSON holds a lone surrogate escape (SQLite would store invalid UTF-8)."""
    # The search runs only on a batch holding a surrogate escape at all
    # (characters beyond the BMP, written as pairs): the good path scans once in C.
    return (b"\\ud" in batch or b"\\uD" in batch) and _LONE_SURROGATE_RE.search(batch) is not None


def _line_value(f, index):
    value = f"json_extract(j.value, '$[{index}]')"
    if isinstance(f, models.DateTimeField):
        # encode() writes UTC ISO text ("2025-11-18T14:30:00.123456+00:00");
        # Django's SQLite backend stores "2025-11-18 14:30:00.123456".
        value = f"replace(replace({value}, 'T', ' '), '+00:00', '')"
    return value


@functools.cache
def _lines_insert():
    params = []
    # WHERE true: the upsert clause after a SELECT needs one (SQLite's parsing rule).
    sql = (f'INSERT INTO "{TABLE}" ({COLUMNS}) SELECT {line_columns(_line_value, params)} '
           f"FROM json_each(%s) AS j WHERE true ON CONFLICT (signal_id) DO NOTHING")
    return sql, params + ["batch"]


def insert_lines(batch, count) -> int:
    """Insert ``count`` journal lines (``batch``: their JSON array); return the primary key of the first.

    NotAllNew unless every line made a row.
    """
    sql, params = _lines_insert()
    values = {"created_at": sqlite_datetime(timezone.now()), "batch": batch}
    with connection.cursor() as cursor:
        cursor.execute(sql, [values[name] for name in params])
        if cursor.rowcount != count:
            raise NotAllNew
        # One statement in an IMMEDIATE transaction: its rows took the keys
        # just below the last one, and no other writer can hold any of them.
        return cursor.lastrowid - count + 1


# Records ----------------------------------------------------------------------------------


def existing_ids(ids) -> set:
    """Return which of ``ids`` are stored, in one query: the ids travel as one JSON array parameter."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT signal_id FROM "{TABLE}" '
                       "WHERE signal_id IN (SELECT value FROM json_each(%s))", [json.dumps(ids)])
        return {row[0] for row in cursor.fetchall()}


_DATETIME_INDEXES = [i for i, f in enumerate(FIELDS) if isinstance(f, models.DateTimeField)]
_JSON_INDEXES = [i for i, f in enumerate(FIELDS) if isinstance(f, models.JSONField)]


def sqlite_rows(items):
    """Rows adapted as Django's SQLite backend adapts them (datetimes as naive UTC text, JSON as text)."""
    # created_at is the same for the whole batch: adapted once, not per row.
    created_at = sqlite_datetime(timezone.now())
    for row in rows(items, created_at):
        for index in _DATETIME_INDEXES:
            value = row[index]
            if value is not None and value is not created_at:
                row[index] = sqlite_datetime(value)
        for index in _JSON_INDEXES:
            value = row[index]
            if value is not None:
                row[index] = "{}" if value == {} else json.dumps(value, cls=FIELDS[index].encoder)
        yield row


@functools.cache
def _values_insert(rows):
    marks = "(" + ", ".join("?" for _ in FIELDS) + ")"
    return f'INSERT INTO "{TABLE}" ({COLUMNS}) VALUES {", ".join([marks] * rows)}'


def insert_records(items):
    """Insert cleaned records (each ``item.values``) as new rows of the ledger."""
    insert_rows(connection, list(sqlite_rows(items)))


def insert_rows(db_connection, rows):
    """Insert rows of column values (``FIELDS`` order, adapted) with multi-row ``INSERT ... VALUES`` statements.

    Not executemany: it releases the interpreter lock around every row's step
    and must win it back each time, and while log_signal keeps the lock busy in
    another thread each win can take a whole switch interval (5 ms), which
    starved the flusher. One statement per few hundred rows binds them all in C
    and releases the lock once.
    """
    db_connection.ensure_connection()
    db = db_connection.connection
    per_insert = min(ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(FIELDS))
    per_insert = 1 << max(0, per_insert.bit_length() - 1)  # a power of two
    # The raw sqlite3 cursor: Django's wrapper would rewrite the placeholders.
    # Its errors are wrapped so the caller sees Django's (IntegrityError,
    # OperationalError).
    with db_connection.wrap_database_errors:
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
