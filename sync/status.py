"""Delivery health for monitoring and the admin: sync_summary()."""

from django.db import connection, models
from django.db.models import Count, Min
from django.db.models.expressions import RawSQL
from django.utils import timezone

from signalhub.counts import ID_SPAN_ESTIMATE, PLANNER_ESTIMATE, id_span, planner_estimate
from sync.config import alpine_config
from sync.models import UNDELIVERED_SQL, Delivery, Destination

# Counting every delivered row is a scan of the whole table (one row per
# signal, tens of millions). Counts stop at this bound; beyond it the total is
# an estimate and ``counts_how`` says so.
EXACT_TOTAL_UP_TO = 100_000


def _literal_state(sql):
    # Literals, not parameters: SQLite only uses a partial index when it can
    # see that the query implies the index's WHERE clause (see DeliveryQuerySet.due).
    return RawSQL(sql, [], output_field=models.BooleanField())


def small_state_counts():
    """Return exact counts of the states that partial indexes hold: undelivered, dead, cancelled."""
    counts = {state: 0 for state in Delivery.State.values if state != Delivery.State.DELIVERED}
    # delivery_due_idx and delivery_undelivered_age_idx hold exactly the undelivered rows.
    undelivered = Delivery.objects.filter(_literal_state(UNDELIVERED_SQL))
    for row in undelivered.order_by().values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    # delivery_dead_idx and delivery_cancelled_idx hold the others.
    for state in (Delivery.State.DEAD, Delivery.State.CANCELLED):
        counts[state] = Delivery.objects.filter(_literal_state(f'"sync_delivery"."state" = \'{state}\'')).count()
    return counts


def total_deliveries(exact_up_to=None):
    """Return ``(rows in the delivery table, how)``: exact up to ``exact_up_to``, an estimate beyond."""
    exact_up_to = exact_up_to or EXACT_TOTAL_UP_TO
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT %s) AS bounded",
                       [exact_up_to + 1])
        counted = cursor.fetchone()[0]
    if counted <= exact_up_to:
        return counted, "exact"
    if connection.vendor == "postgresql":
        estimate = planner_estimate(connection, table)
        if estimate > exact_up_to:
            return estimate, PLANNER_ESTIMATE
        return counted, f"at least (over {exact_up_to})"
    return max(id_span(connection, table), counted), ID_SPAN_ESTIMATE


def sync_summary(now=None):
    """Return the delivery picture: on/off, counts per state, oldest undelivered, pause.

    Sync being off is information (``enabled``/``configured`` false,
    ``off_reason``), not an alarm: rows wait as pending and nothing is lost.
    Every state but ``delivered`` is counted exactly through its partial
    index; ``delivered`` is the rest of the table, exact up to
    EXACT_TOTAL_UP_TO rows and an estimate beyond (``counts_how``).
    """
    now = now or timezone.now()
    config = alpine_config()
    counts = small_state_counts()
    total, how = total_deliveries()
    counts = {state: counts.get(state, 0) for state in Delivery.State.values}
    counts[Delivery.State.DELIVERED] = max(0, total - sum(counts.values()))
    oldest = (Delivery.objects.filter(_literal_state(UNDELIVERED_SQL))
              .aggregate(at=Min("queued_at"))["at"])
    destination = Destination.objects.alpine()
    paused = destination.is_paused(now)
    return {
        "enabled": config.sync_enabled,
        "configured": config.configured,
        "off_reason": config.off_reason,
        "counts": counts,
        "counts_how": {"delivered": how, "others": "exact"},
        "oldest_undelivered_age_seconds": (now - oldest).total_seconds() if oldest else None,
        "dead": counts[Delivery.State.DEAD],
        "paused": paused,
        "paused_until": destination.paused_until if paused else None,
        "pause_reason": destination.pause_reason if paused else "",
        "last_success_at": destination.last_success_at,
        "last_error": destination.last_error,
        "consecutive_failures": destination.consecutive_failures,
    }
