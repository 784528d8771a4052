"""Row counts that never read a whole table: bounded counts and estimates.

At tens of millions of rows ``COUNT(*)`` costs more than the page or report
that asks for it. The monitor, the admin's paginator and the delivery summary
count exactly up to a bound and estimate beyond it, with these pieces:
PostgreSQL's planner statistics, and on SQLite the span of the primary key
(rows are appended and archived oldest first, so the span is an upper bound).
"""

from django.db import connections

PLANNER_ESTIMATE = "estimate (PostgreSQL planner statistics)"
ID_SPAN_ESTIMATE = "estimate (upper bound from the id range)"
BOUNDED_COUNT = 10_000


def planner_estimate(connection, table):
    """Return PostgreSQL's estimate of the rows in ``table``; -1 until the table is first analyzed or vacuumed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


def id_span(connection, table, pk="id"):
    """Return ``MAX(pk) - MIN(pk) + 1``, an upper bound of the rows in ``table``; None when it is empty."""
    quote = connection.ops.quote_name
    pk, table = quote(pk), quote(table)
    with connection.cursor() as cursor:
        # Two subqueries: SQLite reads a lone MIN() or MAX() from the index end
        # in one seek, but both in one SELECT with a full scan.
        cursor.execute(f"SELECT (SELECT MIN({pk}) FROM {table}), (SELECT MAX({pk}) FROM {table})")
        low, high = cursor.fetchone()
    return None if low is None else high - low + 1


def estimated_row_count(model, using):
    """Return an estimate of the rows in ``model``'s table, or None when there is none."""
    connection = connections[using]
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        estimate = planner_estimate(connection, table)
    elif connection.vendor == "sqlite":
        estimate = id_span(connection, table, model._meta.pk.column)
    else:
        return None
    return None if estimate is None or estimate < 0 else int(estimate)


def bounded_count(queryset, limit=BOUNDED_COUNT):
    """Return ``(count, how)``: exact up to ``limit`` rows, "at least" beyond (it reads at most limit + 1)."""
    counted = queryset.order_by().values("pk")[:limit + 1].count()
    return (counted, "exact") if counted <= limit else (limit, f"at least (over {limit})")
