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
foreign key or one-to-one of Signal, recursively), never by naming another
app's models: deliveries and their attempts move with their signals; ids are kept.
"""

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from django.db import connections, transaction
from django.db.models import Q
from tqdm import tqdm

from signalhub import databases
from signals.models import Signal
from signals.operations.archive.copier import RowCopier
from signals.operations.archive.sqlite import AttachedCopier
from signals.operations.archive.selection import (
    ARCHIVE, MAIN, _check_links_can_move, referenced_links, related_links, signals_to_archive, signals_to_restore)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000
# SQLite page cache for a move, in KiB (the default is 2 MiB): deleting from and
# inserting into seven indexes touches pages all over a large file. A fixed,
# modest amount: the cache fills as more rows move, so a larger one shows as
# memory growing with the rows moved (docs/benchmarks.md).
SQLITE_MOVE_CACHE_KIB = 8_192


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
    copier_class = AttachedCopier if AttachedCopier.can_move(source, target) else RowCopier
    result = MoveResult(command=command, source=source, target=target)
    result.selected = signals.count()
    related = Counter()
    started = time.monotonic()
    bar = tqdm(total=result.selected, unit="signal", desc=command, file=progress, disable=progress is None)
    last = None
    try:
        with copier_class(links, references, source=source, target=target) as copier:
            while True:
                with transaction.atomic(using=source):
                    page = signals.order_by("created_at", "pk")
                    if last is not None:
                        page = page.filter(Q(created_at__gt=last[0]) | Q(created_at=last[0], pk__gt=last[1]))
                    if connections[source].features.has_select_for_update_of:
                        page = page.select_for_update(of=("self",))
                    # Keys only: converting every created_at to a datetime cost more
                    # than the batch's INSERT; only the last one is needed, for the next page.
                    page = list(page.values_list("pk", flat=True)[:batch_size])
                    if not page:
                        break
                    last = (signals.model._base_manager.using(source).filter(pk=page[-1])
                            .values_list("created_at", flat=True).get(), page[-1])
                    moved = copier.move_batch(page)
                result.batches += 1
                result.moved += moved.moved
                result.already_in_target += moved.already
                result.refreshed_in_target += moved.refreshed
                result.conflicts.extend(moved.conflicts)
                related.update(moved.related)
                bar.update(len(page))
    finally:
        bar.close()
        result.related = dict(related)
        result.seconds = time.monotonic() - started
    return result


# Commands' entry points -------------------------------------------------------------------

def reclaim_space(using=MAIN):
    """Give back the space of the moved signals' rows; return how (see signalhub.databases.reclaim_space)."""
    return databases.reclaim_space(using, [model._meta.db_table for model in [Signal, *(c for c, _ in related_links())]])


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
    result.source_bytes, result.target_bytes = databases.database_size(MAIN), databases.database_size(ARCHIVE)
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
    result.source_bytes, result.target_bytes = databases.database_size(ARCHIVE), databases.database_size(MAIN)
    logger.info("%s", result.summary_line())
    return result
