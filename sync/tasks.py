"""django-q2 task functions of the sync app, referenced by dotted path."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from signalhub.schedules import repeat_for_a_minute
from sync import delivery
from sync.client import Sender
from sync.models import Delivery, DeliveryAttempt
from sync.outbox import enqueue_missing

logger = logging.getLogger(__name__)


def deliver_for_a_minute():
    """The scheduled delivery: a drain pass every SIGNALHUB_SYNC_INTERVAL seconds for about a minute."""
    with Sender(settings.SIGNALHUB_SYNC_CONCURRENCY) as sender:
        results = repeat_for_a_minute(lambda: delivery.deliver_pending(sender=sender, max_seconds=50),
                                      settings.SIGNALHUB_SYNC_INTERVAL)
    delivered = sum(result.delivered for result in results)
    return {"passes": len(results), "delivered": delivered}


def deliver_now():
    """One push: deliver what is due now (SIGNALHUB_SYNC_PUSH)."""
    result = delivery.deliver_pending(max_seconds=50)
    return {"delivered": result.delivered, "retrying": result.retrying, "dead": result.dead}


def prune_attempts(now=None):
    """Delete attempt rows past the retention; queue signals that somehow have no delivery."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS)
    deleted, _ = DeliveryAttempt.objects.filter(started_at__lt=cutoff).delete()
    queued = enqueue_missing()
    logger.info("pruned %d delivery attempts older than %s; queued %d signals without a delivery",
                deleted, cutoff, queued)
    return {"pruned": deleted, "queued": queued}


def retry_dead_since(since_iso, limit=None):
    """Queue again every dead delivery whose last attempt was at or after ``since_iso`` (at most ``limit``)."""
    from django.utils.dateparse import parse_datetime

    since = parse_datetime(since_iso)
    limit = limit or settings.SIGNALHUB_SYNC_REQUEUE_LIMIT
    pks = list(Delivery.objects.dead_since(since).order_by("last_attempt_at").values_list("pk", flat=True)[:limit])
    count = Delivery.objects.filter(pk__in=pks, state=Delivery.State.DEAD).requeue()
    logger.info("queued %d dead deliveries again (dead since %s)", count, since)
    return count
