"""The write path's SQL on PostgreSQL: journal lines unpacked by ``jsonb_array_elements``, and COPY.

A batch of journal lines is one statement that inserts the rows and queues
their deliveries; other records are copied into a per-connection staging table
and moved into the ledger with ``ON CONFLICT DO NOTHING``.
"""

import functools

from django.db import connection, models

from signals.writepath.columns import COLUMNS, FIELDS, TABLE, NotAllNew, line_columns, rows

STAGING_TABLE = "signalhub_incoming_signals"

_TYPES = {"CharField": "text", "TextField": "text", "FloatField": "double precision",
          "PositiveIntegerField": "integer", "DateTimeField": "timestamp with time zone"}


def _line_value(f, index):
    if isinstance(f, models.JSONField):
        return f"(j.value -> {index})"
    # Cast to the base type: a cast to varchar(n) would cut an overlong value
    # instead of refusing it as the column does.
    return f"(j.value ->> {index})::{_TYPES[f.get_internal_type()]}"


@functools.cache
def _lines_insert(queue_sql):
    params = []
    sql = (f'WITH new AS (INSERT INTO "{TABLE}" ({COLUMNS}) '
           f'SELECT {line_columns(_line_value, params)} FROM jsonb_array_elements(%s::jsonb) AS j(value) '
           f"ON CONFLICT (signal_id) DO NOTHING RETURNING id), "
           f"queued AS ({queue_sql} RETURNING 1) "
           f"SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM queued)")
    return sql, params + ["batch", "now", "now", "now"]


def insert_lines(batch, count, queue_sql, now) -> tuple[int, int]:
    """Insert ``count`` journal lines (``batch``: their JSON array) and queue them; return ``(stored, queued)``.

    ``queue_sql`` is the delivery outbox's INSERT ... SELECT over ``new s`` (the
    rows just inserted), run in the same statement. NotAllNew unless every
    line made a row.
    """
    import psycopg

    sql, params = _lines_insert(queue_sql)
    values = {"created_at": now, "now": now, "batch": batch}
    connection.ensure_connection()
    # Bound by the server: Django's cursors bind on the client, which made the
    # batch a literal of several MB in the statement's text for the server to
    # scan, and quoted it in Python first.
    # Never prepared, even where OPTIONS turns psycopg's automatic preparing on
    # (Django leaves it off): a named statement would not survive a pooler in
    # transaction mode, and planning is nothing beside the batch.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [values[name] for name in params], prepare=False)
        stored, queued = cursor.fetchone()
    if stored != count:
        raise NotAllNew
    return stored, queued


def copy_rows(db_connection, cursor, table, rows):
    """COPY rows of column values (``FIELDS`` order) into ``table``, a quoted name.

    psycopg's own COPY, wrapped so that its errors reach the caller as
    Django's (a refused row a DataError).
    """
    with db_connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


_JSON_INDEXES = [index for index, f in enumerate(FIELDS) if isinstance(f, models.JSONField)]


def _copy_ready(records):
    from psycopg.types.json import Jsonb

    for row in rows(records):
        for index in _JSON_INDEXES:
            # Empty metadata (nearly every signal) as its text: no JSON encoding per row.
            row[index] = "{}" if row[index] == {} else Jsonb(row[index])
        yield row


def insert_records(items) -> set:
    """Insert the records (each ``item.values``) whose signal_id is not stored; return the ids inserted."""
    with connection.cursor() as cursor:
        # A per-connection staging table with the ledger's column types and no
        # constraints; emptied at every commit.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} ON COMMIT DELETE ROWS AS "
            f"SELECT {COLUMNS} FROM {TABLE} WITH NO DATA")
        cursor.execute(f"TRUNCATE {STAGING_TABLE}")
        copy_rows(connection, cursor, STAGING_TABLE, _copy_ready(items))
        # ON CONFLICT DO NOTHING waits for a concurrent writer of the same id and
        # then skips it; RETURNING tells which rows are new. The ones skipped are
        # compared with the stored row by the caller (duplicate or conflict).
        cursor.execute(
            f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {STAGING_TABLE} "
            f"ON CONFLICT (signal_id) DO NOTHING RETURNING signal_id")
        return {row[0] for row in cursor.fetchall()}
