"""Replaying journal segments whose owner is dead (crashed, killed, or could not flush at exit).

A segment is replayed only once its flock can be taken: that proves its owner
is gone. Replay starts at the owner's done offset, writes batch by batch
through the same writer (so anything already stored counts as a duplicate),
quarantines corrupt and torn lines, and retires the segment at the end. If the
database fails half-way the segment stays, with its done offset moved on, for
the next pass.
"""

import logging
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError

from signals.writepath import journal
from signals.writepath.lanes import in_lanes, segment_writers
from signals.writepath.writer import write_journal_batch

logger = logging.getLogger(__name__)


@dataclass
class FlushReport:
    written: dict = field(default_factory=lambda: dict.fromkeys(("stored", "duplicates", "conflicts", "quarantined"), 0))
    own_stored: int = 0
    segments_replayed: int = 0
    segments_live: int = 0
    segments_failed: int = 0
    errors: list = field(default_factory=list)

    def as_dict(self):
        return {
            "stored": self.written["stored"] + self.own_stored,
            "duplicates": self.written["duplicates"],
            "conflicts": self.written["conflicts"],
            "quarantined": self.written["quarantined"],
            "segments_replayed": self.segments_replayed,
            "segments_live": self.segments_live,
            "segments_failed": self.segments_failed,
            "errors": self.errors,
        }


def replay_segment(claimed: journal.ClaimedSegment) -> dict:
    """Write every line of a claimed segment from its done offset, then retire it; return the counts."""
    result = dict.fromkeys(("stored", "duplicates", "conflicts", "quarantined"), 0)
    offset = claimed.start
    batch_max = max(settings.SIGNALHUB_BATCH_MAX, settings.SIGNALHUB_BATCH_SIZE)
    while offset < claimed.size:
        batch = write_journal_batch(claimed.fd, claimed.name, offset, claimed.size, max_lines=batch_max, final=True)
        if batch is None:
            break
        written, offset, _ = batch
        for key, value in written.as_dict().items():
            result[key] += value
        claimed.mark_done(offset)
    claimed.retire()
    logger.info("replayed journal segment %s: %s", claimed.name, result)
    return result


def replay_dead_segments(report: FlushReport | None = None) -> FlushReport:
    """Replay every segment in the journal directory whose owner is dead.

    On PostgreSQL up to ``SIGNALHUB_FLUSH_WRITERS`` segments are replayed at
    once, each on its own connection. A segment the database fails on stays
    for the next pass, and no lane starts another: the database is likely down.
    """
    report = report or FlushReport()
    lock = threading.Lock()

    def replay(path):
        claimed = journal.try_claim(path)
        if claimed is None:
            with lock:
                report.segments_live += 1
            return
        try:
            counts = replay_segment(claimed)
        except (DatabaseError, OSError) as exc:
            claimed.release()
            with lock:
                report.segments_failed += 1
                report.errors.append(f"{path.name}: {exc}")
            logger.warning("could not replay journal segment %s (%s); it stays for the next pass", path.name, exc)
            raise
        with lock:
            for key, value in counts.items():
                report.written[key] += value
            report.segments_replayed += 1

    try:
        paths = journal.segment_paths()
    except journal.JournalUnavailable as exc:
        # A symlinked journal directory: refused, and said so (flush_signals exits non-zero).
        report.segments_failed += 1
        report.errors.append(str(exc))
        logger.error("not replaying the journal: %s", exc)
        return report
    try:
        in_lanes(replay, paths, segment_writers())
    except (DatabaseError, OSError):
        pass  # in the report, and logged
    journal.remove_leftovers()
    return report
