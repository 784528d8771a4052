"""Archive and restore: move signals, with the rows that hang off them, between the main and the archive database.

``selection`` chooses which signals move; ``copier`` copies a batch, reads it
back and compares it between any two databases, ``sqlite`` does the same in
SQL between two SQLite files; ``move`` runs the batches, then vacuums.
"""

from signals.operations.archive.copier import ArchiveError, _Table
from signals.operations.archive.move import (
    DEFAULT_BATCH_SIZE, MoveResult, archive_signals, move_signals, reclaim_space, restore_signals)
from signals.operations.archive.selection import (
    ARCHIVE, MAIN, archive_cutoff, keep_undelivered_in_main, referenced_links, related_links, signals_to_archive,
    signals_to_restore)

__all__ = [
    "ARCHIVE", "DEFAULT_BATCH_SIZE", "MAIN", "ArchiveError", "MoveResult", "_Table", "archive_cutoff",
    "archive_signals", "keep_undelivered_in_main", "move_signals", "reclaim_space",
    "referenced_links", "related_links", "restore_signals", "signals_to_archive", "signals_to_restore",
]
