"""Counting rows for the admin without reading the whole table.

The admin's paginator asks for ``COUNT(*)`` of the listed rows on every page.
At millions of signals that count costs more than the page itself, and grows
with the table. Instead:

- the unfiltered list shows an estimate: PostgreSQL's planner statistics
  (``pg_class.reltuples``), or on SQLite the span of the primary key (rows are
  only ever appended, and removed oldest first by archiving);
- a filtered list counts at most ``COUNT_LIMIT + 1`` matching rows, so the
  count stops early and the page says "more than N";
- a small table (below ``COUNT_LIMIT``) is counted exactly.
"""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

# Ten pages of 100. Counting more matches costs more than the page itself when
# the filter's column is not in an index (each match is a row lookup).
COUNT_LIMIT = 1_000


def estimated_row_count(model, using):
    """Return an estimate of the rows in ``model``'s table, or None when there is none."""
    connection = connections[using]
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # -1 until the table has been vacuumed or analyzed once.
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        elif connection.vendor == "sqlite":
            pk, table = connection.ops.quote_name(model._meta.pk.column), connection.ops.quote_name(table)
            # Two subqueries: SQLite turns a lone MAX() or MIN() of the rowid into
            # one seek, but MAX() - MIN() in one SELECT into a full scan.
            cursor.execute(f"SELECT (SELECT MAX({pk}) FROM {table}) - (SELECT MIN({pk}) FROM {table}) + 1")
        else:
            return None
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


class BoundedCountPaginator(Paginator):
    """A paginator whose count never reads more than ``COUNT_LIMIT + 1`` rows.

    ``count_is_estimate`` and ``count_is_capped`` tell the template how to say it.
    """

    count_limit = COUNT_LIMIT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count_is_estimate = False
        self.count_is_capped = False

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            estimate = estimated_row_count(queryset.model, queryset.db)
            if estimate is not None and estimate > self.count_limit:
                self.count_is_estimate = True
                return estimate
        # COUNT over a LIMITed subquery: stops after count_limit + 1 matches.
        counted = queryset.order_by()[: self.count_limit + 1].count()
        if counted > self.count_limit:
            # Pages stop at the limit; narrowing the filter shows the rest.
            self.count_is_capped = True
            return self.count_limit
        return counted
