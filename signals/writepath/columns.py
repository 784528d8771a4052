"""The ledger's columns as the raw inserts write them, whatever the database.

The column list (the catalogue's order), each column's default, a record as a
row of column values, and a journal line's array as the SELECT list of an
insert. The SQL of each database is in ``sqlite`` and ``postgresql``.
"""

import operator

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from signals.ledger.fields import COLUMN_FIELDS
from signals.models import Signal
from signals.writepath.journal import LINE_FIELDS

FIELDS = [Signal._meta.get_field(name) for name in COLUMN_FIELDS]
DEFAULTS = {f.name: f.get_default() for f in FIELDS if f.name != "created_at"}
TABLE = Signal._meta.db_table
COLUMNS = ", ".join(f'"{f.column}"' for f in FIELDS)


class NotAllNew(Exception):
    """A batch of journal lines holds a signal_id already stored or repeated: the general path writes it."""


_ROW_GETTER = operator.itemgetter(*COLUMN_FIELDS)


def rows(items, created_at=None):
    """Yield each record's values as a list in ``FIELDS`` order, defaults filled in."""
    defaults = {name: DEFAULTS.get(name) for name in COLUMN_FIELDS}
    defaults["created_at"] = timezone.now() if created_at is None else created_at
    for item in items:
        yield list(_ROW_GETTER({**defaults, **item.values}))


def line_columns(line_value, params):
    """Return the SELECT list making a row of ``FIELDS`` from ``j.value`` (one line's JSON array).

    ``line_value(field, index)`` is the database's expression for the line's
    value at ``index``. Columns a line does not hold get their model default;
    ``params`` is extended with the names of the placeholders, in order
    (created_at's).
    """
    columns = []
    for f in FIELDS:
        if f.name in LINE_FIELDS:
            columns.append(line_value(f, LINE_FIELDS.index(f.name)))
        elif f.name == "created_at":
            columns.append("%s")
            params.append("created_at")
        elif DEFAULTS[f.name] is None:
            columns.append("NULL")
        elif DEFAULTS[f.name] == "":
            columns.append("''")
        else:
            raise ImproperlyConfigured(f"the journal line writer has no default for Signal.{f.name}")
    return ", ".join(columns)
