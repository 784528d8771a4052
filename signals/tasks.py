"""django-q2 task functions of the ledger, referenced by dotted path from the schedules."""

import logging

from django.conf import settings

from signalhub.locks import LockHeld, command_lock
from signals import archive, monitoring
from signals.models import Signal

logger = logging.getLogger(__name__)


def expire_open_signals():
    """Mark signals open longer than the configured age as expired; return the count."""
    count = Signal.objects.expire_open()
    logger.info("expired %d open signals", count)
    return count


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
    report = monitoring.gather_report()
    level = {"OK": logging.INFO, "WARNING": logging.WARNING, "CRITICAL": logging.ERROR}[report.status]
    logger.log(level, "%s", monitoring.status_line(report))
    return report.status
