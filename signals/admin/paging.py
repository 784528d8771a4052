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
from django.utils.functional import cached_property

from signalhub.counts import estimated_row_count

# Ten pages of 100. Counting more matches costs more than the page itself when
# the filter's column is not in an index (each match is a row lookup).
COUNT_LIMIT = 1_000


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
