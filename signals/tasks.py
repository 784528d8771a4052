"""django-q2 task functions of the ledger, referenced by dotted path from the schedules."""

import logging

from signals.models import Signal

logger = logging.getLogger(__name__)


def expire_open_signals():
    """Mark signals open longer than the configured age as expired; return the count."""
    count = Signal.objects.expire_open()
    logger.info("expired %d open signals", count)
    return count
