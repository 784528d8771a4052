"""The row copier: copy a batch of rows to the other database, read it back and compare, delete it."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC

from django.db import IntegrityError, connections, models, transaction

from signals.models import Signal

# Bound on the parameters of one IN (...) list; SQLite allows 32,766 per statement.
IN_CHUNK = 2_000
# Field types whose Python value must be converted for the target's driver;
# the others (text, numbers, booleans) go to both SQLite and PostgreSQL as they are.
_PREPARED_FIELDS = (models.DateTimeField, models.DateField, models.TimeField, models.JSONField,
                    models.DecimalField, models.UUIDField, models.DurationField, models.BinaryField)


class ArchiveError(Exception):
    """A batch could not be copied faithfully; nothing was deleted from its source."""


@dataclass
class BatchMoved:
    moved: int = 0  # signals now only in the target
    related: dict = field(default_factory=dict)  # model label -> rows moved with the signals
    already: int = 0  # rows the target held and equal (an interrupted run)
    refreshed: int = 0  # rows the target held but stale, updated from the source
    conflicts: list = field(default_factory=list)  # signal_ids the target holds under another pk


class _Table:
    """How to read, compare and write one model's rows as plain tuples.

    Between two databases of the same engine the rows travel as the driver
    returns them (no field conversion either way: the fast path); between
    engines (SQLite and PostgreSQL) through Django's field conversions, so a
    datetime or a JSON value is written the way the target expects it.
    """

    def __init__(self, model, *, same_engine=True):
        self.model = model
        self.same_engine = same_engine
        self.fields = model._meta.concrete_fields
        self.attnames = [f.attname for f in self.fields]
        self.pk_index = self.attnames.index(model._meta.pk.attname)
        self.prepared = [i for i, f in enumerate(self.fields) if isinstance(f, _PREPARED_FIELDS)]
        self.datetimes = [i for i, f in enumerate(self.fields) if isinstance(f, models.DateTimeField)]
        self.jsons = [i for i, f in enumerate(self.fields) if isinstance(f, models.JSONField)]

    def read(self, using, lookup, keys, *, lock=False):
        """Return ``{pk: row}`` of the rows whose field ``lookup`` ("pk" or a foreign key's attname) is in ``keys``."""
        connection = connections[using]
        lock = lock and connection.features.has_select_for_update
        rows = {}
        keys = list(keys)
        for start in range(0, len(keys), IN_CHUNK):
            chunk = keys[start:start + IN_CHUNK]
            if self.same_engine:
                quote = connection.ops.quote_name
                column = self.model._meta.pk.column if lookup == "pk" else self.model._meta.get_field(lookup).column
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT {', '.join(quote(f.column) for f in self.fields)} "
                                   f"FROM {quote(self.model._meta.db_table)} "
                                   f"WHERE {quote(column)} IN ({', '.join(['%s'] * len(chunk))})"
                                   f"{' FOR UPDATE' if lock else ''}", chunk)
                    found = cursor.fetchall()
            else:
                queryset = self.model._base_manager.using(using).filter(**{f"{lookup}__in": chunk})
                found = (queryset.select_for_update() if lock else queryset).order_by().values_list(*self.attnames)
            for row in found:
                rows[row[self.pk_index]] = tuple(row)
        return rows

    def comparable(self, row):
        """Return what must be equal between a row and its copy.

        Same engine: the row itself, compared value by value (stronger than
        comparing hashes of it). Across engines: a SHA-256 of the values
        normalised to one form (UTC ISO datetimes, JSON with sorted keys).
        """
        if self.same_engine:
            return row
        values = list(row)
        for i in self.datetimes:
            if values[i] is not None:
                values[i] = values[i].astimezone(UTC).isoformat()
        for i in self.jsons:
            values[i] = json.dumps(values[i], sort_keys=True)
        return hashlib.sha256(repr(values).encode()).digest()

    def _db_values(self, row, connection):
        if self.same_engine:
            return row
        values = list(row)
        for i in self.prepared:
            values[i] = self.fields[i].get_db_prep_save(values[i], connection)
        return values

    def insert(self, using, rows):
        connection = connections[using]
        quote = connection.ops.quote_name
        sql = (f"INSERT INTO {quote(self.model._meta.db_table)} ({', '.join(quote(f.column) for f in self.fields)}) "
               f"VALUES ({', '.join(['%s'] * len(self.fields))})")
        with connection.cursor() as cursor:
            cursor.executemany(sql, [self._db_values(row, connection) for row in rows])

    def update(self, using, rows):
        connection = connections[using]
        quote = connection.ops.quote_name
        others = [i for i in range(len(self.fields)) if i != self.pk_index]
        sql = (f"UPDATE {quote(self.model._meta.db_table)} SET "
               f"{', '.join(f'{quote(self.fields[i].column)} = %s' for i in others)} "
               f"WHERE {quote(self.fields[self.pk_index].column)} = %s")
        params = []
        for row in rows:
            values = self._db_values(row, connection)
            params.append([values[i] for i in others] + [values[self.pk_index]])
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)

    def delete(self, using, pks):
        """Delete the rows with these primary keys; return how many went."""
        connection = connections[using]
        quote = connection.ops.quote_name
        pks = list(pks)
        deleted = 0
        with connection.cursor() as cursor:
            for start in range(0, len(pks), IN_CHUNK):
                chunk = pks[start:start + IN_CHUNK]
                cursor.execute(f"DELETE FROM {quote(self.model._meta.db_table)} "
                               f"WHERE {quote(self.fields[self.pk_index].column)} IN ({', '.join(['%s'] * len(chunk))})",
                               chunk)
                deleted += cursor.rowcount
        return deleted


# One batch ------------------------------------------------------------------------------

def _read_batch(tables, links, source, signal_rows):
    """Return ``[(table, {pk: row}), ...]`` for the signals and their related rows, parents first."""
    signal_table = tables[Signal]
    batch = [(signal_table, signal_rows)]
    rows_by_model = {Signal: signal_rows}
    for child, foreign_key in links:
        parent_rows = rows_by_model[foreign_key.related_model]
        rows = tables[child].read(source, foreign_key.attname, parent_rows.keys(), lock=True) if parent_rows else {}
        rows_by_model[child] = rows
        batch.append((tables[child], rows))
    return batch


def _copy_references(batch, references, tables, source, target):
    for model, foreign_key in references:
        referenced = tables[foreign_key.related_model]
        for table, rows in batch:
            if table.model is not model or not rows:
                continue
            index = table.attnames.index(foreign_key.attname)
            keys = {row[index] for row in rows.values()} - {None}
            missing = keys - set(referenced.read(target, "pk", keys)) if keys else set()
            if missing:
                referenced.insert(target, list(referenced.read(source, "pk", missing).values()))


def _copy_batch(batch, target, *, references=(), tables=None, source=None):
    """Write the batch to the target in one transaction: insert what is missing, refresh what differs.

    Return ``(rows already there and equal, rows refreshed)``.
    """
    already = refreshed = 0
    with transaction.atomic(using=target):
        _copy_references(batch, references, tables, source, target)
        for table, rows in batch:
            if not rows:
                continue
            present = table.read(target, "pk", rows.keys())
            missing = [row for pk, row in rows.items() if pk not in present]
            stale = [row for pk, row in present.items() if table.comparable(row) != table.comparable(rows[pk])]
            already += len(present) - len(stale)
            refreshed += len(stale)
            if stale:
                table.update(target, [rows[row[table.pk_index]] for row in stale])
            if missing:
                table.insert(target, missing)
    return already, refreshed


def _verify_batch(batch, target):
    """Read the batch back from the target; raise ArchiveError unless count and hashes match."""
    for table, rows in batch:
        if not rows:
            continue
        copied = table.read(target, "pk", rows.keys())
        label = table.model._meta.label
        if len(copied) != len(rows):
            raise ArchiveError(f"{label}: {len(rows)} rows copied to {target} but {len(copied)} read back")
        differing = [pk for pk, row in rows.items() if table.comparable(copied[pk]) != table.comparable(row)]
        if differing:
            raise ArchiveError(f"{label}: rows {differing[:10]} read back from {target} differ from the source")


def _delete_batch(batch, source):
    for table, rows in reversed(batch):  # children first
        if not rows:
            continue
        deleted = table.delete(source, rows.keys())
        if deleted != len(rows):
            # The rows were locked by this transaction, so this is not a race:
            # something is wrong, and the transaction (nothing deleted) rolls back.
            raise ArchiveError(f"{table.model._meta.label}: expected to delete {len(rows)} rows "
                               f"from {source}, deleted {deleted}")


def _conflicts(table, target, signal_rows):
    """Return the pks of signals whose signal_id the target holds under a different pk."""
    index = table.attnames.index("signal_id")
    by_signal_id = {row[index]: pk for pk, row in signal_rows.items()}
    found = Signal._base_manager.using(target).filter(signal_id__in=list(by_signal_id)).values_list("signal_id", "pk")
    return [by_signal_id[signal_id] for signal_id, pk in found if by_signal_id[signal_id] != pk]


class RowCopier:
    """Move batches through Python: rows read from the source, written to the target, read back and compared.

    Works between any two databases (SQLite and PostgreSQL, either way round).
    Each ``move_batch`` runs inside the caller's source transaction.
    """

    def __init__(self, links, references, *, source, target):
        self.links, self.references, self.source, self.target = links, references, source, target
        same_engine = connections[source].vendor == connections[target].vendor
        models_involved = {Signal, *(child for child, _ in links), *(fk.related_model for _, fk in references)}
        self.tables = {model: _Table(model, same_engine=same_engine) for model in models_involved}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def move_batch(self, pks):
        """Copy, verify and delete the signals ``pks`` and their related rows; return a BatchMoved."""
        outcome = BatchMoved()
        signal_table = self.tables[Signal]
        signal_rows = signal_table.read(self.source, "pk", pks, lock=True)
        batch = _read_batch(self.tables, self.links, self.source, signal_rows)
        copy = dict(references=self.references, tables=self.tables, source=self.source)
        try:
            outcome.already, outcome.refreshed = _copy_batch(batch, self.target, **copy)
        except IntegrityError as exc:
            # Rare: a signal_id the target holds under another row. Those
            # signals stay in the source (reported); the rest is copied.
            conflicts = _conflicts(signal_table, self.target, signal_rows)
            if not conflicts:
                raise ArchiveError(f"the {self.target} database refused the batch: {exc}") from exc
            for pk in conflicts:
                outcome.conflicts.append(signal_rows.pop(pk)[signal_table.attnames.index("signal_id")])
            batch = _read_batch(self.tables, self.links, self.source, signal_rows)
            outcome.already, outcome.refreshed = _copy_batch(batch, self.target, **copy)
        _verify_batch(batch, self.target)
        _delete_batch(batch, self.source)
        outcome.moved = len(signal_rows)
        outcome.related = {table.model._meta.label: len(rows) for table, rows in batch[1:]}
        return outcome
