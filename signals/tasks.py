"""django-q2 task functions of the ledger, referenced by dotted path from the schedules."""

import logging

from django.conf import settings

from signalhub.locks import LockHeld, command_lock
from signalhub.schedules import repeat_for_a_minute
from signals.models import Signal
from signals.operations import archive
from signals.writepath.ingest import flush_pending
from signals.writepath.recovery import FlushReport, replay_dead_segments

logger = logging.getLogger(__name__)


def expire_open_signals():
    """Mark signals open longer than the configured age as expired; return the count."""
    count = Signal.objects.expire_open()
    logger.info("expired %d open signals", count)
    return count


def flush_journals(repeat=False):
    """Store whatever the journals hold: this process's pending signals and dead processes' segments.

    Returns the counts of one pass (a dict), or with ``repeat`` (the schedule)
    the counts summed over passes every SIGNALHUB_FLUSH_INTERVAL seconds for
    about a minute.
    """
    if not repeat:
        return flush_journals_once()
    passes = repeat_for_a_minute(flush_journals_once, settings.SIGNALHUB_FLUSH_INTERVAL)
    total = {}
    for counts in passes:
        for key, value in counts.items():
            total[key] = total.get(key, []) + value if isinstance(value, list) else total.get(key, 0) + value
    total["passes"] = len(passes)
    return total


def flush_journals_once():
    report = FlushReport()
    report.own_stored = flush_pending(timeout=settings.SIGNALHUB_EXIT_FLUSH_TIMEOUT)
    replay_dead_segments(report)
    counts = report.as_dict()
    if any(counts[key] for key in ("stored", "duplicates", "conflicts", "quarantined", "segments_failed")):
        logger.info("journal flush: %s", counts)
    return counts
def archive_old_signals():
    """Archive signals older than SIGNALHUB_ARCHIVE_MONTHS calendar months; return the summary line.

    Takes the same lock as ``manage.py archive_signals``, so a manual run and
    the schedule never overlap (the later one is skipped and says so).
    """
    if not settings.SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED:
        logger.info("monthly archiving is switched off (SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED)")
        return "archiving switched off"
    try:
        with command_lock("archive_signals"):
            result = archive.archive_signals(cutoff=archive.archive_cutoff(months=settings.SIGNALHUB_ARCHIVE_MONTHS))
    except LockHeld as exc:
        logger.warning("monthly archiving skipped: %s", exc)
        return f"skipped: {exc}"
    return result.summary_line()


def log_monitor_snapshot():
    """Log the monitor's status line (and each problem at its severity); return the status."""
    # The project package composes the ledger's sections with sync's; the
    # schedule keeps this dotted path.
    from signalhub import reports

    report = reports.gather_report()
    level = {"OK": logging.INFO, "WARNING": logging.WARNING, "CRITICAL": logging.ERROR}[report.status]
    logger.log(level, "%s", reports.status_line(report))
    return report.status
