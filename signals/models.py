"""The signal ledger: one row per signal a generator emitted, stored once.

A ledger is append-only: the generator's fields never change after the row is
written. Only the lifecycle moves, through ``record_execution``, ``close`` and
``SignalQuerySet.expire_open``.
"""

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from signals.ledger import hashing
from signals.ledger import fields
from signals.ledger.fields import (
    ACTIONS,
    FROZEN_FIELDS,
    HASH_FIELDS,
    MAX_LENGTHS,
    MAX_PRICE,
    OUTCOMES,
    PROFIT_LOSS_MAX,
    SYMBOL_CHARS,
    TEXT_DEFAULTS,
)

from signals.ledger.lifecycle import close_outcome

# The check constraints below use lookups registered by this module.
import_module("signals.ledger.lookups")

# The bounds live in the field catalogue; callers import these from here too.
METADATA_MAX_BYTES, METADATA_MAX_DEPTH = fields.METADATA_MAX_BYTES, fields.METADATA_MAX_DEPTH
SOURCES_COUNT_MAX = fields.SOURCES_COUNT_MAX
# What the generator said and where it came from: immutable once stored.
GENERATOR_FIELDS = FROZEN_FIELDS


def _price_ok(field, *, optional):
    ok = Q(**{f"{field}__gt": 0, f"{field}__lte": MAX_PRICE})
    return Q(**{f"{field}__isnull": True}) | ok if optional else ok


class SignalQuerySet(models.QuerySet):
    def update(self, **kwargs):
        frozen = sorted(set(kwargs) & set(GENERATOR_FIELDS))
        if frozen:
            raise ValidationError({field: ["Is part of the ledger and cannot change once stored."] for field in frozen})
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        frozen = sorted(set(fields) & set(GENERATOR_FIELDS))
        if frozen:
            raise ValidationError({field: ["Is part of the ledger and cannot change once stored."] for field in frozen})
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def open(self):
        return self.filter(outcome__isnull=True)

    def expire_open(self, *, older_than=None, now=None, batch_size=10_000):
        """Mark signals still open ``older_than`` after their timestamp as expired; return the count.

        Works in batches of primary keys so a large backlog never holds the
        SQLite write lock for long.
        """
        now = now or timezone.now()
        older_than = older_than or timedelta(days=settings.SIGNALHUB_EXPIRE_AFTER_DAYS)
        due = self.filter(outcome__isnull=True, timestamp__lt=now - older_than)
        total = 0
        while True:
            ids = list(due.order_by().values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            with transaction.atomic():
                # outcome__isnull again: a position closed meanwhile keeps its outcome.
                total += self.model.objects.filter(pk__in=ids, outcome__isnull=True).update(
                    outcome="expired", exit_timestamp=now)


class Signal(models.Model):
    class Action(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"

    class Outcome(models.TextChoices):
        WIN = "win"
        LOSS = "loss"
        EXPIRED = "expired"

    signal_id = models.CharField(max_length=MAX_LENGTHS["signal_id"], unique=True)
    symbol = models.CharField(max_length=MAX_LENGTHS["symbol"])
    action = models.CharField(max_length=4, choices=Action.choices)
    entry_price = models.FloatField()
    target_price = models.FloatField(null=True, blank=True)
    stop_price = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(help_text="0 to 100.")
    strategy = models.CharField(max_length=MAX_LENGTHS["strategy"], default=TEXT_DEFAULTS["strategy"])
    asset_type = models.CharField(max_length=MAX_LENGTHS["asset_type"], default=TEXT_DEFAULTS["asset_type"])
    data_source = models.CharField(max_length=MAX_LENGTHS["data_source"], default=TEXT_DEFAULTS["data_source"])
    timestamp = models.DateTimeField(help_text="When the generator made the signal (UTC).")
    sha256 = models.CharField("verification hash", max_length=64)
    legacy_sha256 = models.CharField(
        max_length=MAX_LENGTHS["legacy_sha256"], blank=True, default="",
        help_text="The hash an imported legacy file carried, kept as provenance where it differs.")
    reasoning = models.TextField(blank=True, default="")
    regime = models.CharField(max_length=MAX_LENGTHS["regime"], blank=True, default="")
    consensus_agreement = models.FloatField(null=True, blank=True)
    sources_count = models.PositiveIntegerField(null=True, blank=True)
    service_type = models.CharField(max_length=MAX_LENGTHS["service_type"], default=TEXT_DEFAULTS["service_type"])
    generated_by = models.CharField(max_length=MAX_LENGTHS["generated_by"], default=TEXT_DEFAULTS["generated_by"])
    metadata = models.JSONField(default=dict, blank=True, help_text="Keys the generator sent that SignalHub does not know.")

    outcome = models.CharField(max_length=7, choices=Outcome.choices, null=True, blank=True, help_text="Empty while open.")
    exit_price = models.FloatField(null=True, blank=True)
    exit_timestamp = models.DateTimeField(null=True, blank=True)
    profit_loss_pct = models.FloatField("P&L %", null=True, blank=True)
    order_id = models.CharField(max_length=MAX_LENGTHS["order_id"], null=True, blank=True)
    executor_id = models.CharField(max_length=MAX_LENGTHS["executor_id"], null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, help_text="When SignalHub stored it (imports keep the legacy value).")

    objects = SignalQuerySet.as_manager()

    class Meta:
        indexes = [
            # The admin list and the monitor: newest first, optionally by outcome;
            # archiving walks created_at below a cutoff.
            models.Index(models.F("created_at").desc(), "outcome", name="idx_created_outcome"),
            # Admin confidence-band filter and "strong signals that won" reports.
            models.Index("confidence", "outcome", name="idx_confidence_outcome"),
            # Best signals for a symbol (legacy report, kept by name for its users).
            models.Index("symbol", models.F("confidence").desc(), name="idx_symbol_confidence"),
            # The admin list: ORDER BY created_at DESC, id DESC (the admin adds the pk
            # tie-break) LIMIT 100, read in index order with no sort; also the
            # "stored today / 7 / 30 days / older" filters, as ranges on it.
            models.Index(models.F("created_at").desc(), models.F("id").desc(), name="idx_created_id"),
            # The admin's outcome filter (open, win, loss, expired) in list order: the
            # newest signals are mostly open, so walking idx_created_id for "win"
            # would read past all of them first.
            models.Index("outcome", models.F("created_at").desc(), models.F("id").desc(), name="idx_outcome_created"),
            # Admin search by exact symbol, in list order (created_at DESC, id DESC).
            models.Index("symbol", models.F("created_at").desc(), models.F("id").desc(), name="idx_symbol_created"),
            # Admin search by exact order id; most rows have none.
            models.Index("order_id", name="idx_order_id", condition=Q(order_id__isnull=False)),
            # Daily expiry: open signals older than the cut-off, never the closed majority.
            models.Index("timestamp", name="idx_open_timestamp", condition=Q(outcome__isnull=True)),
        ]
        constraints = [
            models.CheckConstraint(name="signal_id_valid", condition=Q(
                signal_id__length__gte=1, signal_id__length__lte=MAX_LENGTHS["signal_id"], signal_id__nocontrolchars=True)),
            models.CheckConstraint(name="symbol_valid", condition=Q(
                symbol__length__gte=1, symbol__length__lte=MAX_LENGTHS["symbol"], symbol__onlychars=SYMBOL_CHARS)),
            models.CheckConstraint(name="action_valid", condition=Q(action__in=ACTIONS)),
            models.CheckConstraint(name="entry_price_valid", condition=_price_ok("entry_price", optional=False)),
            models.CheckConstraint(name="target_price_valid", condition=_price_ok("target_price", optional=True)),
            models.CheckConstraint(name="stop_price_valid", condition=_price_ok("stop_price", optional=True)),
            models.CheckConstraint(name="exit_price_valid", condition=_price_ok("exit_price", optional=True)),
            models.CheckConstraint(name="confidence_valid", condition=Q(confidence__gte=0, confidence__lte=100)),
            models.CheckConstraint(name="consensus_agreement_valid", condition=Q(consensus_agreement__isnull=True) | Q(
                consensus_agreement__gte=0, consensus_agreement__lte=100)),
            models.CheckConstraint(name="sha256_valid", condition=Q(sha256__length=64, sha256__onlychars="0-9a-f")),
            models.CheckConstraint(name="reasoning_length", condition=Q(reasoning__length__lte=MAX_LENGTHS["reasoning"])),
            models.CheckConstraint(name="outcome_valid", condition=Q(outcome__isnull=True) | Q(outcome__in=OUTCOMES)),
            models.CheckConstraint(name="profit_loss_pct_finite", condition=Q(profit_loss_pct__isnull=True) | Q(
                profit_loss_pct__gte=-PROFIT_LOSS_MAX, profit_loss_pct__lte=PROFIT_LOSS_MAX)),
            models.CheckConstraint(name="exit_has_time", condition=Q(exit_price__isnull=True) | Q(exit_timestamp__isnull=False)),
        ]

    def __str__(self):
        return f"{self.signal_id} {self.action} {self.symbol} @ {self.entry_price:g}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # What was read, so save() can refuse a change to a generator field.
        instance._stored = {name: getattr(instance, name) for name in GENERATOR_FIELDS if name in instance.__dict__}
        return instance

    def save(self, *args, **kwargs):
        if not self._state.adding:
            stored = getattr(self, "_stored", {})
            changed = [name for name, value in stored.items() if getattr(self, name) != value]
            if changed:
                raise ValidationError({name: ["Is part of the ledger and cannot change once stored."] for name in changed})
            update_fields = kwargs.get("update_fields")
            if update_fields is None:
                # Write only the lifecycle, never the generator's fields.
                kwargs["update_fields"] = [f.name for f in self._meta.concrete_fields
                                           if f.name not in GENERATOR_FIELDS and not f.primary_key]
            elif set(update_fields) & set(GENERATOR_FIELDS):
                raise ValidationError({name: ["Is part of the ledger and cannot change once stored."]
                                       for name in sorted(set(update_fields) & set(GENERATOR_FIELDS))})
        super().save(*args, **kwargs)

    # The hash ----------------------------------------------------------------

    def hash_fields(self):
        return {name: getattr(self, name) for name in HASH_FIELDS}

    def expected_hash(self):
        """Return the hash Alpine computes from this row's fields."""
        return hashing.compute_hash(**self.hash_fields())

    def hash_matches(self):
        return self.sha256 == self.expected_hash()

    # The lifecycle -------------------------------------------------------------

    def record_execution(self, order_id, executor_id=None):
        """Record that an executor placed an order for this signal (once)."""
        errors = {}
        for field, value, required in (("order_id", order_id, True), ("executor_id", executor_id, False)):
            if value is None and not required:
                continue
            if not isinstance(value, str) or not value.strip():
                errors[field] = ["Must be non-empty text."]
            elif len(value) > MAX_LENGTHS[field] or not value.isprintable():
                errors[field] = [f"Must be at most {MAX_LENGTHS[field]} printable characters."]
        if errors:
            raise ValidationError(errors)
        # Conditional update: two executors racing cannot both record an order.
        updated = Signal.objects.filter(pk=self.pk, order_id__isnull=True).update(order_id=order_id, executor_id=executor_id)
        if not updated:
            current = Signal.objects.filter(pk=self.pk).values_list("order_id", flat=True).first()
            if current != order_id:
                raise ValidationError({"order_id": [f"An order is already recorded for this signal: {current}."]})
        self.order_id, self.executor_id = order_id, executor_id

    def close(self, exit_price, exit_timestamp=None):
        """Close the position at ``exit_price``; compute P&L and outcome by the legacy rules."""
        if isinstance(exit_price, bool) or not isinstance(exit_price, (int, float)):
            raise ValidationError({"exit_price": ["Must be a number."]})
        exit_price = float(exit_price)
        if not (0 < exit_price <= MAX_PRICE):
            raise ValidationError({"exit_price": [f"Must be greater than 0 and at most {MAX_PRICE:g}; got {exit_price!r}."]})
        exit_timestamp = exit_timestamp or timezone.now()
        if timezone.is_naive(exit_timestamp):
            raise ValidationError({"exit_timestamp": ["Must be timezone-aware."]})
        pnl, outcome = close_outcome(self.action, self.entry_price, self.target_price, self.stop_price, exit_price)
        updated = Signal.objects.filter(pk=self.pk, outcome__isnull=True).update(
            exit_price=exit_price, exit_timestamp=exit_timestamp, profit_loss_pct=pnl, outcome=outcome)
        if not updated:
            raise ValidationError({"outcome": ["The position is already closed."]})
        self.exit_price, self.exit_timestamp, self.profit_loss_pct, self.outcome = exit_price, exit_timestamp, pnl, outcome


# What the write path could not store as a Signal ---------------------------------


class SignalConflict(models.Model):
    """A signal_id that arrived again with different content: the first version stays stored.

    One row per distinct incoming version; seeing the same version again bumps
    ``occurrences`` instead of adding rows (a journal replayed after a crash
    meets the same conflict twice).
    """

    signal_id = models.CharField(max_length=MAX_LENGTHS["signal_id"])
    stored = models.JSONField(help_text="The version kept in the ledger.")
    incoming = models.JSONField(help_text="The version that was refused.")
    incoming_digest = models.CharField(max_length=64, help_text="sha256 of the refused version's content.")
    source = models.CharField(max_length=300, blank=True, default="", help_text="Journal segment or imported file.")
    occurrences = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            # The writer upserts on this pair: one row per refused version.
            models.UniqueConstraint(fields=["signal_id", "incoming_digest"], name="uniq_conflict_version"),
        ]
        indexes = [
            # Admin list and monitoring: newest conflicts first.
            models.Index(models.F("last_seen").desc(), name="idx_conflict_last_seen"),
        ]

    def __str__(self):
        return f"conflict on {self.signal_id} (x{self.occurrences})"


class QuarantinedRecord(models.Model):
    """A journal line or imported record that can never be written, kept with the reason."""

    reason = models.TextField()
    raw = models.TextField(help_text="The record as it was read (text, possibly torn or corrupt).")
    source = models.CharField(max_length=300, help_text="Journal segment and byte offset, or imported file and line.")
    fingerprint = models.CharField(max_length=64, unique=True, help_text="sha256 of source and raw: a replay does not add it twice.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Admin list and monitoring: newest first.
            models.Index(models.F("created_at").desc(), name="idx_quarantine_created"),
        ]

    def __str__(self):
        return f"quarantined from {self.source}: {self.reason[:60]}"


class ArchivedSignalManager(models.Manager.from_queryset(SignalQuerySet)):
    def get_queryset(self):
        return super().get_queryset().using("archive")


class ArchivedSignal(Signal):
    """A signal in the archive database (``archive_signals``), shown read-only in the admin."""

    objects = ArchivedSignalManager()

    class Meta:
        proxy = True
        verbose_name = "archived signal"
