"""Delivery to Alpine: one Delivery per signal, an attempt log, and the destination's health.

A Delivery row is the outbox entry for its signal: created in the same
transaction as the signal (sync.outbox), then moved by the delivery worker
(sync.delivery) through pending -> sending -> delivered, or retrying / dead.
"""

import hashlib
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from signals.models import Signal

ALPINE = "alpine"
UNDELIVERED_STATES = ("pending", "sending", "retrying")
UNDELIVERED_SQL = '"sync_delivery"."state" IN (%s)' % ", ".join(f"'{state}'" for state in UNDELIVERED_STATES)


class DeliveryQuerySet(models.QuerySet):
    def undelivered(self):
        """Rows still on their way: pending, sending or retrying."""
        return self.filter(state__in=Delivery.UNDELIVERED)

    def due(self, now=None):
        """Rows a worker may claim now: waiting and due, or sending under an expired lease.

        A claim sets next_attempt_at to the lease's end, so one range scan of
        the partial index delivery_due_idx finds both kinds.
        """
        now = now or timezone.now()
        # The state list is written as literals, not bound parameters: SQLite
        # only uses a partial index when it can see the query implies the
        # index's WHERE clause, which a parameter hides.
        undelivered = RawSQL(UNDELIVERED_SQL, [], output_field=models.BooleanField())
        return self.filter(undelivered, next_attempt_at__lte=now).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now))


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        DEAD = "dead"
        CANCELLED = "cancelled"

    UNDELIVERED = (State.PENDING, State.SENDING, State.RETRYING)

    signal = models.OneToOneField(Signal, related_name="delivery", on_delete=models.CASCADE)
    state = models.CharField(max_length=9, choices=State.choices, default=State.PENDING)
    # Not "attempts": that name is the attempt log (DeliveryAttempt.delivery's related_name).
    attempt_count = models.PositiveIntegerField(default=0, help_text="Attempts counted against this delivery.")
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="When a worker may try it next.")
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="", help_text="Token of the worker holding the lease.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0 for a network error.")
    last_error = models.TextField(blank=True, default="", help_text="Why the last attempt failed, in Alpine's words where it gave them.")
    error_class = models.CharField(max_length=20, blank=True, default="")
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    alpine_signal_id = models.CharField(max_length=100, blank=True, default="")
    queued_at = models.DateTimeField(default=timezone.now, help_text="When it was queued (again, after a resync or requeue).")
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        # Viewing is Django's view permission; changing what Alpine receives
        # (retry, cancel, resume a paused destination, retry dead since) and
        # exporting the ledger as CSV take this one.
        permissions = [("operate_delivery", "Can operate deliveries (retry, cancel, resume) and export signals")]
        indexes = [
            # The worker's claim (DeliveryQuerySet.due): only undelivered rows, in
            # due order; the delivered majority never enters the index.
            models.Index("next_attempt_at", name="delivery_due_idx",
                         condition=Q(state__in=UNDELIVERED_STATES)),
            # "Retry dead deliveries since ..." and the admin's dead list. Partial, and
            # deliberately no plain index on state: SQLite's planner would prefer it
            # to delivery_due_idx for the claim.
            models.Index("last_attempt_at", name="delivery_dead_idx", condition=Q(state="dead")),
            # Monitoring: the oldest undelivered row (sync_summary) and the admin's age filter.
            models.Index("queued_at", name="delivery_undelivered_age_idx",
                         condition=Q(state__in=UNDELIVERED_STATES)),
            # Monitoring: the count of cancelled rows (sync_summary) without reading the table.
            models.Index("queued_at", name="delivery_cancelled_idx", condition=Q(state="cancelled")),
        ]
        constraints = [
            # A lease has an owner and an end, or neither.
            models.CheckConstraint(name="delivery_lease_complete", condition=(
                Q(lease_until__isnull=True, lease_owner="") | Q(lease_until__isnull=False) & ~Q(lease_owner=""))),
            # Only a row being sent holds a lease (a killed worker's row keeps it until claimed again).
            models.CheckConstraint(name="delivery_lease_only_when_sending",
                                   condition=Q(state="sending") | Q(lease_until__isnull=True)),
            # A delivered row says when.
            models.CheckConstraint(name="delivery_delivered_has_time",
                                   condition=~Q(state="delivered") | Q(delivered_at__isnull=False)),
            models.CheckConstraint(name="delivery_state_valid", condition=Q(state__in=[
                "pending", "sending", "retrying", "delivered", "dead", "cancelled"])),
        ]

    def __str__(self):
        return f"delivery of {self.signal_id} ({self.state})"

    @property
    def age(self):
        return timezone.now() - self.queued_at


class DeliveryAttempt(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"
        TEST = "test"

    # Null only for test_alpine_sync's connection test, which belongs to no delivery.
    delivery = models.ForeignKey(Delivery, related_name="attempts", on_delete=models.CASCADE, null=True, blank=True)
    trigger = models.CharField(max_length=9, choices=Trigger.choices, default=Trigger.SCHEDULED)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(help_text="0 for a network error (timeout, refused, reset).")
    error_class = models.CharField(max_length=20, blank=True, default="")
    error = models.TextField(blank=True, default="")
    response_body = models.TextField(blank=True, default="", help_text="The first few KB of Alpine's answer.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # The detail page's inline: a delivery's attempts, newest first.
            models.Index("delivery", models.F("started_at").desc(), name="attempt_delivery_started_idx"),
            # Daily pruning by age.
            models.Index("started_at", name="attempt_started_idx"),
        ]

    def __str__(self):
        return f"{self.trigger} attempt at {self.started_at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error_class}"


def key_fingerprint(api_key):
    """Return a short one-way fingerprint of the key: tells keys apart without storing one."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12] if api_key else ""


class DestinationQuerySet(models.QuerySet):
    def alpine(self):
        destination, _ = self.get_or_create(name=ALPINE)
        return destination


class Destination(models.Model):
    name = models.CharField(max_length=50, unique=True, default=ALPINE)
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_until = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True, default="")
    # The key in use when an auth failure paused delivery: another key lifts the pause.
    paused_key_fingerprint = models.CharField(max_length=12, blank=True, default="")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    objects = DestinationQuerySet.as_manager()

    def __str__(self):
        return self.name

    def is_paused(self, now=None):
        return self.paused_until is not None and self.paused_until > (now or timezone.now())

    def pause(self, seconds, reason, *, key="", now=None):
        """Pause delivery for ``seconds`` (kept to the later end if already paused)."""
        now = now or timezone.now()
        until = now + timedelta(seconds=seconds)
        Destination.objects.filter(pk=self.pk).update(
            paused_until=until, paused_at=now, pause_reason=reason, paused_key_fingerprint=key_fingerprint(key))
        self.paused_until, self.paused_at, self.pause_reason = until, now, reason

    def resume(self):
        Destination.objects.filter(pk=self.pk).update(
            paused_until=None, paused_at=None, pause_reason="", paused_key_fingerprint="", consecutive_failures=0)
        self.paused_until, self.paused_at, self.pause_reason, self.consecutive_failures = None, None, "", 0
