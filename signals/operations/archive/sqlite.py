"""The row copier between two SQLite files: the source ATTACHed read-only to the target's connection.

The rows never travel through Python. Per batch, on the target's connection:
INSERT ... SELECT from the attached source, then a read-back that joins every
copied row to its source row and compares every column (``IS``, so NULLs
compare too). The deletes run on the source's own connection, in the
transaction that took the source's write lock before the batch was chosen;
the target commits first, so a run killed at any moment leaves each signal in
the source, or in both (the next run verifies and deletes it), never in neither.

The batch is its signals' primary keys, one JSON parameter; the rows of each
related model are found by nesting the parent's selection (a delivery's
attempts: ``delivery_id IN (SELECT id FROM sync_delivery WHERE signal_id IN
(...))``), so memory stays bounded by the batch's keys whatever its rows hold.
"""

import json
import logging
from pathlib import Path

from django.db import IntegrityError, connections, transaction

from signals.models import Signal
from signals.operations.archive.copier import ArchiveError, BatchMoved

logger = logging.getLogger(__name__)

# The attached source's name on the target's connection.
SOURCE = "archive_source"
# Page cache of the attached source, in KiB (SQLite's default): it is read
# in key order, once per batch, so a larger cache only adds memory.
SOURCE_CACHE_KIB = 2_048


def _database_file(using):
    name = str(connections[using].settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return Path(name)


class AttachedCopier:
    """Move batches between two SQLite files in SQL; the same steps and checks as the RowCopier."""

    @staticmethod
    def can_move(source, target):
        return (connections[source].vendor == connections[target].vendor == "sqlite"
                and _database_file(source) is not None and _database_file(target) is not None
                and _database_file(source).resolve() != _database_file(target).resolve())

    def __init__(self, links, references, *, source, target):
        self.links, self.references, self.source, self.target = links, references, source, target
        self.connection = connections[target]
        self.parents = {child: foreign_key for child, foreign_key in links}
        self.models = [Signal, *(child for child, _ in links)]

    def __enter__(self):
        # Read-only: nothing on the target's connection can change the source,
        # and its BEGIN IMMEDIATE does not ask for the source's write lock,
        # which the source's own transaction holds during each batch.
        uri = f"{_database_file(self.source).resolve().as_uri()}?mode=ro"
        with self.connection.cursor() as cursor:
            cursor.execute(f"ATTACH DATABASE %s AS {SOURCE}", [uri])
            cursor.execute(f"PRAGMA {SOURCE}.cache_size = -{SOURCE_CACHE_KIB}")
        return self

    def __exit__(self, *exc_info):
        if self.connection.connection is not None and not self.connection.in_atomic_block:
            with self.connection.cursor() as cursor:
                cursor.execute(f"DETACH DATABASE {SOURCE}")
        return False

    # SQL of a batch -------------------------------------------------------------------

    @staticmethod
    def _q(name):
        return '"%s"' % name.replace('"', '""')

    def _table(self, model, schema):
        return f"{self._q(schema)}.{self._q(model._meta.db_table)}"

    def _columns(self, model):
        return [self._q(f.column) for f in model._meta.concrete_fields]

    def _keys(self, model, schema):
        """Return the SELECT of the batch's primary keys of ``model`` in ``schema``; one JSON parameter."""
        if model is Signal:
            return "SELECT value FROM json_each(%s)"
        foreign_key = self.parents[model]
        parent = foreign_key.related_model
        parent_keys = self._keys(parent, schema)
        if foreign_key.target_field != parent._meta.pk:
            parent_keys = (f"SELECT {self._q(foreign_key.target_field.column)} FROM {self._table(parent, schema)} "
                           f"WHERE {self._q(parent._meta.pk.column)} IN ({parent_keys})")
        return (f"SELECT {self._q(model._meta.pk.column)} FROM {self._table(model, schema)} "
                f"WHERE {self._q(foreign_key.column)} IN ({parent_keys})")

    def _in_batch(self, model, schema, alias=None):
        column = self._q(model._meta.pk.column)
        return f"{f'{alias}.' if alias else ''}{column} IN ({self._keys(model, schema)})"

    def _equal(self, model):
        return " AND ".join(f"c.{column} IS o.{column}" for column in self._columns(model))

    def _scalar(self, cursor, sql, params):
        cursor.execute(sql, params)
        return cursor.fetchone()[0]

    # The steps ------------------------------------------------------------------------

    def move_batch(self, pks):
        """Copy, verify and delete the signals ``pks`` and their related rows; return a BatchMoved."""
        outcome = BatchMoved()
        keys = json.dumps(list(pks))
        try:
            counts = self._copy(keys, outcome)
        except IntegrityError as exc:
            # Rare: a signal_id the target holds under another row. Those
            # signals stay in the source (reported); the rest is copied.
            conflicts = self._conflicts(keys)
            if not conflicts:
                raise ArchiveError(f"the {self.target} database refused the batch: {exc}") from exc
            outcome.conflicts = [signal_id for _, signal_id in conflicts]
            keys = json.dumps(sorted(set(pks) - {pk for pk, _ in conflicts}))
            outcome.already = outcome.refreshed = 0
            counts = self._copy(keys, outcome)
        self._verify(keys, counts)
        self._delete(keys, counts)
        outcome.moved = counts[Signal]
        outcome.related = {model._meta.label: counts[model] for model in self.models[1:]}
        return outcome

    def _copy(self, keys, outcome):
        """Write the batch to the target in one transaction; return ``{model: rows in the batch}``."""
        counts = {}
        with transaction.atomic(using=self.target), self.connection.cursor() as cursor:
            self._copy_references(cursor, keys)
            for model in self.models:  # parents first
                source, target = self._table(model, SOURCE), self._table(model, "main")
                columns = ", ".join(self._columns(model))
                pk = self._q(model._meta.pk.column)
                counts[model] = self._scalar(cursor, f"SELECT COUNT(*) FROM {source} WHERE {self._in_batch(model, SOURCE)}",
                                             [keys])
                present = self._scalar(cursor, f"SELECT COUNT(*) FROM {target} WHERE {self._in_batch(model, SOURCE)}",
                                       [keys]) if counts[model] else 0
                if not present:
                    cursor.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source} "
                                   f"WHERE {self._in_batch(model, SOURCE)}", [keys])
                    continue
                # Rows an interrupted run committed: refresh those that differ, insert the rest.
                cursor.execute(f"SELECT o.{pk} FROM {source} o JOIN {target} c ON c.{pk} = o.{pk} "
                               f"WHERE {self._in_batch(model, SOURCE, 'o')} AND NOT ({self._equal(model)})", [keys])
                stale = [row[0] for row in cursor.fetchall()]
                if stale:
                    cursor.execute(f"UPDATE {target} SET ({columns}) = (SELECT {columns} FROM {source} o "
                                   f"WHERE o.{pk} = {target}.{pk}) WHERE {pk} IN (SELECT value FROM json_each(%s))",
                                   [json.dumps(stale)])
                cursor.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source} o "
                               f"WHERE {self._in_batch(model, SOURCE, 'o')} "
                               f"AND NOT EXISTS (SELECT 1 FROM {target} c WHERE c.{pk} = o.{pk})", [keys])
                outcome.already += present - len(stale)
                outcome.refreshed += len(stale)
        return counts

    def _copy_references(self, cursor, keys):
        """Copy the rows that moving rows point to and the target lacks; they never leave the source."""
        for model, foreign_key in self.references:
            referenced = foreign_key.related_model
            source, target = self._table(referenced, SOURCE), self._table(referenced, "main")
            columns = ", ".join(self._columns(referenced))
            column = self._q(foreign_key.target_field.column)
            cursor.execute(
                f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source} o WHERE o.{column} IN "
                f"(SELECT {self._q(foreign_key.column)} FROM {self._table(model, SOURCE)} "
                f"WHERE {self._in_batch(model, SOURCE)}) "
                f"AND NOT EXISTS (SELECT 1 FROM {target} c WHERE c.{column} = o.{column})", [keys])

    def _verify(self, keys, counts):
        """Read the batch back from the target; raise ArchiveError unless every row equals its source row."""
        with self.connection.cursor() as cursor:
            for model in self.models:
                if not counts[model]:
                    continue
                source, target = self._table(model, SOURCE), self._table(model, "main")
                pk = self._q(model._meta.pk.column)
                equal = self._scalar(cursor, f"SELECT COUNT(*) FROM {source} o JOIN {target} c ON c.{pk} = o.{pk} "
                                     f"WHERE {self._in_batch(model, SOURCE, 'o')} AND {self._equal(model)}", [keys])
                if equal == counts[model]:
                    continue
                label = model._meta.label
                copied = self._scalar(cursor, f"SELECT COUNT(*) FROM {target} WHERE {self._in_batch(model, SOURCE)}",
                                      [keys])
                if copied != counts[model]:
                    raise ArchiveError(f"{label}: {counts[model]} rows copied to {self.target} but {copied} read back")
                cursor.execute(f"SELECT o.{pk} FROM {source} o JOIN {target} c ON c.{pk} = o.{pk} "
                               f"WHERE {self._in_batch(model, SOURCE, 'o')} AND NOT ({self._equal(model)}) "
                               f"ORDER BY o.{pk} LIMIT 10", [keys])
                differing = [row[0] for row in cursor.fetchall()]
                raise ArchiveError(f"{label}: rows {differing} read back from {self.target} differ from the source")

    def _delete(self, keys, counts):
        with connections[self.source].cursor() as cursor:
            for model in reversed(self.models):  # children first, while their parents still select them
                if not counts[model]:
                    continue
                cursor.execute(f"DELETE FROM {self._table(model, 'main')} WHERE {self._in_batch(model, 'main')}", [keys])
                if cursor.rowcount != counts[model]:
                    # The source's write lock is held since the batch was chosen,
                    # so this is not a race: the transaction (nothing deleted) rolls back.
                    raise ArchiveError(f"{model._meta.label}: expected to delete {counts[model]} rows "
                                       f"from {self.source}, deleted {cursor.rowcount}")

    def _conflicts(self, keys):
        """Return ``[(pk, signal_id), ...]`` of batch signals whose signal_id the target holds under another pk."""
        pk, signal_id = self._q(Signal._meta.pk.column), self._q(Signal._meta.get_field("signal_id").column)
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT o.{pk}, o.{signal_id} FROM {self._table(Signal, SOURCE)} o "
                           f"JOIN {self._table(Signal, 'main')} c ON c.{signal_id} = o.{signal_id} AND c.{pk} != o.{pk} "
                           f"WHERE {self._in_batch(Signal, SOURCE, 'o')}", [keys])
            return cursor.fetchall()
