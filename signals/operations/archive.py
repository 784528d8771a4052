"""Move signals, with every row that hangs off them, between the main and the archive database.

``archive_signals`` moves signals older than a cut-off from the main database to
the ``archive`` alias; ``restore_signals`` moves a selection back. Both walk
the signals in keyset batches (``created_at``, ``pk``) so memory stays bounded
by the batch size, and each batch goes through the same three steps:

1. copy: inside a transaction on the source that locks the batch (PostgreSQL
   ``SELECT ... FOR UPDATE``; SQLite takes the write lock at BEGIN), the rows
   are written to the target in the target's own transaction. Rows the target
   already holds (from an interrupted run) are kept when equal and updated
   from the source when not;
2. verify: every row is read back from the target; count and per-row hashes
   must match what was read from the source;
3. delete: the rows leave the source, children first, and the source
   transaction commits.

A run killed at any moment leaves each signal either only in the source
(nothing committed on the target yet), or in both (target committed, source
not): running the same command again verifies those copies and deletes them
from the source, so every signal ends in exactly one database.

Rows related to a signal are found through the model meta (every reverse
foreign key or one-to-one of Signal, recursively), so the sync app's Delivery
and DeliveryAttempt rows move with their signals; ids are kept.
"""

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from tqdm import tqdm

from signals.models import Signal

logger = logging.getLogger(__name__)

MAIN = "default"
ARCHIVE = "archive"
DEFAULT_BATCH_SIZE = 5_000
# Bound on the parameters of one IN (...) list; SQLite allows 32,766 per statement.
IN_CHUNK = 2_000
# SQLite page cache for a move, in KiB (the default is 2 MiB): deleting from and
# inserting into seven indexes touches pages all over a large file. A fixed
# amount, so memory stays bounded whatever the number of rows moved.
SQLITE_MOVE_CACHE_KIB = 32_768
# Field types whose Python value must be converted for the target's driver;
# the others (text, numbers, booleans) go to both SQLite and PostgreSQL as they are.
_PREPARED_FIELDS = (models.DateTimeField, models.DateField, models.TimeField, models.JSONField,
                    models.DecimalField, models.UUIDField, models.DurationField, models.BinaryField)


class ArchiveError(Exception):
    """A batch could not be copied faithfully; nothing was deleted from its source."""


@dataclass
class MoveResult:
    command: str
    source: str
    target: str
    dry_run: bool = False
    selected: int = 0  # signals matching the selection when the run started
    moved: int = 0  # signals now only in the target
    related: dict = field(default_factory=dict)  # model label -> rows moved with their signals
    already_in_target: int = 0  # rows found in the target (an interrupted run) and verified
    refreshed_in_target: int = 0  # rows found in the target but stale, updated from the source
    conflicts: list = field(default_factory=list)  # signal_ids the target holds under another pk
    kept_in_source: int = 0  # selected-by-age rows still in the source afterwards
    batches: int = 0
    seconds: float = 0.0
    vacuum: str = "skipped"
    source_bytes: int | None = None
    target_bytes: int | None = None

    def as_dict(self):
        return asdict(self)

    def summary_line(self):
        related = sum(self.related.values())
        if self.dry_run:
            kept = f", {self.kept_in_source} older signals would stay (not yet delivered)" if self.kept_in_source else ""
            return (f"{self.command}: dry run, nothing changed: {self.selected} signals would move "
                    f"from {self.source} to {self.target}{kept} (source {_mb(self.source_bytes)}, "
                    f"target {_mb(self.target_bytes)}).")
        parts = [f"{self.command}: moved {self.moved} signals and {related} related rows "
                 f"from {self.source} to {self.target} in {self.batches} batches, {self.seconds:.1f} s"]
        if self.already_in_target or self.refreshed_in_target:
            parts.append(f"{self.already_in_target} rows already copied by an earlier run, "
                         f"{self.refreshed_in_target} refreshed")
        if self.kept_in_source:
            parts.append(f"{self.kept_in_source} older signals kept in {self.source}")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts left in {self.source} "
                         f"(signal_id already in {self.target}: {', '.join(self.conflicts[:5])}"
                         f"{', ...' if len(self.conflicts) > 5 else ''})")
        parts.append(f"vacuum {self.vacuum}")
        return "; ".join(parts) + "."


def _mb(size):
    return "unknown size" if size is None else f"{size / 1_048_576:.1f} MB"


# Selection --------------------------------------------------------------------------

def archive_cutoff(*, months=None, before=None, now=None):
    """Return the aware UTC datetime below which signals are archived.

    ``months`` counts calendar months back from today's date in UTC, at
    midnight (a re-run the same day uses the same cut-off); ``before`` is a
    date (midnight UTC) or an ISO datetime (naive means UTC).
    """
    if before is not None:
        if isinstance(before, str):
            before = datetime.fromisoformat(before) if "T" in before or " " in before else date.fromisoformat(before)
        if not isinstance(before, datetime):
            before = datetime(before.year, before.month, before.day, tzinfo=UTC)
        return before if timezone.is_aware(before) else before.replace(tzinfo=UTC)
    today = (now or timezone.now()).astimezone(UTC).date()
    start = today - relativedelta(months=12 if months is None else months)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def keep_undelivered_in_main(signals):
    """Leave out of ``signals`` those whose delivery to Alpine is not finished.

    Signals whose Delivery is ``Delivery.objects.undelivered()`` (pending,
    sending, retrying) stay in the main database unless ``--include-undelivered``.
    Written as NOT EXISTS over the delivery's unique signal_id index: one index
    lookup per candidate signal, where ``pk NOT IN (undelivered)`` would read
    the whole delivery table for every batch on SQLite (a bound state list
    hides the partial index from its planner).
    """
    from sync.models import Delivery

    return signals.exclude(Exists(Delivery.objects.undelivered().filter(signal=OuterRef("pk"))))


def signals_to_archive(cutoff, *, include_undelivered=False, using=MAIN):
    signals = Signal._base_manager.using(using).filter(created_at__lt=cutoff)
    return signals if include_undelivered else keep_undelivered_in_main(signals)


def signals_to_restore(*, since=None, until=None, symbols=None, signal_ids=None, using=ARCHIVE):
    signals = Signal._base_manager.using(using).all()
    if since is not None:
        signals = signals.filter(created_at__gte=since)
    if until is not None:
        signals = signals.filter(created_at__lt=until)
    if symbols:
        signals = signals.filter(symbol__in=symbols)
    if signal_ids:
        signals = signals.filter(signal_id__in=signal_ids)
    return signals


# The rows that move with a signal ----------------------------------------------------------

def related_links(model=Signal, _seen=None):
    """Return ``[(child model, foreign key field), ...]`` below ``model``, parents before children."""
    _seen = _seen or {model}
    links = []
    for relation in model._meta.related_objects:
        if relation.many_to_many or not relation.field.concrete:
            continue  # no many-to-many relation hangs off a signal
        child = relation.related_model
        if child in _seen:
            continue
        _seen.add(child)
        links.append((child, relation.field))
        links.extend(related_links(child, _seen))
    return links


def _check_links_can_move(links, using):
    for model, _ in links:
        if not router.allow_migrate_model(using, model):
            raise ImproperlyConfigured(
                f"{model._meta.label} moves with signals but has no table in the {using!r} database; "
                f"add its app to signalhub.routers.ARCHIVED_APPS so its rows move with their signals.")


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


def referenced_links(links):
    """Return ``[(model, foreign key), ...]``: foreign keys of moving rows to rows that do not move.

    Such rows are copied to the target when missing there, never deleted from
    the source and never overwritten in the target. (The sync app's Delivery
    rows point to no Destination, so today this finds none; a model that does
    point outside the moving set is handled without a change here.)
    """
    moving = {Signal, *(child for child, _ in links)}
    return [(model, field) for model in moving for field in model._meta.concrete_fields
            if field.is_relation and field.related_model not in moving]


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


def move_signals(signals, *, source, target, command, batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """Move the signals of the queryset ``signals`` (on ``source``) with their related rows to ``target``.

    Return a MoveResult. Raise ArchiveError (after committing the batches done
    so far) when a batch cannot be copied faithfully.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    links = related_links()
    _check_links_can_move(links, target)
    _check_links_can_move(links, source)
    for using in (source, target):
        if connections[using].vendor == "sqlite":
            with connections[using].cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = -{SQLITE_MOVE_CACHE_KIB}")
    references = referenced_links(links)
    _check_links_can_move([(foreign_key.related_model, foreign_key) for _, foreign_key in references], target)
    same_engine = connections[source].vendor == connections[target].vendor
    models_involved = {Signal, *(child for child, _ in links), *(fk.related_model for _, fk in references)}
    tables = {model: _Table(model, same_engine=same_engine) for model in models_involved}
    signal_table = tables[Signal]
    result = MoveResult(command=command, source=source, target=target)
    result.selected = signals.count()
    related = Counter()
    started = time.monotonic()
    bar = tqdm(total=result.selected, unit="signal", desc=command, file=progress, disable=progress is None)
    last = None
    try:
        while True:
            with transaction.atomic(using=source):
                page = signals.order_by("created_at", "pk")
                if last is not None:
                    page = page.filter(Q(created_at__gt=last[0]) | Q(created_at=last[0], pk__gt=last[1]))
                if connections[source].features.has_select_for_update_of:
                    page = page.select_for_update(of=("self",))
                page = list(page.values_list("created_at", "pk")[:batch_size])
                if not page:
                    break
                last = max(page)
                signal_rows = signal_table.read(source, "pk", [pk for _, pk in page], lock=True)
                batch = _read_batch(tables, links, source, signal_rows)
                try:
                    copied = _copy_batch(batch, target, references=references, tables=tables, source=source)
                except IntegrityError as exc:
                    # Rare: a signal_id the target holds under another row. Those
                    # signals stay in the source (reported); the rest is copied.
                    conflicts = _conflicts(signal_table, target, signal_rows)
                    if not conflicts:
                        raise ArchiveError(f"the {target} database refused the batch: {exc}") from exc
                    for pk in conflicts:
                        result.conflicts.append(signal_rows.pop(pk)[signal_table.attnames.index("signal_id")])
                    batch = _read_batch(tables, links, source, signal_rows)
                    copied = _copy_batch(batch, target, references=references, tables=tables, source=source)
                result.already_in_target += copied[0]
                result.refreshed_in_target += copied[1]
                _verify_batch(batch, target)
                _delete_batch(batch, source)
            result.batches += 1
            result.moved += len(signal_rows)
            for table, rows in batch[1:]:
                related[table.model._meta.label] += len(rows)
            bar.update(len(page))
    finally:
        bar.close()
        result.related = dict(related)
        result.seconds = time.monotonic() - started
    return result


# Commands' entry points -------------------------------------------------------------------

def database_size(using):
    """Return the size in bytes of the database behind ``using`` (SQLite: the file and its WAL)."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    return None


def reclaim_space(using=MAIN):
    """Give the space of deleted rows back (SQLite VACUUM or incremental vacuum; PostgreSQL VACUUM ANALYZE)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA auto_vacuum")
            if cursor.fetchone()[0] == 2:
                cursor.execute("PRAGMA incremental_vacuum")
                how = "incremental vacuum"
            else:
                cursor.execute("VACUUM")
                how = "VACUUM"
            # VACUUM writes through the WAL; truncate it so the disk space returns too.
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return how
        if connection.vendor == "postgresql":
            quote = connection.ops.quote_name
            for model in [Signal, *(child for child, _ in related_links())]:
                cursor.execute(f"VACUUM ANALYZE {quote(model._meta.db_table)}")
            return "VACUUM ANALYZE"
    return "not supported"


def archive_signals(*, cutoff, include_undelivered=False, dry_run=False, batch_size=DEFAULT_BATCH_SIZE,
                    vacuum=True, progress=None):
    """Move signals created before ``cutoff`` from the main database to the archive; return a MoveResult."""
    signals = signals_to_archive(cutoff, include_undelivered=include_undelivered)
    if dry_run:
        result = MoveResult(command="archive_signals", source=MAIN, target=ARCHIVE, dry_run=True)
        result.selected = signals.count()
        result.kept_in_source = Signal._base_manager.using(MAIN).filter(created_at__lt=cutoff).count() - result.selected
    else:
        result = move_signals(signals, source=MAIN, target=ARCHIVE, command="archive_signals",
                              batch_size=batch_size, progress=progress)
        result.kept_in_source = Signal._base_manager.using(MAIN).filter(created_at__lt=cutoff).count()
        if vacuum and result.moved:
            result.vacuum = reclaim_space(MAIN)
    result.source_bytes, result.target_bytes = database_size(MAIN), database_size(ARCHIVE)
    logger.info("%s", result.summary_line())
    return result


def restore_signals(*, since=None, until=None, symbols=None, signal_ids=None, dry_run=False,
                    batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """Move archived signals matching the selection back to the main database; return a MoveResult."""
    signals = signals_to_restore(since=since, until=until, symbols=symbols, signal_ids=signal_ids)
    if dry_run:
        result = MoveResult(command="restore_signals", source=ARCHIVE, target=MAIN, dry_run=True)
        result.selected = signals.count()
    else:
        result = move_signals(signals, source=ARCHIVE, target=MAIN, command="restore_signals",
                              batch_size=batch_size, progress=progress)
    result.vacuum = "not needed (the archive is not shrunk)"
    result.source_bytes, result.target_bytes = database_size(ARCHIVE), database_size(MAIN)
    logger.info("%s", result.summary_line())
    return result
