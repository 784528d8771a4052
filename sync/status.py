"""Delivery health for monitoring and the admin: sync_summary()."""

from django.db.models import Count, Min
from django.utils import timezone

from sync.config import alpine_config
from sync.models import Delivery, Destination


def sync_summary(now=None):
    """Return the delivery picture: on/off, counts per state, oldest undelivered, pause.

    Sync being off is information (``enabled``/``configured`` false,
    ``off_reason``), not an alarm: rows wait as pending and nothing is lost.
    """
    now = now or timezone.now()
    config = alpine_config()
    counts = {state: 0 for state in Delivery.State.values}
    for row in Delivery.objects.order_by().values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    oldest = Delivery.objects.undelivered().aggregate(at=Min("queued_at"))["at"]
    destination = Destination.objects.alpine()
    paused = destination.is_paused(now)
    return {
        "enabled": config.sync_enabled,
        "configured": config.configured,
        "off_reason": config.off_reason,
        "counts": counts,
        "oldest_undelivered_age_seconds": (now - oldest).total_seconds() if oldest else None,
        "dead": counts[Delivery.State.DEAD],
        "paused": paused,
        "paused_until": destination.paused_until if paused else None,
        "pause_reason": destination.pause_reason if paused else "",
        "last_success_at": destination.last_success_at,
        "last_error": destination.last_error,
        "consecutive_failures": destination.consecutive_failures,
    }
