"""Delivery to Alpine: one Delivery per signal, an attempt log, and the destination's health.

A Delivery row is the outbox entry for its signal: created in the same
transaction as the signal (sync.outbox), then moved by the delivery worker
(sync.delivery) through pending -> sending -> delivered, or retrying / dead.
"""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import F, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from signals.models import Signal

logger = logging.getLogger(__name__)

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

    def claim(self, owner, lease_until, *, limit, now):
        """Put up to ``limit`` of these rows that are due under ``owner``'s lease; return their keys.

        Each claimed row counts an attempt, and its next_attempt_at becomes the
        lease's end: if the worker dies, the row is due again once it passes.
        """
        values = {"state": Delivery.State.SENDING, "lease_owner": owner, "lease_until": lease_until,
                  "next_attempt_at": lease_until, "attempt_count": F("attempt_count") + 1}
        due = self.due(now).order_by("next_attempt_at")
        if connections[self.db].vendor == "postgresql":
            # Rows another worker has locked are skipped, not waited for.
            with transaction.atomic(using=self.db):
                pks = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
                if pks:
                    Delivery.objects.filter(pk__in=pks).update(**values)
            return pks
        # SQLite has one writer: a conditional UPDATE that re-checks "still due"
        # is the compare-and-set; rows another worker took meanwhile do not match.
        pks = list(due.values_list("pk", flat=True)[:limit])
        if pks:
            with transaction.atomic(using=self.db):
                Delivery.objects.due(now).filter(pk__in=pks).update(**values)
        return pks

    def dead_since(self, since):
        """Dead rows whose last attempt was at or after ``since`` (served by delivery_dead_idx)."""
        return self.filter(state=Delivery.State.DEAD, last_attempt_at__gte=since)

    def requeue(self, now=None):
        """Queue these rows again from scratch (resync, retry dead since); return how many.

        A row being sent is left to its worker: its answer is still to be recorded.
        """
        now = now or timezone.now()
        return self.exclude(state=Delivery.State.SENDING).update(
            state=Delivery.State.PENDING, attempt_count=0, next_attempt_at=now, queued_at=now, lease_owner="",
            lease_until=None, first_attempt_at=None, error_class="", last_error="")

    def cancel(self, now=None):
        """Cancel rows not yet delivered and not being sent under a live lease; return how many."""
        now = now or timezone.now()
        return (self.exclude(state__in=[Delivery.State.DELIVERED, Delivery.State.CANCELLED])
                .exclude(state=Delivery.State.SENDING, lease_until__gt=now)
                .update(state=Delivery.State.CANCELLED, lease_owner="", lease_until=None))


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

    objects = models.Manager.from_queryset(DeliveryQuerySet)()

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

    # Transitions of a row a worker has claimed. Each is a compare-and-set on
    # the lease owner: a worker whose lease ran out while it waited for Alpine
    # must not overwrite what the worker that took the row over recorded.
    # ``outcome`` is an attempt's result (sync.client.Outcome).

    def _finish(self, owner, **values):
        values.update(lease_owner="", lease_until=None)
        return Delivery.objects.filter(pk=self.pk, lease_owner=owner).update(**values) == 1

    @staticmethod
    def _attempted(outcome, now):
        return {"last_status_code": outcome.status_code, "last_attempt_at": outcome.finished_at or now,
                "first_attempt_at": Coalesce(F("first_attempt_at"), outcome.started_at),
                "last_error": outcome.reason, "error_class": outcome.error_class}

    def mark_delivered(self, owner, outcome, now):
        values = {**self._attempted(outcome, now), "last_error": "", "error_class": ""}
        return self._finish(owner, **values, state=self.State.DELIVERED, delivered_at=outcome.finished_at or now,
                            alpine_signal_id=outcome.alpine_signal_id[:100])

    def mark_dead(self, owner, outcome, now, why=""):
        """Give up on the row; ``why`` (when it ran out of attempts or time) follows Alpine's reason."""
        values = self._attempted(outcome, now)
        if why:
            values["last_error"] = f"{outcome.reason} ({why})"
        return self._finish(owner, **values, state=self.State.DEAD)

    def schedule_retry(self, owner, outcome, now, at):
        return self._finish(owner, **self._attempted(outcome, now), state=self.State.RETRYING, next_attempt_at=at)

    def park(self, owner, until, *, outcome=None, now=None, error_class="", reason=""):
        """Push the row out to ``until`` because SignalHub, not Alpine, failed on it.

        A row that makes a pass fail would otherwise be claimed again at once
        and crash-loop the worker.
        """
        values = self._attempted(outcome, now) if outcome is not None else {
            "error_class": error_class, "last_error": reason}
        return self._finish(owner, **values, state=self.State.RETRYING, next_attempt_at=until)

    def release(self, owner, *, restore=None, paused_by=None):
        """Hand the row back unsent, its attempt not counted (or as ``restore`` says it was).

        ``paused_by`` is the answer that paused delivery before this row went
        out: it is kept as the row's last error.
        """
        values = restore or {"state": self.State.RETRYING if self.attempt_count > 1 else self.State.PENDING,
                             "attempt_count": max(0, self.attempt_count - 1), "next_attempt_at": timezone.now()}
        if paused_by is not None:
            values = {**values, "last_status_code": paused_by.status_code, "last_error": paused_by.reason,
                      "error_class": paused_by.error_class, "last_attempt_at": paused_by.finished_at}
        return self._finish(owner, **values)

    def keep_schedule(self, owner, outcome, now, restore):
        """Record a failed manual try while the row keeps the state, count and schedule in ``restore``."""
        return self._finish(owner, **self._attempted(outcome, now), **restore)


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
        self.paused_key_fingerprint = key_fingerprint(key)

    def record_pass(self, *, last_status_code, any_success, failures, last_error=None, last_error_at=None,
                    pause_reason="", key="", now=None):
        """Record the destination's health after a pass, and pause delivery when it should stop.

        ``failures`` counts failed attempts after the pass's last success (all
        of them when none succeeded). ``pause_reason`` is set when Alpine's
        answer (a refused key, a wrong URL) pauses delivery at once; otherwise
        the circuit opens after SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES failures
        in a row.
        """
        now = now or timezone.now()
        values = {"last_status_code": last_status_code}
        if last_error is not None:
            values.update(last_error=last_error, last_error_at=last_error_at or now)
        if any_success:
            values.update(last_success_at=now, consecutive_failures=failures)
        else:
            # Added in the database: concurrent passes each add their own failures.
            values["consecutive_failures"] = F("consecutive_failures") + failures
        Destination.objects.filter(pk=self.pk).update(**values)
        self.refresh_from_db()
        if pause_reason:
            self.pause(settings.SIGNALHUB_SYNC_AUTH_PAUSE_SECONDS, pause_reason, key=key, now=now)
            logger.error("delivery paused: %s", pause_reason)
        elif self.consecutive_failures >= settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES and not self.is_paused(now):
            reason = f"{self.consecutive_failures} failed attempts in a row; last: {self.last_error}"
            self.pause(settings.SIGNALHUB_SYNC_PAUSE_SECONDS, reason, key=key, now=now)
            Destination.objects.filter(pk=self.pk).update(consecutive_failures=0)
            logger.warning("delivery paused for %g s: %s", settings.SIGNALHUB_SYNC_PAUSE_SECONDS, reason)

    def lift_pause_for_new_key(self, key):
        """Resume when an auth failure paused delivery and the key has been replaced since; return True if so."""
        if (self.paused_key_fingerprint and self.paused_key_fingerprint != key_fingerprint(key)
                and self.last_status_code in (401, 403)):
            logger.info("the Alpine key changed since delivery was paused; resuming")
            self.resume()
            return True
        return False

    def resume(self):
        Destination.objects.filter(pk=self.pk).update(
            paused_until=None, paused_at=None, pause_reason="", paused_key_fingerprint="", consecutive_failures=0)
        self.paused_until, self.paused_at, self.pause_reason, self.consecutive_failures = None, None, "", 0
        self.paused_key_fingerprint = ""
